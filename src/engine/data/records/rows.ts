/** What the table readers yield: rows of string values by column, or a bad row's problem. */
import type { ReadOptions } from '../text';

export interface TableRow {
  /** 1-based line where the record starts (jsonl/csv/tsv), or element number (json arrays). */
  row: number;
  values: Record<string, string>;
}
export interface RowProblem {
  row: number;
  /** Names the file and the row. */
  message: string;
}

export function isProblem(r: TableRow | RowProblem): r is RowProblem {
  return !('values' in r);
}

function cell(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

/** values[k] = v, a key "__proto__" too (as a plain property, not the prototype). */
export function put(values: Record<string, string>, k: string, v: string): void {
  if (k === '__proto__') {
    Object.defineProperty(values, k, {
      value: v,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  } else values[k] = v;
}

export function fromObject(o: Record<string, unknown>): Record<string, string> {
  const values: Record<string, string> = {};
  for (const [k, v] of Object.entries(o)) put(values, k, cell(v));
  return values;
}

/** Options every table reader takes. */
export interface TableReadOptions extends ReadOptions {
  /** The longest line, field, record or JSON array element held (default DEFAULT_MAX_RECORD). */
  maxRecord?: number;
}
