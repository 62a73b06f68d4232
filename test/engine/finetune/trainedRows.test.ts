/**
 * The fine-tune's record of the rows it trained on: row numbers as compact ranges, the file's
 * sha256, and finetune.json read back (none for an older fine-tune, an error naming the file for a
 * malformed one).
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fileSha256,
  inRanges,
  readTrainedRows,
  recordTrainedRows,
  toRanges,
} from '../../../src/engine/finetune/trainedRows';
import { removeDir, tempDir } from '../helpers';

let dir: string;
beforeAll(async () => {
  dir = await tempDir('gpt-studio-trained-rows-');
});
afterAll(async () => {
  await removeDir(dir);
});

describe('trained rows', () => {
  it('keeps row numbers as ascending ranges and finds a row in them', () => {
    const ranges = toRanges([9, 1, 3, 2, 7, 10, 3]);
    expect(ranges).toEqual([
      [1, 3],
      [7, 7],
      [9, 10],
    ]);
    expect([0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11].filter((r) => inRanges(ranges, r))).toEqual([
      1, 2, 3, 7, 9, 10,
    ]);
    expect(toRanges([])).toEqual([]);
    expect(inRanges([], 1)).toBe(false);
  });

  it('records the file by the sha256 of its bytes, and reads the record back', async () => {
    const file = path.join(dir, 'train.jsonl');
    const bytes = Buffer.from('{"text":"a","label":"x"}\n'.repeat(5000));
    await fs.writeFile(file, bytes);
    const sha = createHash('sha256').update(bytes).digest('hex');
    expect(await fileSha256(file)).toBe(sha);
    const rec = await recordTrainedRows(file, [5, 1, 2, 4]);
    expect(rec).toEqual({
      file,
      sha256: sha,
      rows: [
        [1, 2],
        [4, 5],
      ],
      count: 4,
    });
    const model = path.join(dir, 'ft');
    await fs.mkdir(model);
    await fs.writeFile(path.join(model, 'finetune.json'), JSON.stringify({ trainedRows: rec }));
    expect(await readTrainedRows(model)).toEqual(rec);
  });

  it('an older fine-tune (no record, or no finetune.json) has none; a bad one names its file', async () => {
    const old = path.join(dir, 'old');
    await fs.mkdir(old);
    expect(await readTrainedRows(old)).toBeNull();
    await fs.writeFile(path.join(old, 'finetune.json'), JSON.stringify({ task: 'classification' }));
    expect(await readTrainedRows(old)).toBeNull();
    const bad = path.join(dir, 'bad');
    await fs.mkdir(bad);
    await fs.writeFile(
      path.join(bad, 'finetune.json'),
      JSON.stringify({ trainedRows: { file: 'x', sha256: 'f'.repeat(64), rows: [[3, 1]] } }),
    );
    await expect(readTrainedRows(bad)).rejects.toThrow(
      `${path.join(bad, 'finetune.json')}: "trainedRows" should be {file, sha256, rows: [[first, last], …]}`,
    );
  });
});
