import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonLines, last, cli, STACK_LINE, tmpDir } from './helpers';

let dir: string;

beforeAll(async () => {
  dir = await tmpDir();
});

afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

function expectCleanError(r: { code: number | null; stderr: string }, message: RegExp) {
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/^error: /m);
  expect(r.stderr).toMatch(message);
  expect(r.stderr, 'no stack trace').not.toMatch(STACK_LINE);
}

describe('expected errors: exit 1, a clear message, no stack trace', () => {
  it('an empty corpus file is named', async () => {
    const file = path.join(dir, 'empty.txt');
    await fs.writeFile(file, '');
    const r = await cli([
      'pretrain',
      '--corpus',
      file,
      '--out',
      path.join(dir, 'r1'),
      '--backend',
      'wasm',
    ]);
    expectCleanError(r, /empty.*empty\.txt|empty\.txt.*empty/i);
  });

  it('a binary corpus file is named, and --json ends with an error line', async () => {
    const file = path.join(dir, 'binary.txt');
    await fs.writeFile(file, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2, 0, 0, 255, 254]));
    const r = await cli([
      'pretrain',
      '--corpus',
      file,
      '--out',
      path.join(dir, 'r2'),
      '--backend',
      'wasm',
      '--json',
    ]);
    expectCleanError(r, /binary\.txt.*binary/);
    const lines = jsonLines(r.stdout);
    expect(lines[0]).toMatchObject({ type: 'backend' });
    expect(last(lines)).toEqual({ type: 'error', message: expect.stringContaining('binary.txt') });
  });

  it('a missing corpus path is named', async () => {
    const file = path.join(dir, 'nope.txt');
    const r = await cli([
      'tokenizer',
      'train',
      '--corpus',
      file,
      '--out',
      path.join(dir, 't'),
      '--backend',
      'cpu',
    ]);
    expectCleanError(r, /not found: .*nope\.txt/);
  });

  it('a missing --model folder', async () => {
    const model = path.join(dir, 'no-such-model');
    const r = await cli(['generate', '--model', model, '--prompt', 'hi', '--backend', 'wasm']);
    expectCleanError(r, /model folder not found: .*no-such-model/);
  });

  it('a folder that is not a model', async () => {
    const r = await cli(['score', '--model', dir, '--text', 'hi', '--backend', 'wasm']);
    expectCleanError(r, /not a model directory \(no config\.json\)/);
  });

  it('a folder that is not a run', async () => {
    const r = await cli(['resume', '--run', dir, '--backend', 'wasm']);
    expectCleanError(r, /not a run directory/);
  });

  it('a missing tokenizer folder', async () => {
    const r = await cli([
      'tokenizer',
      'encode',
      '--tokenizer',
      path.join(dir, 'nt'),
      '--text',
      'x',
      '--backend',
      'cpu',
    ]);
    expectCleanError(r, /Tokenizer folder not found/);
  });

  it('--debug adds the stack trace', async () => {
    const model = path.join(dir, 'no-such-model');
    const r = await cli(['generate', '--model', model, '--backend', 'wasm', '--debug']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(STACK_LINE);
  });
});
