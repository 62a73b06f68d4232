/**
 * Progress coalescing: the engine host keeps at most ~10 progress events per second per job, so a
 * fast training loop cannot flood the UI. The server's concern (the contract only says which
 * events may be coalesced, in HostContext.startJob's words).
 */
import type { TrainEvent } from '../common/events';

/**
 * Event types that may be dropped when they come faster than the interval (the latest wins):
 * `step`, `tokenizer`, and any feature event named `….step` or `….progress`.
 */
export function isCoalesced(type: string): boolean {
  return type === 'step' || type === 'tokenizer' || /\.(step|progress)$/.test(type);
}

/**
 * Keeps at most one `step` (and one `tokenizer`) event per job per interval; every other event
 * (start, eval, sample, checkpoint, log) passes at once. A dropped step is not lost for good: the
 * latest one is held and sent before the job's next pass-through event, or by `flush` when the job
 * ends, so the UI always sees the final step. Driven by an injected clock, so it is testable.
 */
export class Coalescer<E extends { type: string } = TrainEvent> {
  private readonly last = new Map<string, number>();
  private readonly pending = new Map<string, E>();

  constructor(
    readonly intervalMs: number,
    private readonly now: () => number,
  ) {}

  /** The events to send now, in order. */
  push(jobId: string, event: E): E[] {
    if (!isCoalesced(event.type)) return [...this.take(jobId), event];
    const key = `${jobId}\u0000${event.type}`;
    const t = this.now();
    const prev = this.last.get(key);
    if (prev !== undefined && t - prev < this.intervalMs) {
      this.pending.set(key, event);
      return [];
    }
    this.last.set(key, t);
    this.pending.delete(key);
    return [event];
  }

  /** Held events of a job that are now due (call from a timer), or all of them with `all`. */
  flush(jobId: string, all = true): E[] {
    return this.take(jobId, all);
  }

  /** Forgets a finished job; returns what it still held. */
  end(jobId: string): E[] {
    const out = this.take(jobId);
    for (const k of [...this.last.keys()]) if (k.startsWith(`${jobId}\u0000`)) this.last.delete(k);
    return out;
  }

  private take(jobId: string, all = true): E[] {
    const out: E[] = [];
    const t = this.now();
    for (const [k, e] of [...this.pending]) {
      if (!k.startsWith(`${jobId}\u0000`)) continue;
      if (!all && t - (this.last.get(k) ?? -Infinity) < this.intervalMs) continue;
      this.pending.delete(k);
      this.last.set(k, t);
      out.push(e);
    }
    return out;
  }
}

/** A coalescer keeping at most ~1000/intervalMs step events per second per job. */
export function coalesce<E extends { type: string } = TrainEvent>(
  intervalMs = 100,
  now: () => number = () => Date.now(),
): Coalescer<E> {
  return new Coalescer<E>(intervalMs, now);
}
