/** `gpt-studio export`: formats, --json events with the result last, refusals and exit codes. */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bpeTok, charTok, makeRun } from '../engine/checkpoint/fixtures';
import { jsonLines, last, cli, tmpDir } from './helpers';

let dir: string;
beforeAll(async () => {
  dir = await tmpDir();
  await makeRun(path.join(dir, 'bpe-run'), await bpeTok());
  await makeRun(path.join(dir, 'char-run'), charTok());
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('gpt-studio export', () => {
  it('writes a Hugging Face folder and lists its files', async () => {
    const out = path.join(dir, 'hf');
    const r = await cli(['export', '--model', path.join(dir, 'bpe-run'), '--out', out]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/exported .*bpe-run as hf \(float32\) to .*hf: [\d.]+ KiB/);
    for (const f of [
      'README.md',
      'config.json',
      'model.safetensors',
      'tokenizer.json',
      'vocab.json',
    ]) {
      expect(r.stdout).toContain(`  ${f}\n`);
    }
    expect(await fs.readFile(path.join(out, 'README.md'), 'utf8')).toContain('**Steps**: 120');
  });

  it('--json: progress events, then the result as the last line', async () => {
    const out = path.join(dir, 'gguf');
    const r = await cli([
      'export',
      '--model',
      path.join(dir, 'bpe-run'),
      '--out',
      out,
      '--format',
      'gguf',
      '--dtype',
      'float16',
      '--json',
    ]);
    expect(r.code).toBe(0);
    const lines = jsonLines(r.stdout);
    expect(lines.slice(0, -1).every((l) => l.type === 'checkpoints.progress')).toBe(true);
    expect(last(lines)).toMatchObject({
      type: 'checkpoints.result',
      operation: 'export',
      format: 'gguf',
      dtype: 'float16',
      out,
      files: ['bpe-run.f16.gguf'],
    });
    const magic = (await fs.readFile(path.join(out, 'bpe-run.f16.gguf'))).subarray(0, 4);
    expect(magic.toString()).toBe('GGUF');
  });

  it('refuses GGUF for a character-level model, says why, exits 1 and writes nothing', async () => {
    const out = path.join(dir, 'char-gguf');
    const r = await cli([
      'export',
      '--model',
      path.join(dir, 'char-run'),
      '--out',
      out,
      '--format',
      'gguf',
      '--json',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /error: cannot export .* as GGUF: the model's tokenizer is character-level/,
    );
    expect(last(jsonLines(r.stdout))).toMatchObject({ type: 'error' });
    await expect(fs.access(out)).rejects.toThrow();
  });

  it('cluster: the DDP folder; pretrain --from its model starts a run on those weights', async () => {
    const out = path.join(dir, 'cluster');
    const r = await cli([
      'export',
      '--model',
      path.join(dir, 'char-run'),
      '--out',
      out,
      '--format',
      'cluster',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    for (const f of ['train.py', 'data/train.bin', 'training_state.json', 'model/config.json']) {
      expect(r.stdout).toContain(`  ${f}\n`);
    }
    const model = path.join(out, 'model');
    const corpus = path.join(dir, 'char-run-corpus.txt');
    const more = path.join(dir, 'more');
    const clash = await cli([
      'pretrain',
      '--from',
      model,
      '--corpus',
      corpus,
      '--out',
      more,
      '--preset',
      'small',
    ]);
    expect(clash.code).toBe(2);
    expect(clash.stderr).toContain('--preset does not apply with --from');
    const run = await cli([
      'pretrain',
      '--from',
      model,
      '--corpus',
      corpus,
      '--out',
      more,
      '--steps',
      '1',
      '--batch-size',
      '2',
      '--eval-every',
      '0',
      '--sample-every',
      '0',
      '--workers',
      '1',
      '--backend',
      'wasm',
      '--json',
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(last(jsonLines(run.stdout))).toMatchObject({ type: 'result', step: 1 });
    const from = JSON.parse(await fs.readFile(path.join(model, 'config.json'), 'utf8'));
    const made = JSON.parse(await fs.readFile(path.join(more, 'config.json'), 'utf8'));
    for (const k of ['n_layer', 'n_head', 'n_embd', 'n_positions', 'vocab_size']) {
      expect(made[k], k).toBe(from[k]);
    }
  });

  it('names a missing model folder, and a bad --format is a usage error', async () => {
    const missing = await cli(['export', '--model', path.join(dir, 'nope'), '--out', dir]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`error: model folder not found: ${path.join(dir, 'nope')}`);
    const usage = await cli(['export', '--model', dir, '--out', dir, '--format', 'onnx']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/--format/);
  });
});
