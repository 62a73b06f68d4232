/** A table file's first look: its columns, first rows, and the column likely to hold the text. */
import type { InspectResult } from '../../../common/datasets';
import { assertRegularFile } from '../../util/fs';
import { formatOf, readTable } from '../records';
import { detectEncoding } from '../text';

/** Column names taken as the text of a table, in order of preference. */
const TEXT_FIELDS = [
  'text',
  'content',
  'body',
  'document',
  'sentence',
  'review',
  'story',
  'prompt',
];

/**
 * A table file's columns and first rows, and the column most likely to hold the text. Only a
 * regular file is read; `maxRecord` bounds a line, field or record as in ../records.
 */
export async function inspectFile(
  file: string,
  signal?: AbortSignal,
  opts: { maxRecord?: number } = {},
): Promise<InspectResult> {
  const format = formatOf(file);
  const { size } = await assertRegularFile(file);
  if (format === 'text') {
    const enc = await detectEncoding(file);
    return { file, format, bytes: size, encoding: enc.encoding, columns: [], rows: [] };
  }
  const t = await readTable(file, {
    format,
    limit: 20,
    ...(signal ? { signal } : {}),
    ...(opts.maxRecord !== undefined ? { maxRecord: opts.maxRecord } : {}),
  });
  if (t.rows.length === 0) {
    const why = t.problems[0]?.message;
    throw new Error(`${file} has no records${why ? `: ${why}` : ''}`);
  }
  return {
    file,
    format,
    bytes: size,
    columns: t.columns,
    rows: t.rows.slice(0, 5).map((r) => r.values),
    suggested: suggestField(
      t.columns,
      t.rows.map((r) => r.values),
    ),
    problems: t.problems.slice(0, 5).map((p) => p.message),
  };
}

/** A column named like text, else the one with the longest values on average. */
export function suggestField(
  columns: readonly string[],
  rows: ReadonlyArray<Record<string, string>>,
): string | undefined {
  const named = TEXT_FIELDS.find((f) => columns.some((c) => c.toLowerCase() === f));
  if (named) return columns.find((c) => c.toLowerCase() === named);
  let best: string | undefined;
  let bestLen = -1;
  for (const c of columns) {
    const len = rows.reduce((s, r) => s + (r[c]?.length ?? 0), 0);
    if (len > bestLen) [best, bestLen] = [c, len];
  }
  return best;
}
