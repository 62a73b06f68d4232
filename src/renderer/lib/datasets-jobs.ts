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
    const off = api.onAny((e) => {
      if (!('jobId' in e) || e.jobId !== jobId) return;
      if (e.type === 'job.progress') onProgress?.(e.event);
      else if (e.type === 'job.done') {
        off();
        resolve(e.result);
      } else if (e.type === 'job.failed') {
        off();
        reject(new ApiRequestError(e.error));
      }
    });
    signal?.addEventListener('abort', () => {
      off();
      reject(new DOMException('no longer followed', 'AbortError'));
    });
  });
}
