/** The table API: any table format's rows streamed, or read with its columns and problems. */
import * as path from 'node:path';
import { assertRegularFile } from '../../util/fs';
import { delimitedRows } from './csv';
import { formatOf, type TableFormat } from './formats';
import { jsonArrayRows, jsonlRows } from './json';
import { isProblem, type RowProblem, type TableReadOptions, type TableRow } from './rows';

/**
 * Streams a table's records; bad rows come as RowProblems and the rest continue. Messages name
 * the file by `name` (default: its base name).
 */
export function readRows(
  file: string,
  opts: TableReadOptions & { format?: TableFormat } = {},
): AsyncGenerator<TableRow | RowProblem> {
  const { format = formatOf(file), ...read } = opts;
  const name = opts.name ?? path.basename(file);
  switch (format) {
    case 'jsonl':
      return jsonlRows(file, name, read);
    case 'csv':
      return delimitedRows(file, name, ',', read);
    case 'tsv':
      return delimitedRows(file, name, '\t', read);
    case 'json':
      return jsonArrayRows(file, name, read);
    default:
      throw new Error(`${file}: ${String(format)} is plain text, not a table`);
  }
}

export interface Table {
  format: TableFormat;
  /** Every column seen, in order of first appearance (CSV/TSV: the header). */
  columns: string[];
  rows: TableRow[];
  problems: RowProblem[];
}

/**
 * Reads a table (up to `limit` good rows) with its columns and problems. Anything but a regular
 * file is refused first, naming its path.
 */
export async function readTable(
  file: string,
  opts: TableReadOptions & { format?: TableFormat; limit?: number } = {},
): Promise<Table> {
  const f = opts.format ?? formatOf(file);
  if (f === 'text')
    throw new Error(`${file}: plain text, not a table (use .jsonl, .csv, .tsv or .json)`);
  await assertRegularFile(file);
  const columns: string[] = [];
  const seen = new Set<string>();
  const rows: TableRow[] = [];
  const problems: RowProblem[] = [];
  const { limit = Infinity, ...read } = opts;
  for await (const r of readRows(file, { ...read, format: f })) {
    if (isProblem(r)) {
      problems.push(r);
      continue;
    }
    for (const k of Object.keys(r.values)) {
      if (!seen.has(k)) {
        seen.add(k);
        columns.push(k);
      }
    }
    rows.push(r);
    if (rows.length >= limit) break;
  }
  return { format: f, columns, rows, problems };
}
