/**
 * A backend abort: the wasm module ran out of its heap or hit a trap ("Aborted()", "memory access
 * out of bounds", "unreachable"). After one, the module's state is undefined, so every later
 * operation in this process may fail or return garbage: the only safe recovery is a new process.
 */

const ABORT_PATTERNS = [
  /^Aborted\(/,
  /\bAborted\(\)/,
  /memory access out of bounds/i,
  /Cannot enlarge memory/i,
  /Out of memory/i,
  /^unreachable$/i,
  /unreachable executed/i,
  /Array buffer allocation failed/i,
];

/** True for errors that leave the tfjs backend unusable in this process. */
export function isBackendAbort(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  const e = err as { name?: unknown; message?: unknown };
  const message = typeof e.message === 'string' ? e.message : '';
  if (e.name === 'RuntimeError' && message !== '') return true;
  if (err instanceof BackendAbortError) return true;
  return ABORT_PATTERNS.some((re) => re.test(message));
}

/** A backend abort, said for a user: what failed, the raw reason, and what to change. */
export class BackendAbortError extends Error {
  override readonly name = 'BackendAbortError';
  constructor(
    message: string,
    readonly raw: string,
  ) {
    super(message);
  }
}

/**
 * Wraps a backend abort into a `BackendAbortError` whose message says what was running, what the
 * backend said and what to change (`advice`); other errors pass through unchanged.
 */
export function explainBackendAbort(err: unknown, what: string, advice: string): unknown {
  if (!isBackendAbort(err) || err instanceof BackendAbortError) return err;
  const raw = String((err as Error).message ?? err);
  return new BackendAbortError(
    `${what}: the compute backend ran out of memory or crashed (${raw.slice(0, 200)}). ${advice}`,
    raw,
  );
}
