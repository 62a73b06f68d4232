/** Waiting for a background job: its progress events, then its result. */
import type { EventOf } from '../../common/api';
import { ApiRequestError } from '../../common/client';
import { api } from './state.svelte';

type Progress = EventOf<'job.progress'>['event'];
type Done = EventOf<'job.done'>['result'];

/**
 * Resolves with the job's result; rejects with its error (code 'cancelled' when stopped). Once
 * `signal` aborts, the job is no longer followed and the promise rejects with an AbortError.
 */
export function awaitJob(
  jobId: string,
  onProgress?: (e: Progress) => void,
  signal?: AbortSignal,
): Promise<Done> {
  return new Promise((resolve, reject) => {
    const off = api.followJob(jobId, {
      progress: (e) => onProgress?.(e),
      done: resolve,
      failed: (error) => reject(new ApiRequestError(error)),
    });
    signal?.addEventListener('abort', () => {
      off();
      reject(new DOMException('no longer followed', 'AbortError'));
    });
  });
}
