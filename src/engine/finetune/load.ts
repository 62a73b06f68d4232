/** Labeled files (CSV, TSV, JSONL, JSON) → examples, with every skipped row's reason. */
import * as path from 'node:path';
import { readTable } from '../data/records';
import { examplesFromRows, neededColumns, type ExampleSet, type ParseOptions } from './data';

export async function loadExamples(
  file: string,
  opts: Omit<ParseOptions, 'file'> & { signal?: AbortSignal },
): Promise<ExampleSet> {
  const name = path.basename(file);
  let table;
  try {
    table = await readTable(file, opts.signal ? { signal: opts.signal } : {});
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`${file}: file not found`);
    throw err;
  }
  if (table.rows.length === 0) {
    const first = table.problems[0];
    throw new Error(`${name}: no readable rows${first ? ` (${first.message})` : ''}`);
  }
  const missing = neededColumns(opts.task, opts.columns).filter((c) => !table.columns.includes(c));
  if (missing.length > 0) {
    throw new Error(
      `${name}: no column${missing.length > 1 ? 's' : ''} ${missing.map((m) => `"${m}"`).join(', ')} ` +
        `(the file's columns: ${table.columns.join(', ')})`,
    );
  }
  const rows = [...table.rows, ...table.problems].sort((a, b) => a.row - b.row);
  const set = examplesFromRows(rows, { ...opts, file: name });
  if (set.examples.length === 0) {
    throw new Error(
      `${name}: none of the ${set.rows} rows could be used` +
        (set.problems[0] ? `; the first problem: ${set.problems[0].message}` : ''),
    );
  }
  return set;
}
