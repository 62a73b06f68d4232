/**
 * Fine-tuning end to end on tiny models: a separable synthetic task learned to ≥ 95% accuracy,
 * the checkpoint (head, labels, grown vocabulary) reloaded for evaluation and classification,
 * and bad rows reported one by one while the rest is imported.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../../src/engine/backend';
import { finetunedAccuracy } from '../../../src/engine/console/compare';
import { saveModelDir } from '../../../src/engine/checkpoint/modelDir';
import { loadClassifier } from '../../../src/engine/finetune/checkpoint';
import { finetune } from '../../../src/engine/finetune/finetune';
import { loadExamples, readFinetuneData } from '../../../src/engine/finetune/load';
import { classify, evaluate } from '../../../src/engine/finetune/predict';
import { computeMetrics } from '../../../src/engine/finetune/metrics';
import { previewFinetune } from '../../../src/engine/finetune/preview';
import { finetuneLearningRate } from '../../../src/engine/finetune/schedule';
import { inRanges, readTrainedRows, toRanges } from '../../../src/engine/finetune/trainedRows';
import { GPT } from '../../../src/engine/model/gpt';
import { Rng } from '../../../src/engine/util/rng';
import { charTokenizer, removeDir, sha256File, tempDir, tinyConfig } from '../helpers';

let dir: string;
let base: string;
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz ';

beforeAll(async () => {
  await initBackend('wasm');
  dir = await tempDir('gpt-studio-finetune-');
  base = path.join(dir, 'base');
  const tok = charTokenizer(ALPHABET);
  const model = GPT.init(
    tinyConfig({ vocabSize: tok.vocabSize, blockSize: 24, nEmbd: 32, nHead: 2, nLayer: 1 }),
    1,
  );
  await saveModelDir(base, model, tok);
  model.dispose();
});

afterAll(async () => {
  await removeDir(dir);
});

/** Words drawn from "abcde" are positive, from "vwxyz" negative. */
function synthetic(n: number, seed: number): string {
  const rng = new Rng(seed);
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const pos = rng.next() < 0.5;
    const letters = pos ? 'abcde' : 'vwxyz';
    const len = 3 + rng.int(6);
    const text = Array.from({ length: len }, () => letters[rng.int(5)]).join('');
    lines.push(JSON.stringify({ sentence: text, sentiment: pos ? 'positive' : 'negative' }));
  }
  return lines.join('\n') + '\n';
}

describe('fine-tuning', () => {
  it('learns a separable task to ≥ 95% accuracy and saves a classifier checkpoint', async () => {
    const train = path.join(dir, 'train.jsonl');
    const test = path.join(dir, 'test.jsonl');
    await fs.writeFile(train, synthetic(240, 1));
    await fs.writeFile(test, synthetic(100, 2));
    const out = path.join(dir, 'ft');
    const events: string[] = [];
    let lastStep: { l1: number; l2: number; loss: number } | undefined;
    const result = await finetune({
      model: base,
      task: 'classification',
      columns: { text: 'sentence', label: 'sentiment' },
      data: train,
      out,
      settings: { lr: 3e-3, batchSize: 16, epochs: 4, warmup: 0.05, valFraction: 0.2, seed: 3 },
      onEvent: (e) => {
        events.push(e.type);
        if (e.type === 'finetune.step') lastStep = e;
      },
    });
    expect(result.outcome).toBe('completed');
    expect(result.labels).toEqual(['negative', 'positive']);
    expect(result.evaluatedOn).toBe('val');
    expect(result.metrics.n).toBe(48);
    expect(result.metrics.accuracy).toBeGreaterThanOrEqual(0.95);
    expect(result.history).toHaveLength(4);
    expect(events.filter((t) => t === 'finetune.epoch')).toHaveLength(4);
    expect(events[0]).toBe('finetune.start');
    // the step's loss is L3 = L2 + λ·L1 with the default λ = 0.5
    expect(lastStep!.loss).toBeCloseTo(lastStep!.l2 + 0.5 * lastStep!.l1, 4);

    // the checkpoint: a GPT-2 folder with the head, the labels and the grown vocabulary
    const config = JSON.parse(await fs.readFile(path.join(out, 'config.json'), 'utf8'));
    expect(config.id2label).toEqual({ 0: 'negative', 1: 'positive' });
    expect(config.label2id).toEqual({ negative: 0, positive: 1 });
    expect(config.gpt_studio.task).toBe('classification');
    expect(config.gpt_studio.lambda).toBe(0.5);
    expect(config.gpt_studio.added_tokens).toEqual(['<|start|>', '<|delim|>', '<|extract|>']);
    const baseConfig = JSON.parse(await fs.readFile(path.join(base, 'config.json'), 'utf8'));
    expect(config.vocab_size).toBe(baseConfig.vocab_size + 3);
    const tj = JSON.parse(await fs.readFile(path.join(out, 'tokenizer.json'), 'utf8'));
    expect(tj.added_tokens.map((t: { content: string }) => t.content)).toContain('<|extract|>');

    // finetune.json records which rows it trained on: the file's sha256 and the train split's rows
    const split = await readFinetuneData({
      task: 'classification',
      columns: { text: 'sentence', label: 'sentiment' },
      data: train,
      valFraction: 0.2,
      seed: 3,
    });
    const record = await readTrainedRows(out);
    expect(record?.sha256).toBe(sha256File(train));
    expect(record?.count).toBe(192);
    const trainedRows = split.train.map((e) => e.row);
    expect(record?.rows).toEqual(toRanges(trainedRows));
    expect(split.val.some((e) => inRanges(record!.rows, e.row))).toBe(false);

    const c = await loadClassifier(out);
    try {
      expect(c.head.weight.shape).toEqual([32, 2]);
      const p = await classify(c, { text: 'abcab' });
      expect(p.labels).toEqual(['negative', 'positive']);
      expect(p.probs[1]).toBeGreaterThan(0.5);
      expect(p.probs[0]! + p.probs[1]!).toBeCloseTo(1, 5);
      await expect(classify(c, { premise: 'a', hypothesis: 'b' })).rejects.toThrow(
        /classification: its input is \{text\}/,
      );
    } finally {
      c.dispose();
    }

    // evaluate on held-out data with the columns the model was trained with
    const ev = await evaluate({ model: out, data: test });
    expect(ev.accuracy).toBeGreaterThanOrEqual(0.95);
    expect(ev.confusion).toHaveLength(2);
    expect(ev.confusion.flat().reduce((a, b) => a + b, 0)).toBe(100);
    expect(ev.macroF1).toBeGreaterThan(0.9);

    // in-context evaluation's fine-tuned baseline scores the same rows the same way
    const rows = (await fs.readFile(test, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { sentence: string; sentiment: string })
      .map((r) => ({ input: r.sentence, label: r.sentiment }));
    const baseline = await finetunedAccuracy(out, rows);
    expect(baseline.n).toBe(100);
    expect(baseline.accuracy).toBeCloseTo(ev.accuracy, 10);
    await expect(finetunedAccuracy(out, [{ input: 'abc', label: 'neutral' }])).rejects.toThrow(
      /its labels are negative, positive; the data also has neutral/,
    );
  }, 60_000);

  it('stops when asked and still saves the model so far', async () => {
    const train = path.join(dir, 'train2.jsonl');
    await fs.writeFile(train, synthetic(64, 5));
    const controller = new AbortController();
    const out = path.join(dir, 'ft-stopped');
    const r = await finetune({
      model: base,
      task: 'classification',
      columns: { text: 'sentence', label: 'sentiment' },
      data: train,
      out,
      settings: { batchSize: 8, epochs: 2 },
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === 'finetune.step' && e.step === 2) controller.abort();
      },
    });
    expect(r.outcome).toBe('cancelled');
    expect(r.steps).toBe(2);
    await fs.access(path.join(out, 'model.safetensors'));
  });
});

describe('bad input', () => {
  it('reports each bad row with its file and row, and imports the rest', async () => {
    const file = path.join(dir, 'mixed.csv');
    await fs.writeFile(
      file,
      'text,label\n' +
        'good one,pos\n' +
        ',neg\n' + // empty text
        'fine,\n' + // empty label
        'bad one,neg\n' +
        '"another, good",pos\n',
    );
    const set = await loadExamples(file, {
      task: 'classification',
      columns: { text: 'text', label: 'label' },
    });
    expect(set.examples).toHaveLength(3);
    expect(set.labels).toEqual(['neg', 'pos']);
    expect(set.problems.map((p) => p.row)).toEqual([3, 4]);
    expect(set.problems[0]!.message).toMatch(/mixed\.csv row 3: the text \("text"\) is empty/);
    expect(set.problems[1]!.message).toMatch(/mixed\.csv row 4: the label \("label"\) is empty/);
  });

  it('refuses a file that lacks a mapped column, naming the columns it has', async () => {
    const file = path.join(dir, 'cols.tsv');
    await fs.writeFile(file, 'review\tstars\nnice\t5\n');
    await expect(
      loadExamples(file, { task: 'classification', columns: { text: 'text', label: 'stars' } }),
    ).rejects.toThrow(/cols\.tsv: no column "text" \(the file's columns: review, stars\)/);
  });

  it('flags validation labels outside the training set', async () => {
    const train = path.join(dir, 'tr.jsonl');
    const val = path.join(dir, 'va.jsonl');
    await fs.writeFile(train, '{"t":"a","y":"x"}\n{"t":"b","y":"z"}\n{"t":"c","y":"x"}\n');
    await fs.writeFile(val, '{"t":"a","y":"x"}\n{"t":"b","y":"maybe"}\n');
    const d = await readFinetuneData({
      task: 'classification',
      columns: { text: 't', label: 'y' },
      data: train,
      valData: val,
      valFraction: 0.1,
      seed: 1,
    });
    expect(d.train).toHaveLength(3);
    expect(d.val).toHaveLength(1);
    expect(d.valImport!.problems[0]!.message).toBe(
      'va.jsonl row 2: label "maybe" is not one of the labels (x, z)',
    );
  });

  it('multiple choice: a row with a different number of answers, and labels by index, letter or text', async () => {
    const file = path.join(dir, 'mc.jsonl');
    await fs.writeFile(
      file,
      [
        { q: 'the cat', opts: '["sat","ran"]', y: '1' },
        { q: 'a dog', opts: '["hid","ate","slept"]', y: '0' },
        { q: 'a bird', opts: '["flew","swam"]', y: 'A' },
        { q: 'a fish', opts: '["swam","flew"]', y: 'swam' },
        { q: 'a cow', opts: 'not json', y: '0' },
        { q: 'a pig', opts: '["a","b"]', y: '7' },
      ]
        .map((r) => JSON.stringify(r))
        .join('\n'),
    );
    const set = await loadExamples(file, {
      task: 'multiple-choice',
      columns: { context: 'q', answersColumn: 'opts', label: 'y' },
    });
    expect(set.examples.map((e) => e.label)).toEqual([1, 0, 0]);
    expect(set.labels).toEqual(['1', '2']);
    const msgs = set.problems.map((p) => p.message);
    expect(msgs[0]).toBe('mc.jsonl row 2: has 3 answers, but the rows before have 2');
    expect(msgs[1]).toMatch(/mc\.jsonl row 5: the answers \("opts"\) are not a JSON array/);
    expect(msgs[2]).toMatch(/mc\.jsonl row 6: label "7" names none of the 2 answers/);
  });
});

describe('metrics and schedule', () => {
  it('accuracy, macro-F1, the confusion matrix and the most confident mistakes', () => {
    const m = computeMetrics(
      [
        { row: 1, input: 'a', label: 0, probs: [0.9, 0.1] },
        { row: 2, input: 'b', label: 0, probs: [0.2, 0.8] },
        { row: 3, input: 'c', label: 1, probs: [0.4, 0.6] },
        { row: 4, input: 'd', label: 1, probs: [0.6, 0.4] },
      ],
      ['no', 'yes'],
      'similarity',
    );
    expect(m.accuracy).toBe(0.5);
    expect(m.confusion).toEqual([
      [1, 1],
      [1, 1],
    ]);
    expect(m.macroF1).toBeCloseTo(0.5);
    expect(m.positiveLabel).toBe('yes');
    expect(m.f1).toBeCloseTo(0.5);
    expect(m.mistakes.map((x) => x.row)).toEqual([2, 4]);
    expect(m.mistakes[0]).toMatchObject({ label: 'no', predicted: 'yes', confidence: 0.8 });
  });

  it('GPT-1 schedule: linear warmup, then linear decay to 0', () => {
    const o = { lr: 1, warmup: 4, steps: 20 };
    expect(finetuneLearningRate(0, o)).toBe(0.25);
    expect(finetuneLearningRate(3, o)).toBe(1);
    expect(finetuneLearningRate(4, o)).toBe(1);
    expect(finetuneLearningRate(12, o)).toBe(0.5);
    expect(finetuneLearningRate(20, o)).toBe(0);
  });
});

describe('every task trains end to end', () => {
  it('entailment, similarity and multiple choice run a step, evaluate and save', async () => {
    const rows = (f: (i: number) => Record<string, unknown>) =>
      Array.from({ length: 12 }, (_, i) => JSON.stringify(f(i))).join('\n');
    const cases = [
      {
        task: 'entailment' as const,
        columns: { premise: 'p', hypothesis: 'h', label: 'y' },
        text: rows((i) => ({ p: 'abc', h: i % 2 ? 'abd' : 'xyz', y: i % 2 ? 'yes' : 'no' })),
        outputs: 2,
      },
      {
        task: 'similarity' as const,
        columns: { a: 'a', b: 'b', label: 'y' },
        text: rows((i) => ({ a: 'abc', b: i % 2 ? 'abc' : 'xyz', y: i % 2 })),
        outputs: 2,
      },
      {
        task: 'multiple-choice' as const,
        columns: { context: 'c', answers: ['a1', 'a2', 'a3'], label: 'y' },
        text: rows((i) => ({ c: 'the', a1: 'cat', a2: 'dog', a3: 'cow', y: i % 3 })),
        outputs: 1,
      },
    ];
    for (const c of cases) {
      const data = path.join(dir, `${c.task}.jsonl`);
      await fs.writeFile(data, c.text);
      const out = path.join(dir, `ft-${c.task}`);
      const r = await finetune({
        model: base,
        task: c.task,
        columns: c.columns,
        data,
        out,
        settings: { batchSize: 4, epochs: 1, valFraction: 0.25 },
      });
      expect(r.steps, c.task).toBe(3);
      expect(r.metrics.n, c.task).toBe(3);
      const loaded = await loadClassifier(out);
      expect(loaded.head.weight.shape[1], c.task).toBe(c.outputs);
      loaded.dispose();
    }
    const mc = await loadClassifier(path.join(dir, 'ft-multiple-choice'));
    try {
      const p = await classify(mc, { context: 'the', answers: ['cat', 'dog'] });
      expect(p.labels).toEqual(['cat', 'dog']);
      expect(p.probs.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    } finally {
      mc.dispose();
    }
  });
});

describe("the wizard's preview", () => {
  it('counts what fine-tuning would read: rows left out, truncations, labels, one example as tokens', async () => {
    const file = path.join(dir, 'preview.jsonl');
    const rows = [
      { s: 'abc de', y: 'pos' },
      { s: 'ABC', y: 'neg' }, // upper case: not in the model's alphabet
      { s: 'x'.repeat(40), y: 'neg' }, // longer than the context of 24
      { s: 'vwx', y: 'neg' },
      { s: '', y: 'pos' }, // empty: a problem of the import itself
    ];
    await fs.writeFile(file, rows.map((r) => JSON.stringify(r)).join('\n'));
    const p = await previewFinetune({
      model: base,
      task: 'classification',
      columns: { text: 's', label: 'y' },
      data: file,
      valFraction: 0,
    });
    expect(p.blockSize).toBe(24);
    expect(p.newTokens).toEqual(['<|start|>', '<|delim|>', '<|extract|>']);
    expect(p.train).toMatchObject({ rows: 5, imported: 3, skipped: 2 });
    expect(p.train.problems.map((x) => x.row)).toEqual([2, 5]);
    expect(p.train.problems[0]!.message).toMatch(/^preview\.jsonl row 2: /);
    expect(p.truncated).toBe(1);
    expect(p.valSplit).toBe(0);
    expect(p.labels).toEqual([
      { label: 'neg', count: 2 },
      { label: 'pos', count: 1 },
    ]);
    const seq = p.example!.sequences[0]!;
    expect(p.example).toMatchObject({ input: 'abc de', label: 'pos', truncated: false });
    expect(seq.map((t) => t.text).join('')).toBe('<|start|>abc de<|extract|>');
    expect(seq[0]!.special).toBe('start');
    expect(seq.at(-1)!.special).toBe('extract');
    expect(seq.slice(1, -1).every((t) => t.special === undefined)).toBe(true);
  });
});
