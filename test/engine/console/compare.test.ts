/**
 * In-context evaluation's fine-tuned baseline scores only rows the classifier never trained on:
 * on the file it trained on (same sha256) its train rows are left out and counted; on another
 * file every row is unseen; a fine-tune without the record, or one that trained on every
 * evaluated row, gives no number.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../../src/engine/backend';
import { saveModelDir } from '../../../src/engine/checkpoint/modelDir';
import {
  finetunedAccuracy,
  finetunedBaseline,
  heldOutExamples,
} from '../../../src/engine/console/compare';
import { readLabeled } from '../../../src/engine/console/dataset';
import { evaluationSplit, type LabeledExample } from '../../../src/engine/console/icl';
import { finetune } from '../../../src/engine/finetune/finetune';
import {
  inRanges,
  readTrainedRows,
  type TrainedRows,
} from '../../../src/engine/finetune/trainedRows';
import { GPT } from '../../../src/engine/model/gpt';
import { charTokenizer, removeDir, tempDir, tinyConfig } from '../helpers';

let dir: string;
let data: string;
let ft: string;
const labels = [
  { label: 'neg', word: 'bad' },
  { label: 'pos', word: 'good' },
];

beforeAll(async () => {
  await initBackend('wasm');
  dir = await tempDir('gpt-studio-compare-');
  const tok = charTokenizer('abcdefghijklmnopqrstuvwxyz ');
  const base = path.join(dir, 'base');
  const model = GPT.init(
    tinyConfig({ vocabSize: tok.vocabSize, blockSize: 24, nEmbd: 16, nHead: 2, nLayer: 1 }),
    1,
  );
  await saveModelDir(base, model, tok);
  model.dispose();
  const lines: string[] = [];
  for (let i = 0; i < 30; i++) {
    lines.push(JSON.stringify({ text: `abc ${'ab'.repeat(i % 5)}`, label: 'pos' }));
    lines.push(JSON.stringify({ text: `xyz ${'yz'.repeat(i % 5)}`, label: 'neg' }));
  }
  data = path.join(dir, 'reviews.jsonl');
  await fs.writeFile(data, lines.join('\n') + '\n');
  ft = path.join(dir, 'ft');
  await finetune({
    model: base,
    task: 'classification',
    columns: { text: 'text', label: 'label' },
    data,
    out: ft,
    settings: { lr: 3e-3, batchSize: 16, epochs: 1, valFraction: 0.25, seed: 2 },
  });
}, 60_000);

afterAll(async () => {
  await removeDir(dir);
});

describe('the held-out examples', () => {
  const ex = (row: number): LabeledExample => ({ input: `t${row}`, label: 'pos', row });
  const record: TrainedRows = {
    file: 'train.jsonl',
    sha256: 'a'.repeat(64),
    rows: [
      [1, 3],
      [6, 6],
    ],
    count: 4,
  };
  const examples = [1, 2, 4, 5, 6, 7].map(ex);

  it('leaves out the rows it trained on when the bytes are the same', () => {
    const r = heldOutExamples(examples, record, 'a'.repeat(64));
    expect(r.overlap).toBe('same-file');
    expect(r.held.map((e) => e.row)).toEqual([4, 5, 7]);
    expect(r.excluded).toBe(3);
  });

  it('keeps every row of another file, and none when the overlap is unknown', () => {
    expect(heldOutExamples(examples, record, 'b'.repeat(64))).toEqual({
      held: examples,
      excluded: 0,
      overlap: 'other-file',
    });
    expect(heldOutExamples(examples, null, 'a'.repeat(64))).toEqual({
      held: [],
      excluded: 0,
      overlap: 'unknown',
    });
    // an example without its row number cannot be checked
    const noRow = [{ input: 'x', label: 'pos' }];
    expect(heldOutExamples(noRow, record, 'a'.repeat(64)).overlap).toBe('unknown');
  });
});

describe('the fine-tuned baseline', { timeout: 60_000 }, () => {
  it('on the file it trained on: scored only on the rows it never saw, with the count left out', async () => {
    const table = await readLabeled(data);
    const icl = { file: data, examples: table.examples, labels, seed: 3, limit: 30 };
    const b = await finetunedBaseline(ft, icl);
    const { evalSet } = evaluationSplit(table.examples, labels, 3, 30);
    const record = (await readTrainedRows(ft))!;
    const unseen = evalSet.filter((e) => !inRanges(record.rows, e.row!));
    expect(b.overlap).toBe('same-file');
    expect(b.n).toBe(unseen.length);
    expect(b.excluded).toBe(evalSet.length - unseen.length);
    // 60 rows, 45 trained on: of 30 evaluated most were seen, some were not
    expect(b.excluded).toBeGreaterThan(0);
    expect(b.n).toBeGreaterThan(0);
    expect(b.accuracy).toBe((await finetunedAccuracy(ft, unseen)).accuracy);
  });

  it('on another file every row is unseen', async () => {
    const other = path.join(dir, 'other.jsonl');
    await fs.writeFile(other, (await fs.readFile(data, 'utf8')) + '\n');
    const table = await readLabeled(other);
    const b = await finetunedBaseline(ft, {
      file: other,
      examples: table.examples,
      labels,
      seed: 3,
      limit: 30,
    });
    expect(b).toMatchObject({ overlap: 'other-file', n: 30, excluded: 0 });
    expect(typeof b.accuracy).toBe('number');
  });

  it('gives no number when every evaluated row was trained on, or the record is missing', async () => {
    const table = await readLabeled(data);
    const record = (await readTrainedRows(ft))!;
    const seen = table.examples.filter((e) => inRanges(record.rows, e.row!));
    // only rows it trained on, from the same bytes: nothing is left to score
    const all = await finetunedBaseline(ft, {
      file: data,
      examples: seen,
      labels,
      seed: 3,
      limit: 10,
    });
    expect(all).toMatchObject({ overlap: 'same-file', accuracy: null, n: 0, excluded: 10 });

    const old = path.join(dir, 'old-ft');
    await fs.cp(ft, old, { recursive: true });
    const meta = JSON.parse(await fs.readFile(path.join(old, 'finetune.json'), 'utf8'));
    delete meta.trainedRows;
    await fs.writeFile(path.join(old, 'finetune.json'), JSON.stringify(meta));
    const unknown = await finetunedBaseline(old, {
      file: data,
      examples: table.examples,
      labels,
      seed: 3,
      limit: 30,
    });
    expect(unknown).toMatchObject({ overlap: 'unknown', accuracy: null, n: 0, excluded: 0 });
    // a model that cannot be compared is still refused
    await expect(
      finetunedBaseline(old, {
        file: data,
        examples: [
          ...table.examples,
          ...Array.from({ length: 20 }, (_, i) => ({ input: 'huh', label: 'meh', row: 99 + i })),
        ],
        labels: [...labels, { label: 'meh', word: 'meh' }],
        seed: 3,
        limit: 80,
      }),
    ).rejects.toThrow(/its labels are neg, pos; the data also has meh/);
  });
});
