/**
 * How the engine host words what went wrong: any error as the contract's ApiError, and the three
 * messages of a backend abort (for the request or job it hit, for the jobs beside it, and for the
 * requests that arrive while the host is on its way out).
 */
import {
  apiError,
  CHECKPOINTED_JOB_KINDS,
  isApiError,
  type ApiError,
  type JobKind,
} from '../common/api';
import { BackendAbortError } from '../engine/backendAbort';
import { HostError } from './context';

/** What a request or job gets when the backend crashed under it. */
export function backendAbortError(err: unknown): ApiError {
  return apiError(
    'engine',
    `the compute backend crashed (${abortReason(err)}); the engine is restarting, try again`,
    { backendAbort: true },
  );
}

/** What a job still running gets when the backend crashed under another request or job. */
export function bystanderError(kind: JobKind, reason: string): ApiError {
  return apiError(
    'engine',
    `the compute backend crashed (${reason}) under another request; the engine is restarting` +
      (CHECKPOINTED_JOB_KINDS.includes(kind)
        ? '; the run keeps its last checkpoint and can be resumed'
        : ', try again'),
    { backendAbort: true },
  );
}

/** What a request gets while the host is on its way out after a backend abort. */
export function restartingError(reason: string): ApiError {
  return apiError(
    'engine',
    `the compute backend crashed (${reason}); the engine is restarting, try again in a moment`,
    { backendAbort: true },
  );
}

/** The backend's own words for an abort ("Aborted()"), short. */
export function abortReason(err: unknown): string {
  const raw =
    err instanceof BackendAbortError ? err.raw : String((err as Error)?.message ?? err ?? '');
  return raw.trim().slice(0, 200) || 'aborted';
}

export function toApiError(err: unknown): ApiError {
  if (err instanceof HostError) return err.apiError;
  if (isApiError(err)) return err;
  const e = err as Error;
  // the engine's errors are written for users (they name the file or flag at fault)
  return apiError('engine', e?.message ?? String(err));
}
