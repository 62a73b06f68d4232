/**
 * The finetune and evaluate commands, as a user runs them: a tiny model fine-tuned on a labeled
 * JSONL file (--json events, the result last), its checkpoint evaluated, bad rows reported, and
 * usage mistakes caught.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import { saveModelDir } from '../../src/engine/checkpoint/modelDir';
import { GPT } from '../../src/engine/model/gpt';
import { CharTokenizer } from '../../src/engine/tokenizer';
import { Rng } from '../../src/engine/util/rng';
import { jsonLines, last, cli, tmpDir } from './helpers';

let dir: string;
let base: string;
let data: string;

function synthetic(n: number, seed: number): string {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const pos = rng.next() < 0.5;
    const letters = pos ? 'abcde' : 'vwxyz';
    const text = Array.from({ length: 3 + rng.int(5) }, () => letters[rng.int(5)]).join('');
    return JSON.stringify({ review: text, sentiment: pos ? 'good' : 'bad' });
  }).join('\n');
}

beforeAll(async () => {
  await initBackend('wasm');
  dir = await tmpDir('gpt-studio-cli-ft-');
  base = path.join(dir, 'base');
  const tok = CharTokenizer.fromCodePoints(
    Array.from('abcdefghijklmnopqrstuvwxyz ', (c) => c.codePointAt(0)!),
  );
  const model = GPT.init(
    {
      vocabSize: tok.vocabSize,
      blockSize: 24,
      nLayer: 1,
      nHead: 2,
      nEmbd: 32,
      dropout: 0,
      layerNormEpsilon: 1e-5,
      activation: 'gelu_new',
      bias: true,
    },
    1,
  );
  await saveModelDir(base, model, tok);
  model.dispose();
  data = path.join(dir, 'train.jsonl');
  await fs.writeFile(data, synthetic(160, 1) + '\n{"review":"","sentiment":"bad"}\n');
});

afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const FAST = [
  '--lr',
  '3e-3',
  '--batch-size',
  '16',
  '--epochs',
  '3',
  '--warmup-percent',
  '5',
  '--backend',
  'wasm',
];

describe('finetune and evaluate', () => {
  it('finetune --json: guessed columns, per-row problems, step events split into L2 and L1, the result last', async () => {
    const out = path.join(dir, 'ft');
    const r = await cli([
      'finetune',
      '--model',
      base,
      '--task',
      'classification',
      '--data',
      data,
      '--out',
      out,
      '--json',
      ...FAST,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const lines = jsonLines(r.stdout);
    const info = lines.find((l) => l.type === 'finetune.data')!;
    expect(info.columns).toEqual({ text: 'review', label: 'sentiment' });
    expect(info.labels).toEqual(['bad', 'good']);
    const train = info.train as {
      rows: number;
      imported: number;
      problems: Array<{ message: string }>;
    };
    expect(train.rows).toBe(161);
    expect(train.imported).toBe(160);
    expect(train.problems[0]!.message).toBe('train.jsonl row 161: the text ("review") is empty');
    const step = lines.find((l) => l.type === 'finetune.step')!;
    expect(step.loss as number).toBeCloseTo((step.l2 as number) + 0.5 * (step.l1 as number), 4);
    expect(lines.filter((l) => l.type === 'finetune.epoch')).toHaveLength(3);
    const result = last(lines);
    expect(result.type).toBe('finetune.result');
    expect(result.outcome).toBe('completed');
    expect((result.metrics as { accuracy: number }).accuracy).toBeGreaterThanOrEqual(0.9);

    const ev = await cli([
      'evaluate',
      '--model',
      out,
      '--data',
      data,
      '--json',
      '--backend',
      'wasm',
    ]);
    expect(ev.code, ev.stderr).toBe(0);
    const res = last(jsonLines(ev.stdout));
    expect(res.type).toBe('evaluate.result');
    expect(res.accuracy as number).toBeGreaterThanOrEqual(0.9);
    expect(typeof res.macroF1).toBe('number');
    expect((res.confusion as number[][]).flat().reduce((a, b) => a + b, 0)).toBe(160);

    // the human view: a confusion matrix and the saved folder
    const human = await cli(['evaluate', '--model', out, '--data', data, '--backend', 'wasm']);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/accuracy [01]\.\d{4} · macro-F1 [01]\.\d{4}/);
    expect(human.stdout).toContain('confusion (rows: true label, columns: predicted)');
    expect(human.stderr).toContain('train.jsonl row 161');
  }, 120_000);

  it('defaults by model size, and a summary that says when accuracy stayed at the majority rate', async () => {
    // every text the same: the model cannot beat always answering the commonest label
    const flat = path.join(dir, 'flat.jsonl');
    const rows = Array.from({ length: 40 }, (_, i) =>
      JSON.stringify({ review: 'abc', sentiment: i % 4 === 0 ? 'bad' : 'good' }),
    );
    await fs.writeFile(flat, rows.join('\n') + '\n');
    const r = await cli([
      'finetune',
      '--model',
      base,
      '--task',
      'classification',
      '--data',
      flat,
      '--out',
      path.join(dir, 'ft-flat'),
      '--batch-size',
      '16',
      // one worker: no pool of threads to start for these few steps (the case above keeps the
      // default)
      '--workers',
      '1',
      '--backend',
      'wasm',
    ]);
    expect(r.code, r.stderr).toBe(0);
    // no --lr or --epochs: the small-model rule, said on stderr
    expect(r.stderr).toMatch(
      /learning rate by model size: small model \([\d.]+K parameters\): lr 1e-3; GPT-1's 6\.25e-5 is for models of about 100M parameters and up/,
    );
    expect(r.stdout).toMatch(/epoch 3\/3/);
    expect(r.stdout).toMatch(
      /validation accuracy stayed at the majority rate: \d+% → \d+% → \d+%, while always answering the commonest label scores \d+%/,
    );
    expect(r.stdout).toContain('  try: more epochs (6)');
    expect(r.stdout).toContain('  try: more labeled examples');
  }, 60_000);

  it('usage mistakes: a missing --out, an unknown task, a column the file lacks', async () => {
    const a = await cli(['finetune', '--model', base, '--task', 'classification', '--data', data]);
    expect(a.code).toBe(2);
    expect(a.stderr).toContain('missing required option --out');
    const b = await cli([
      'finetune',
      '--model',
      base,
      '--task',
      'qa',
      '--data',
      data,
      '--out',
      'x',
    ]);
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/--task/);
    const c = await cli([
      'finetune',
      '--model',
      base,
      '--task',
      'classification',
      '--data',
      data,
      '--out',
      path.join(dir, 'x'),
      '--text-column',
      'body',
      '--backend',
      'wasm',
    ]);
    expect(c.code).toBe(1);
    expect(c.stderr).toContain(
      'train.jsonl: no column "body" (the file\'s columns: review, sentiment)',
    );
  }, 60_000);
});
