/** `gpt-studio import`: a Hub-layout GPT-2 folder in, a usable model out; refusals name the cause. */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeHubGpt2 } from '../engine/checkpoint/fixtures';
import { tinyCheckpointConfig as tinyConfig } from '../engine/helpers';
import { jsonLines, last, cli, tmpDir } from './helpers';

let dir: string;
beforeAll(async () => {
  dir = await tmpDir();
  await makeHubGpt2(path.join(dir, 'gpt2'), tinyConfig({ vocabSize: 50257, nLayer: 1 }));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('gpt-studio import', () => {
  it('imports a GPT-2 folder, which then scores text', async () => {
    const out = path.join(dir, 'models', 'gpt2');
    const r = await cli(['import', '--from', path.join(dir, 'gpt2'), '--out', out, '--json']);
    expect(r.code).toBe(0);
    expect(last(jsonLines(r.stdout))).toMatchObject({
      type: 'checkpoints.result',
      operation: 'import',
      out,
      vocabSize: 50257,
      tokenizer: 'bpe',
    });
    const score = await cli(['score', '--model', out, '--text', 'Hello world', '--json']);
    expect(score.code).toBe(0);
    expect(last(jsonLines(score.stdout))).toMatchObject({ tokens: [15496, 995] });
  });

  it('refuses pytorch_model.bin, saying unpickling can run code', async () => {
    const src = path.join(dir, 'pickled');
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, 'config.json'), '{}');
    await fs.writeFile(path.join(src, 'pytorch_model.bin'), 'x');
    const r = await cli(['import', '--from', src, '--out', path.join(dir, 'p')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /pytorch_model\.bin is present; it is refused because .*unpickling can run arbitrary code/,
    );
  });

  it('a missing --from is a usage error', async () => {
    const r = await cli(['import', '--out', path.join(dir, 'x')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--from/);
  });
});
