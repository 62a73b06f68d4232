/**
 * `eval-icl` end to end, in-process: --json events then the result last, with the accuracy
 * for each k; the human table; usage errors (exit 2) and data errors naming the file (exit 1).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import { describeBaseline } from '../../src/cli/commands/eval-icl';
import { saveModelDir } from '../../src/engine/checkpoint/modelDir';
import { finetunedBaseline } from '../../src/engine/console/compare';
import { readLabeled } from '../../src/engine/console/dataset';
import { finetune } from '../../src/engine/finetune/finetune';
import { GPT } from '../../src/engine/model/gpt';
import { charTokenizer, randomWeights, tinyConfig } from '../engine/helpers';
import { jsonLines, last, cli, tmpDir } from './helpers';

let dir: string;
let modelDir: string;
let data: string;

beforeAll(async () => {
  dir = await tmpDir('gpt-studio-eval-icl-');
  await initBackend('wasm');
  const tok = charTokenizer('abcdefghijklmnopqrstuvwxyz 0123456789=>\n');
  const cfg = tinyConfig({ vocabSize: tok.vocabSize, blockSize: 64 });
  const model = new GPT(cfg, randomWeights(cfg, 9, 0.3));
  modelDir = path.join(dir, 'model');
  await saveModelDir(modelDir, model, tok);
  model.dispose();
  const lines = ['review\tstars'];
  for (let i = 0; i < 20; i++) lines.push(`loved it ${i}\t5`, `hated it ${i}\t1`);
  data = path.join(dir, 'reviews.tsv');
  await fs.writeFile(data, lines.join('\n') + '\n');
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const base = () => [
  'eval-icl',
  '--model',
  modelDir,
  '--data',
  data,
  '--text-column',
  'review',
  '--label-column',
  'stars',
  '--labels',
  '1=bad,5=good',
  '--backend',
  'wasm',
];

describe('eval-icl', { timeout: 60_000 }, () => {
  it('--json: events, then the accuracy for each k on the last line', async () => {
    const r = await cli([...base(), '--shots', '0,1,2', '--limit', '6', '--seed', '4', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = jsonLines(r.stdout);
    expect(lines[0]!.type).toBe('backend');
    expect(lines.filter((l) => l.type === 'console.eval.point').map((l) => l.k)).toEqual([0, 1, 2]);
    const result = last(lines);
    expect(result.type).toBe('result');
    const accuracy = result.accuracy as Record<string, number>;
    expect(Object.keys(accuracy)).toEqual(['0', '1', '2']);
    for (const a of Object.values(accuracy)) expect(a === 0 || (a > 0 && a <= 1)).toBe(true);
    expect(result.chance).toBe(0.5);
    expect(result.evalSize).toBe(6);
    expect(result.poolSize).toBe(20);
    // seeded: the same command gives the same numbers
    const again = await cli([
      ...base(),
      '--shots',
      '0,1,2',
      '--limit',
      '6',
      '--seed',
      '4',
      '--json',
    ]);
    expect(last(jsonLines(again.stdout)).accuracy).toEqual(accuracy);
  });

  it('--compare: a fine-tuned classifier scored on the evaluated rows it never trained on', async () => {
    const ft = path.join(dir, 'ft');
    await finetune({
      model: modelDir,
      task: 'classification',
      columns: { text: 'review', label: 'stars' },
      data,
      out: ft,
      settings: { lr: 3e-3, batchSize: 8, epochs: 1, valFraction: 0.2, seed: 1 },
    });
    const r = await cli([
      ...base(),
      '--shots',
      '0',
      '--limit',
      '6',
      '--seed',
      '4',
      '--compare',
      ft,
      '--json',
    ]);
    expect(r.code).toBe(0);
    const result = last(jsonLines(r.stdout));
    const table = await readLabeled(data, { textColumn: 'review', labelColumn: 'stars' });
    const labels = [
      { label: '1', word: 'bad' },
      { label: '5', word: 'good' },
    ];
    const baseline = await finetunedBaseline(ft, {
      file: data,
      examples: table.examples,
      labels,
      seed: 4,
      limit: 6,
    });
    expect(result.finetuned).toEqual(baseline);
    // it trained on 32 of the 40 rows: of the 6 evaluated, those it saw are left out and counted
    expect(baseline.overlap).toBe('same-file');
    expect(baseline.n + baseline.excluded).toBe(6);
    expect(baseline.excluded).toBeGreaterThan(0);

    const human = await cli([
      ...base(),
      '--shots',
      '0',
      '--limit',
      '6',
      '--seed',
      '4',
      '--compare',
      ft,
    ]);
    expect(human.code).toBe(0);
    const line =
      baseline.accuracy === null
        ? `fine-tuned: no number. ${ft} trained on all 6 evaluated rows`
        : `fine-tuned ${(baseline.accuracy * 100).toFixed(1)}% on ${baseline.n} held-out ` +
          `example${baseline.n === 1 ? '' : 's'} (${baseline.excluded} row` +
          `${baseline.excluded === 1 ? '' : 's'} it trained on left out): ${ft}`;
    expect(human.stdout).toContain(line);
  });

  it('says why the baseline has no number, and when every row is unseen', () => {
    const f = { model: 'ft', n: 0, excluded: 0 };
    expect(describeBaseline({ ...f, accuracy: null, overlap: 'unknown' })).toMatch(
      /^fine-tuned: no number\. ft does not record which rows it trained on/,
    );
    expect(describeBaseline({ ...f, accuracy: null, excluded: 100, overlap: 'same-file' })).toBe(
      'fine-tuned: no number. ft trained on all 100 evaluated rows; evaluate more rows (--limit) ' +
        'or data it did not train on',
    );
    expect(describeBaseline({ ...f, accuracy: 0.71, n: 100, overlap: 'other-file' })).toBe(
      'fine-tuned 71.0% on 100 held-out examples (it trained on another file, so none left out): ft',
    );
    expect(
      describeBaseline({ ...f, accuracy: 0.5, n: 20, excluded: 1, overlap: 'same-file' }),
    ).toBe('fine-tuned 50.0% on 20 held-out examples (1 row it trained on left out): ft');
  });

  it('prints a table with bars for people', async () => {
    const r = await cli([...base(), '--shots', '0,1', '--limit', '4']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^k=  0  accuracy +\d+\.\d%/m);
    expect(r.stdout).toMatch(/^k=  1  accuracy/m);
    expect(r.stdout).toContain('chance 50.0%');
    expect(r.stderr).toContain('4 evaluated, 20 in the demonstration pool');
  });

  it('refuses bad usage and names the file for bad data', async () => {
    const shots = await cli([...base(), '--shots', '0,x']);
    expect(shots.code).toBe(2);
    expect(shots.stderr).toContain('--shots expects whole numbers');
    const labels = await cli([...base().slice(0, -4), '--labels', 'one', '--backend', 'wasm']);
    expect(labels.code).toBe(2);
    expect(labels.stderr).toContain('--labels: give at least two');
    const missing = await cli([
      ...base().slice(0, -4),
      '--labels',
      '1=bad,3=meh',
      '--backend',
      'wasm',
    ]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`${data}: no rows with label "3" in column "stars"`);
    const column = await cli([...base(), '--text-column', 'body']);
    expect(column.code).toBe(1);
    expect(column.stderr).toContain('no column "body" (columns: review, stars)');
  });
});
