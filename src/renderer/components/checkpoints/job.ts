/** Following one checkpoints job (export or import) through its events. */
import type { CheckpointResult } from '../../../common/checkpoints';
import type { ApiRequestError } from '../../../common/client';
import { awaitJob } from '../../lib/datasets-jobs';

export interface JobWatch {
  onProgress(fraction: number, message: string): void;
  onDone(result: CheckpointResult): void;
  onFailed(message: string, cancelled: boolean): void;
}

/** Calls back for the job's events until it ends; returns the unsubscribe function. */
export function watchJob(jobId: string, w: JobWatch): () => void {
  const followed = new AbortController();
  awaitJob(
    jobId,
    (e) => {
      if (e.type === 'checkpoints.progress') w.onProgress(e.fraction, e.message);
    },
    followed.signal,
  ).then(
    (r) => {
      if ('type' in r && r.type === 'checkpoints.result') w.onDone(r);
      else w.onFailed(`unexpected result of job ${jobId}`, false);
    },
    (err: ApiRequestError) => {
      if (!followed.signal.aborted) w.onFailed(err.message, err.code === 'cancelled');
    },
  );
  return () => followed.abort();
}
