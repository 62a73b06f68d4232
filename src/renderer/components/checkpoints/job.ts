/** Following one checkpoints job (export or import) through its events. */
import type { ApiEvent } from '../../../common/api';
import type { CheckpointResult } from '../../../common/checkpoints';
import { api } from '../../lib/state.svelte';

export interface JobWatch {
  onProgress(fraction: number, message: string): void;
  onDone(result: CheckpointResult): void;
  onFailed(message: string, cancelled: boolean): void;
}

/** Calls back for the job's events until it ends; returns the unsubscribe function. */
export function watchJob(jobId: string, w: JobWatch): () => void {
  const off = api.onAny((e: ApiEvent) => {
    if (!('jobId' in e) || e.jobId !== jobId) return;
    if (e.type === 'job.progress' && e.event.type === 'checkpoints.progress') {
      w.onProgress(e.event.fraction, e.event.message);
    } else if (e.type === 'job.done') {
      off();
      const r = e.result as { type?: string };
      if (r.type === 'checkpoints.result') w.onDone(r as CheckpointResult);
      else w.onFailed(`unexpected result of job ${jobId}`, false);
    } else if (e.type === 'job.failed') {
      off();
      w.onFailed(e.error.message, e.error.code === 'cancelled');
    }
  });
  return off;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}
