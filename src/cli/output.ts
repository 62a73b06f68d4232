/**
 * Human vs --json printing. With --json, stdout carries only JSON lines (one object each; the
 * result last); everything meant for people goes to stderr. Without it, stdout gets the useful
 * output (progress, generated text, tables) and stderr the notes (backend, hints).
 */

/** Where Output writes: process.stdout/stderr, or anything alike (tests collect the text). */
export interface OutputStream {
  write(text: string, done?: (err?: Error | null) => void): boolean;
  readonly isTTY?: boolean;
  readonly writableEnded?: boolean;
}

export interface OutputOptions {
  json: boolean;
  stdout?: OutputStream;
  stderr?: OutputStream;
}

export class Output {
  readonly json: boolean;
  /** stdout is a terminal: a live status line can be rewritten in place. */
  readonly tty: boolean;
  /** ANSI styling allowed on stdout (a terminal, and NO_COLOR unset). */
  readonly color: boolean;
  private readonly stdout: OutputStream;
  private readonly stderr: OutputStream;
  /** A status line is on screen without its newline yet. */
  private live = false;

  constructor(opts: OutputOptions) {
    this.json = opts.json;
    this.stdout = opts.stdout ?? process.stdout;
    this.stderr = opts.stderr ?? process.stderr;
    this.tty = this.stdout.isTTY === true;
    this.color = this.tty && !process.env.NO_COLOR && process.env.TERM !== 'dumb';
  }

  /** One JSON line on stdout (--json mode). NaN/Infinity become null, as JSON has no such numbers. */
  emit(obj: object): void {
    this.stdout.write(JSON.stringify(obj) + '\n');
  }

  /** Raw text on stdout (streamed generation). */
  write(text: string): void {
    this.endLive();
    this.stdout.write(text);
  }

  /** A line on stdout. */
  line(text = ''): void {
    this.endLive();
    this.stdout.write(text + '\n');
  }

  /**
   * A progress line: on a terminal it replaces the previous status line in place (no newline
   * until `endLive` or another print), elsewhere it is a plain line.
   */
  status(text: string): void {
    if (this.tty) {
      this.stdout.write(`\r${text}\x1b[K`);
      this.live = true;
    } else {
      this.stdout.write(text + '\n');
    }
  }

  /** Ends a pending status line with a newline so the next output starts on its own line. */
  endLive(): void {
    if (this.live) {
      this.stdout.write('\n');
      this.live = false;
    }
  }

  /** A note for people, on stderr. */
  note(text: string): void {
    if (this.live && this.stderr.isTTY) this.endLive();
    this.stderr.write(text + '\n');
  }

  warn(text: string): void {
    this.note(`warning: ${text}`);
  }

  /** Resolves once stdout and stderr have taken everything written so far. */
  async flush(): Promise<void> {
    this.endLive();
    await Promise.all(
      [this.stdout, this.stderr].map(
        (s) =>
          new Promise<void>((resolve) =>
            s.writableEnded ? resolve() : s.write('', () => resolve()),
          ),
      ),
    );
  }

  dim(text: string): string {
    return this.color ? `\x1b[2m${text}\x1b[22m` : text;
  }

  bold(text: string): string {
    return this.color ? `\x1b[1m${text}\x1b[22m` : text;
  }
}

/** 3723000 → "1:02:03"; negative or non-finite → "-:--:--". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '-:--:--';
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}`;
}

/** 950 → "950", 12345 → "12.3k", 4.2e6 → "4.20M". */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (a >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  if (a >= 1e3) return `${(n / 1e3).toFixed(2)}k`;
  return String(Math.round(n));
}

/** A loss, 4 decimals; '—' when unknown. */
export function formatLoss(x: number | null | undefined): string {
  return typeof x === 'number' && Number.isFinite(x) ? x.toFixed(4) : '—';
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  if (err && typeof err === 'object' && 'message' in err) return String(err.message);
  return String(err);
}

/** An error that is a cancellation (AbortController.abort → AbortError). */
export function isAbortError(err: unknown): boolean {
  return (
    typeof err === 'object' && err !== null && (err as { name?: unknown }).name === 'AbortError'
  );
}

/**
 * Errors JavaScript itself throws for programming mistakes. Everything else the engine throws
 * carries a message meant for the user (TrainingError, CheckpointError, corpus/tokenizer errors).
 */
export function isInternalError(err: unknown): boolean {
  return (
    err instanceof TypeError ||
    err instanceof ReferenceError ||
    err instanceof SyntaxError ||
    err instanceof EvalError ||
    !(err instanceof Error)
  );
}
