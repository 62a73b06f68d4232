/** What every command gets: its parsed options, the output, the backend, and Ctrl-C handling. */
import type { BackendPreference, BackendReport } from '../engine/backend';
import type { HelpInfo, OptionSpec, ParsedArgs } from './args';
import type { Output } from './output';

/** Exit codes. */
export const EXIT = { ok: 0, error: 1, usage: 2, interrupted: 130, terminated: 143 } as const;

/** The signal that stopped the command, if one did. */
let stoppedBy: 'SIGINT' | 'SIGTERM' | null = null;

/** 130 after Ctrl-C (SIGINT), 143 after SIGTERM: what a shell expects of a stopped program. */
export function interruptExitCode(): number {
  return stoppedBy === 'SIGTERM' ? EXIT.terminated : EXIT.interrupted;
}

export interface Context {
  args: ParsedArgs;
  out: Output;
}

export interface Command extends Omit<HelpInfo, 'options'> {
  /** One line for the command list. */
  summary: string;
  options: readonly OptionSpec[];
  /** Returns the exit code. */
  run(ctx: Context): Promise<number>;
}

/**
 * Selects the tfjs backend before any tensor exists. With --json the report is the first line
 * (`{"type":"backend", ...report}`); otherwise its summary goes to stderr.
 */
export async function startBackend(ctx: Context): Promise<BackendReport> {
  const { initBackend } = await import('../engine/backend');
  const pref = (ctx.args.string('backend') ?? 'auto') as BackendPreference;
  const report = await initBackend(pref);
  if (ctx.out.json) ctx.out.emit({ type: 'backend', ...report });
  else ctx.out.note(`backend: ${report.summary}`);
  return report;
}

export interface Interrupt {
  signal: AbortSignal;
  /** Removes the SIGINT and SIGTERM handlers. */
  dispose(): void;
}

/**
 * The first Ctrl-C or SIGTERM aborts `signal` (the engine finishes the current step, saves, cleans
 * up and returns; the program then exits 130 or 143); a second one exits at once.
 */
export function onInterrupt(out: Output, what: string): Interrupt {
  const controller = new AbortController();
  // On a terminal the ^C echo is on the current line: start a new one.
  const nl = process.stderr.isTTY ? '\n' : '';
  const handler = (sig: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      out.note(`${nl}interrupted again: exiting now`);
      process.exit(interruptExitCode());
    }
    stoppedBy = sig === 'SIGTERM' ? 'SIGTERM' : 'SIGINT';
    const again = sig === 'SIGTERM' ? 'another SIGTERM' : 'Ctrl-C again';
    out.note(`${sig === 'SIGTERM' ? '' : nl}${what} (${again} quits immediately)`);
    controller.abort();
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}
