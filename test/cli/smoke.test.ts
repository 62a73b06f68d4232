/**
 * The few checks that need the real program as a child process: the package bin and the entry
 * point (src/cli/main.ts: console to stderr, the exit code). Everything else runs in-process with
 * `cli`; the Ctrl-C and SIGTERM tests in train.test.ts spawn too, as signals need a process.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, gpt2TokenizerDir, jsonLines, last, ROOT, spawnCli, tmpDir } from './helpers';

interface Attempt {
  name: string;
  status: string;
}

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
    // tokenizers are plain JavaScript: no backend is loaded, so no backend line
    expect(jsonLines(r.stdout)).toEqual([{ type: 'result', tokens: [15496, 995] }]);
  });

  it("auto backend selection keeps Dawn's native warnings out of the output", async () => {
    // Dawn writes them to the process's stderr from C++ (lavapipe: "maxDynamic… artificially
    // reduced"), so only the real process shows them; auto asks for the adapter in a child.
    const r = await spawnCli(['presets', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/artificially reduced|^Warning: /m);
    const report = jsonLines(r.stdout)[0] as { type: string; name: string; attempts: Attempt[] };
    expect(report.type).toBe('backend');
    const webgpu = report.attempts.find((a) => a.name === 'webgpu');
    if (report.name !== 'node-gpu') expect(webgpu?.status).not.toBe('not-tried'); // it was probed
  });

  it('a usage error exits 2, with the error as the last JSON line', async () => {
    const r = await spawnCli(['generate', '--model', 'm', '--json', '--max-tokens', '-3']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: --max-tokens must be at least 1/m);
    expect(last(jsonLines(r.stdout))).toMatchObject({ type: 'error' });
  });
});
