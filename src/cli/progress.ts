/** Human-readable progress for training (pretrain, resume) and tokenizer training. */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type {
  TrainEvent,
  TrainResult,
  TrainSampleEvent,
  TrainStartEvent,
  TrainStepEvent,
} from '../common/events';
import { PROGRAM } from './args';
import { formatCount, formatDuration, formatLoss, type Output } from './output';

/** Shows tokenizer training progress: a live line on a terminal, milestones elsewhere. */
export class TokenizerProgressView {
  private phase = '';
  private nextMark = 0;

  constructor(private readonly out: Output) {}

  update(p: { phase: string; fraction: number; message: string }): void {
    const pct = Math.floor(Math.min(1, Math.max(0, p.fraction)) * 100);
    const text = `tokenizer: ${p.message}${p.fraction < 1 ? ` (${pct}%)` : ''}`;
    if (this.out.tty) {
      this.out.status(text);
      if (p.fraction >= 1) this.out.endLive();
      return;
    }
    if (p.phase !== this.phase) {
      this.phase = p.phase;
      this.nextMark = 0;
    }
    // Off a terminal: every quarter of a phase, and its end.
    if (p.fraction >= 1 || p.fraction >= this.nextMark) {
      this.out.line(text);
      this.nextMark = p.fraction >= 1 ? Infinity : (Math.floor(p.fraction * 4) + 1) / 4;
    }
  }
}

interface ModelShape {
  nLayer?: number;
  nHead?: number;
  nEmbd?: number;
  blockSize?: number;
  vocabSize?: number;
}

/** The model's shape from the run's config.json, for the header (best effort). */
function readShape(runDir: string): ModelShape {
  try {
    const c = JSON.parse(readFileSync(path.join(runDir, 'config.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    const num = (k: string) => (typeof c[k] === 'number' ? c[k] : undefined);
    return {
      nLayer: num('n_layer'),
      nHead: num('n_head'),
      nEmbd: num('n_embd'),
      blockSize: num('n_positions'),
      vocabSize: num('vocab_size'),
    };
  } catch {
    return {};
  }
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** Shell-quotes a path for a copy-pasteable hint. */
export function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

export interface TrainViewOptions {
  /** Print a progress line every this many steps. */
  logEvery: number;
  /** The run's evaluation interval, if known: a step line waits for its evaluation only then. */
  evalEvery?: number;
  /** The run's stop signal: once aborted, the final save is left to finish(). */
  signal?: AbortSignal;
  /** The last validation loss known before this session (a resumed run's). */
  valLoss?: number | null;
}

/**
 * Prints a run's events for people:
 *
 *   step  120/1000  loss 1.8412  val 1.9024  18.3k tok/s  ETA 0:04:10
 *
 * On a terminal the line is rewritten in place each time and kept (a new line starts) when an
 * evaluation, a sample or a checkpoint comes; elsewhere every printed line stays. A step line
 * waits for the same step's evaluation, if one follows, so it can show the new validation loss.
 */
export class TrainView {
  private start: TrainStartEvent | undefined;
  private totalSteps = 0;
  private valLoss: number | null = null;
  private lastStep: TrainStepEvent | undefined;
  /** A step line not printed yet (off a terminal) or still live (on one). */
  private pending: TrainStepEvent | undefined;
  private readonly tokenizer: TokenizerProgressView;

  constructor(
    private readonly out: Output,
    private readonly opts: TrainViewOptions,
  ) {
    this.tokenizer = new TokenizerProgressView(out);
    this.valLoss = opts.valLoss ?? null;
  }

  onEvent(e: TrainEvent): void {
    if (e.type !== 'eval') this.flushPending();
    switch (e.type) {
      case 'tokenizer':
        this.tokenizer.update(e);
        break;
      case 'start':
        this.onStart(e);
        break;
      case 'step':
        this.onStep(e);
        break;
      case 'eval': {
        this.valLoss = e.valLoss;
        const step = this.pending?.step === e.step ? this.pending : this.lastStep;
        this.pending = undefined;
        if (step) {
          this.out.status(this.stepLine(step));
          this.out.endLive();
        }
        break;
      }
      case 'sample':
        this.onSample(e);
        break;
      case 'zeroshot':
        this.out.line(
          `  zero-shot ${e.set} at step ${e.step}: accuracy ${(e.accuracy * 100).toFixed(1)}% ` +
            `(${e.correct}/${e.n}) · majority ${(e.majority * 100).toFixed(1)}% · chance ` +
            `${(e.chance * 100).toFixed(1)}%`,
        );
        break;
      case 'checkpoint':
        // The run's final save is reported by finish().
        if (e.step < this.totalSteps && !this.opts.signal?.aborted) {
          this.out.line(this.out.dim(`  checkpoint saved at step ${e.step}`));
        }
        break;
      case 'log':
        if (e.level === 'info') this.out.note(e.message);
        else this.out.note(`${e.level === 'warn' ? 'warning' : 'error'}: ${e.message}`);
        break;
    }
  }

  private onStart(e: TrainStartEvent): void {
    this.start = e;
    this.totalSteps = e.totalSteps;
    const shape = readShape(e.runDir);
    const params = `${formatCount(e.params)} parameters`;
    const dims =
      shape.nLayer !== undefined
        ? ` · ${plural(shape.nLayer, 'layer')} × ${plural(shape.nHead ?? 0, 'head')} × ` +
          `${shape.nEmbd} dims · context ${shape.blockSize} · vocab ${shape.vocabSize}`
        : '';
    this.out.line(`run    ${e.runDir}${e.resumed ? ` (resuming at step ${e.step})` : ''}`);
    this.out.line(`model  ${params}${dims}`);
    this.out.line(
      `data   ${formatCount(e.trainTokens)} train tokens · ${formatCount(e.valTokens)} val tokens · ` +
        `${formatCount(e.tokensPerStep)} tokens/step · ${e.backend}`,
    );
    if (e.step >= e.totalSteps) {
      this.out.line(
        `The run is already at step ${e.step} of ${e.totalSteps}; pass --more N, or --steps N ` +
          `(the total, more than ${e.step}), to train further.`,
      );
    } else {
      this.out.line(`train  steps ${e.step + 1}–${e.totalSteps}`);
    }
  }

  private onStep(e: TrainStepEvent): void {
    this.lastStep = e;
    this.totalSteps = e.totalSteps;
    const first = this.start !== undefined && e.step === this.start.step + 1;
    if (!(first || e.step % this.opts.logEvery === 0 || e.step === e.totalSteps)) return;
    this.pending = e;
    if (this.out.tty) this.out.status(this.stepLine(e));
    else if (!this.evalFollows(e)) this.flushPending();
  }

  /** Whether the engine evaluates after this step (unknown interval: assume it may). */
  private evalFollows(e: TrainStepEvent): boolean {
    const every = this.opts.evalEvery;
    if (every === undefined) return true;
    if (every <= 0 || (this.start !== undefined && this.start.valTokens === 0)) return false;
    return e.step % every === 0 || e.step === e.totalSteps;
  }

  /** Prints (off a terminal) or keeps (on one) a step line that no evaluation followed. */
  private flushPending(): void {
    if (!this.pending) return;
    if (!this.out.tty) this.out.line(this.stepLine(this.pending));
    this.pending = undefined;
  }

  stepLine(e: TrainStepEvent): string {
    const w = String(e.totalSteps).length;
    return [
      `step ${String(e.step).padStart(w)}/${e.totalSteps}`,
      `loss ${formatLoss(e.trainLoss)}`,
      `val ${formatLoss(this.valLoss)}`,
      `${formatCount(e.tokensPerSecond)} tok/s`,
      `ETA ${formatDuration(e.etaMs)}`,
    ].join('  ');
  }

  private onSample(e: TrainSampleEvent): void {
    this.out.endLive();
    this.out.line(`── sample at step ${e.step} ${'─'.repeat(40)}`);
    const body = this.out.bold(e.prompt) + e.text;
    for (const l of body.split('\n')) this.out.line(`│ ${l}`);
    this.out.line('─'.repeat(60));
  }

  finish(r: TrainResult): void {
    this.flushPending();
    this.out.endLive();
    const total = this.totalSteps || r.step;
    const losses = `train loss ${formatLoss(r.trainLoss)}, val loss ${formatLoss(r.valLoss)}`;
    const speed = r.tokensPerSecond > 0 ? `, ${formatCount(r.tokensPerSecond)} tok/s` : '';
    const dir = shellQuote(r.runDir);
    if (r.stopped === 'cancelled') {
      this.out.line(`stopped at step ${r.step} of ${total} (${losses}); saved to ${r.runDir}`);
      this.out.line(`continue with: ${PROGRAM} resume --run ${dir}`);
      return;
    }
    this.out.line(
      `done: step ${r.step}/${total} in ${formatDuration(r.elapsedMs)} — ${losses}${speed}`,
    );
    this.out.line(`saved to ${r.runDir}`);
    this.out.line(`  generate: ${PROGRAM} generate --model ${dir} --prompt "..."`);
    this.out.line(`  continue: ${PROGRAM} resume --run ${dir} --more ${r.step}`);
  }
}
