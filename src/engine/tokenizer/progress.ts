/** Progress reporting, cancellation and event-loop yielding shared by the trainers. */
import type { TrainProgress } from './types';

export interface TrainOptions {
  onProgress?: (p: TrainProgress) => void;
  signal?: AbortSignal;
}

/** A corpus may say how far it has been read (readCorpusChunks does); used for progress. */
export interface CorpusPosition {
  readonly bytesRead: number;
  readonly totalBytes: number | undefined;
}

export function corpusFraction(corpus: object): number {
  const c = corpus as Partial<CorpusPosition>;
  if (typeof c.bytesRead !== 'number' || !c.totalBytes) return 0;
  return Math.min(1, c.bytesRead / c.totalBytes);
}

const REPORT_MS = 100;
const YIELD_MS = 50;

export class Progress {
  private lastReport = -Infinity;
  private lastYield = performance.now();

  constructor(private readonly opts: TrainOptions) {}

  /** Reports at most every 100 ms unless `force`. */
  report(phase: TrainProgress['phase'], fraction: number, message: string, force = false): void {
    const now = performance.now();
    if (!this.opts.onProgress || (!force && now - this.lastReport < REPORT_MS)) return;
    this.lastReport = now;
    this.opts.onProgress({ phase, fraction, message });
  }

  /** Lets the event loop run now and then (so an abort can arrive); throws once aborted. */
  async tick(): Promise<void> {
    this.opts.signal?.throwIfAborted();
    if (performance.now() - this.lastYield < YIELD_MS) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.lastYield = performance.now();
    this.opts.signal?.throwIfAborted();
  }
}

export function formatCount(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}
