/**
 * Which rows a fine-tune trained on: the training file's sha256 and the row numbers of its train
 * split, kept in the checkpoint's finetune.json. A later comparison on the same bytes leaves those
 * rows out (console/compare.ts). Row numbers are the table readers' (data/records): the line a
 * record starts on, or a JSON array element's number, so they name the same rows whoever reads
 * the same bytes.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { hashFile } from '../util/fs';

export interface TrainedRows {
  /** The training file as it was given. */
  file: string;
  /** sha256 of its bytes, hex. */
  sha256: string;
  /** The train split's row numbers as inclusive ranges, ascending. */
  rows: Array<[number, number]>;
  /** How many rows the ranges hold. */
  count: number;
}

/** The finetune.json key that holds the record. */
export const TRAINED_ROWS_KEY = 'trainedRows';

/** sha256 of a file's bytes, hex (streamed). */
export function fileSha256(file: string): Promise<string> {
  return hashFile(file, 'sha256');
}

/** Row numbers as ascending inclusive ranges: 1,2,3,7,9,10 → [1,3],[7,7],[9,10]. */
export function toRanges(rows: Iterable<number>): Array<[number, number]> {
  const sorted = [...new Set(rows)].sort((a, b) => a - b);
  const out: Array<[number, number]> = [];
  for (const r of sorted) {
    const lastRange = out[out.length - 1];
    if (lastRange && r === lastRange[1] + 1) lastRange[1] = r;
    else out.push([r, r]);
  }
  return out;
}

/** Whether `row` lies in one of the ascending ranges (binary search). */
export function inRanges(ranges: ReadonlyArray<readonly [number, number]>, row: number): boolean {
  let lo = 0;
  let hi = ranges.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const [a, b] = ranges[mid]!;
    if (row < a) hi = mid - 1;
    else if (row > b) lo = mid + 1;
    else return true;
  }
  return false;
}

/** The record of a fine-tune on `file` whose train split holds these rows. */
export async function recordTrainedRows(
  file: string,
  rows: readonly number[],
): Promise<TrainedRows> {
  const ranges = toRanges(rows);
  return {
    file,
    sha256: await fileSha256(file),
    rows: ranges,
    count: ranges.reduce((n, [a, b]) => n + b - a + 1, 0),
  };
}

function isRanges(v: unknown): v is Array<[number, number]> {
  return (
    Array.isArray(v) &&
    v.every(
      (r, i) =>
        Array.isArray(r) &&
        r.length === 2 &&
        Number.isInteger(r[0]) &&
        Number.isInteger(r[1]) &&
        r[0] <= r[1] &&
        (i === 0 || r[0] > (v[i - 1] as number[])[1]!),
    )
  );
}

/**
 * The record in a fine-tuned model's finetune.json, or null when it keeps none (no finetune.json,
 * as after an import, or one written before the record existed). A malformed record is an error
 * naming the file.
 */
export async function readTrainedRows(dir: string): Promise<TrainedRows | null> {
  const file = path.join(dir, 'finetune.json');
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`${file}: cannot read (${(err as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error(`${file}: not valid JSON`);
  }
  const rec = (raw as Record<string, unknown> | null)?.[TRAINED_ROWS_KEY] as
    Partial<TrainedRows> | undefined;
  if (rec === undefined) return null;
  if (
    typeof rec?.file !== 'string' ||
    typeof rec.sha256 !== 'string' ||
    !/^[0-9a-f]{64}$/.test(rec.sha256) ||
    !isRanges(rec.rows)
  ) {
    throw new Error(
      `${file}: "${TRAINED_ROWS_KEY}" should be {file, sha256, rows: [[first, last], …]}; ` +
        'fine-tune again to rewrite it',
    );
  }
  const count = rec.rows.reduce((n, [a, b]) => n + b - a + 1, 0);
  return { file: rec.file, sha256: rec.sha256, rows: rec.rows, count };
}
