/**
 * Labeled examples from a table (CSV, TSV, JSONL or JSON via data/records): a text column and a
 * label column, guessed from common names when not given. Rows with an empty text or label are
 * reported, naming the file and row, and skipped.
 */
import { readTable, type RowProblem } from '../data/records';
import type { LabeledExample } from './icl';

const TEXT_NAMES = ['text', 'sentence', 'input', 'review', 'content', 'question', 'document'];
const LABEL_NAMES = [
  'label',
  'labels',
  'output',
  'class',
  'category',
  'sentiment',
  'target',
  'answer',
];

export interface LabeledTable {
  file: string;
  format: string;
  columns: string[];
  textColumn: string;
  labelColumn: string;
  examples: LabeledExample[];
  /** Each label with its count, most frequent first. */
  labels: Array<{ label: string; count: number }>;
  problems: RowProblem[];
}

function pick(
  columns: string[],
  given: string | undefined,
  names: string[],
  what: string,
  file: string,
) {
  if (given !== undefined) {
    if (!columns.includes(given)) {
      throw new Error(`${file}: no column "${given}" (columns: ${columns.join(', ')})`);
    }
    return given;
  }
  const found =
    names.find((n) => columns.includes(n)) ?? columns.find((c) => names.includes(c.toLowerCase()));
  if (!found) {
    throw new Error(
      `${file}: cannot tell which column holds the ${what} (columns: ${columns.join(', ')}); name it`,
    );
  }
  return found;
}

/**
 * Reads a labeled table. Only a regular file is read (a FIFO or a device is refused by name), and
 * no line, field or record longer than `maxRecord` characters is held (see data/records).
 */
export async function readLabeled(
  file: string,
  opts: {
    textColumn?: string;
    labelColumn?: string;
    limit?: number;
    signal?: AbortSignal;
    maxRecord?: number;
  } = {},
): Promise<LabeledTable> {
  const table = await readTable(file, {
    ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.maxRecord !== undefined ? { maxRecord: opts.maxRecord } : {}),
  });
  if (table.rows.length === 0) {
    const why = table.problems[0]?.message;
    throw new Error(`${file}: no records${why ? ` (${why})` : ''}`);
  }
  const textColumn = pick(table.columns, opts.textColumn, TEXT_NAMES, 'text', file);
  const labelColumn = pick(table.columns, opts.labelColumn, LABEL_NAMES, 'labels', file);
  if (textColumn === labelColumn) {
    throw new Error(`${file}: the text and label columns are both "${textColumn}"`);
  }
  const problems = [...table.problems];
  const examples: LabeledExample[] = [];
  const counts = new Map<string, number>();
  for (const r of table.rows) {
    const input = r.values[textColumn] ?? '';
    const label = (r.values[labelColumn] ?? '').trim();
    if (!input.trim() || !label) {
      problems.push({
        row: r.row,
        message: `${file}, row ${r.row}: empty ${!input.trim() ? textColumn : labelColumn}`,
      });
      continue;
    }
    examples.push({ input, label, row: r.row });
    counts.set(label, (counts.get(label) ?? 0) + 1);
  }
  return {
    file,
    format: table.format,
    columns: table.columns,
    textColumn,
    labelColumn,
    examples,
    labels: [...counts]
      .map(([label, count]) => ({ label, count }))
      .sort((a, b) => b.count - a.count),
    problems,
  };
}
