/**
 * The few checks that need the real program as a child process: the package bin and the entry
 * point (src/cli/main.ts: console to stderr, the exit code). Everything else runs in-process with
 * `cli`; the Ctrl-C and SIGTERM tests in train.test.ts spawn too, as signals need a process.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, gpt2TokenizerDir, jsonLines, last, ROOT, spawnCli, tmpDir } from './helpers';

let dir: string;
beforeAll(async () => {
  dir = await tmpDir();
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe.concurrent('the real process', () => {
  it('the package bin prints the same help as the program', async () => {
    const bin = path.join(ROOT, 'bin/gpt-studio.mjs');
    const mode = (await fs.stat(bin)).mode;
    expect(mode & 0o111, 'bin/gpt-studio.mjs is executable').not.toBe(0);
    expect((await fs.readFile(bin, 'utf8')).startsWith('#!/usr/bin/env node\n')).toBe(true);
    const r = await spawnCli(['--help'], { entry: 'bin/gpt-studio.mjs' });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe((await cli(['--help'])).stdout);
  });

  it('a command with --json: only JSON lines on stdout, the result last, exit 0', async () => {
    const gpt2 = await gpt2TokenizerDir(dir);
    const r = await spawnCli([
      'tokenizer',
      'encode',
      '--tokenizer',
      gpt2,
      '--text',
      'Hello world',
      '--backend',
      'cpu',
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const lines = jsonLines(r.stdout);
    expect(lines[0]).toMatchObject({ type: 'backend', name: 'cpu' });
    expect(last(lines)).toEqual({ type: 'result', tokens: [15496, 995] });
  });

  it('a usage error exits 2, with the error as the last JSON line', async () => {
    const r = await spawnCli(['generate', '--model', 'm', '--json', '--max-tokens', '-3']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: --max-tokens must be at least 1/m);
    expect(last(jsonLines(r.stdout))).toMatchObject({ type: 'error' });
  });
});
