/**
 * Tables in the formats users bring: JSON Lines, CSV (RFC 4180: quoted fields, "" escapes,
 * line breaks inside quotes), TSV (tab-separated, no quoting) and JSON arrays. Every record comes
 * out as string values by column name; a bad row is reported with its row number and the rest
 * go on. Files of any encoding text.ts reads, streamed (JSON arrays excepted: they are parsed
 * whole, up to 256 MiB).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { readLines, readTextChunks } from './text';

export type TableFormat = 'jsonl' | 'csv' | 'tsv' | 'json';
export type DataFormat = TableFormat | 'text';

const EXTENSIONS: Record<string, DataFormat> = {
  '.txt': 'text',
  '.md': 'text',
  '.jsonl': 'jsonl',
  '.ndjson': 'jsonl',
  '.csv': 'csv',
  '.tsv': 'tsv',
  '.json': 'json',
};
const MAX_JSON_BYTES = 256 * 1024 * 1024;

export function formatOf(file: string): DataFormat {
  const ext = path.extname(file).toLowerCase();
  const format = EXTENSIONS[ext];
  if (!format) {
    throw new Error(
      `${file}: unsupported file type "${ext || '(none)'}" (use .txt, .md, .jsonl, .csv, .tsv or .json)`,
    );
  }
  return format;
}

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

function fromObject(o: Record<string, unknown>): Record<string, string> {
  const values: Record<string, string> = {};
  for (const [k, v] of Object.entries(o)) values[k] = cell(v);
  return values;
}

async function* jsonlRows(
  file: string,
  name: string,
  signal?: AbortSignal,
): AsyncGenerator<TableRow | RowProblem> {
  let line = 0;
  for await (const text of readLines(file, signal ? { signal } : {})) {
    line++;
    if (text.trim() === '') continue;
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (err) {
      yield { row: line, message: `${name} row ${line}: invalid JSON (${(err as Error).message})` };
      continue;
    }
    if (!v || typeof v !== 'object' || Array.isArray(v)) {
      yield { row: line, message: `${name} row ${line}: expected a JSON object, got ${kind(v)}` };
      continue;
    }
    yield { row: line, values: fromObject(v as Record<string, unknown>) };
  }
}

function kind(v: unknown): string {
  return v === null
    ? 'null'
    : Array.isArray(v)
      ? 'an array'
      : typeof v === 'object'
        ? 'an object'
        : `a ${typeof v}`;
}

/** CSV/TSV records as arrays of fields, each with the line it starts on. */
async function* delimitedRecords(
  file: string,
  sep: ',' | '\t',
  signal?: AbortSignal,
): AsyncGenerator<{ line: number; fields: string[] } | { line: number; error: string }> {
  const quoting = sep === ',';
  let fields: string[] = [];
  let field = '';
  let inQuotes = false;
  let afterQuote = false; // just closed a quoted field
  let line = 1;
  let start = 1;
  let pendingCR = false;
  let any = false; // the record has content
  let bad: string | null = null; // why this record is malformed
  const endRecord = function* () {
    fields.push(field);
    if (bad !== null) {
      const error = bad;
      bad = null;
      fields = [];
      field = '';
      afterQuote = false;
      any = false;
      yield { line: start, error };
      return;
    }
    const rec = { line: start, fields };
    fields = [];
    field = '';
    afterQuote = false;
    const empty = rec.fields.length === 1 && rec.fields[0] === '' && !any;
    any = false;
    if (!empty) yield rec;
  };
  let quotePending = false; // a quote inside quotes: the end of the field, or half of a "" escape
  for await (const chunk of readTextChunks(file, signal ? { signal } : {})) {
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (pendingCR) {
        pendingCR = false;
        if (c === '\n') continue;
      }
      if (quotePending) {
        quotePending = false;
        if (c === '"') {
          field += '"';
          continue;
        }
        inQuotes = false;
        afterQuote = true;
      }
      if (inQuotes) {
        if (c === '"') quotePending = true;
        else {
          if (c === '\n' || (c === '\r' && chunk[i + 1] !== '\n')) line++;
          field += c;
        }
        continue;
      }
      if (c === sep) {
        fields.push(field);
        field = '';
        afterQuote = false;
        any = true;
      } else if (c === '\n' || c === '\r') {
        yield* endRecord();
        line++;
        start = line;
        if (c === '\r') pendingCR = true;
      } else if (c === '"' && quoting && field === '' && !afterQuote) {
        inQuotes = true;
        any = true;
      } else {
        if (afterQuote) {
          bad ??= `text after a closing quote in field ${fields.length + 1}`;
          afterQuote = false;
        }
        field += c;
        any = true;
      }
    }
  }
  if (quotePending) {
    quotePending = false;
    inQuotes = false;
  }
  if (inQuotes) {
    yield { line: start, error: 'a quoted field is never closed (missing ")' };
    return;
  }
  if (field !== '' || fields.length > 0 || any) yield* endRecord();
}

async function* delimitedRows(
  file: string,
  name: string,
  sep: ',' | '\t',
  signal?: AbortSignal,
): AsyncGenerator<TableRow | RowProblem> {
  let header: string[] | null = null;
  for await (const rec of delimitedRecords(file, sep, signal)) {
    if ('error' in rec) {
      yield { row: rec.line, message: `${name} row ${rec.line}: ${rec.error}` };
      continue;
    }
    if (!header) {
      header = rec.fields.map((h, i) => (i === 0 ? h.replace(/^\uFEFF/, '') : h).trim());
      const seen = new Set<string>();
      for (const [i, h] of header.entries()) {
        if (h === '') throw new Error(`${name}: the header's column ${i + 1} has no name`);
        if (seen.has(h)) throw new Error(`${name}: the header names column "${h}" twice`);
        seen.add(h);
      }
      continue;
    }
    if (rec.fields.length !== header.length) {
      yield {
        row: rec.line,
        message: `${name} row ${rec.line}: has ${rec.fields.length} fields, the header has ${header.length}`,
      };
      continue;
    }
    const values: Record<string, string> = {};
    header.forEach((h, i) => (values[h] = rec.fields[i]!));
    yield { row: rec.line, values };
  }
  if (!header) throw new Error(`${name}: no header row (the file has no records)`);
}

async function* jsonArrayRows(file: string, name: string): AsyncGenerator<TableRow | RowProblem> {
  const { size } = await fs.stat(file);
  if (size > MAX_JSON_BYTES) {
    throw new Error(
      `${name}: a JSON array of ${Math.round(size / 2 ** 20)} MiB is too big to parse at once; convert it to JSON Lines (.jsonl)`,
    );
  }
  let text = '';
  for await (const chunk of readTextChunks(file)) text += chunk;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new Error(`${name}: invalid JSON (${(err as Error).message})`);
  }
  if (!Array.isArray(v)) throw new Error(`${name}: expected a JSON array, got ${kind(v)}`);
  for (const [i, el] of v.entries()) {
    const row = i + 1;
    if (typeof el === 'string') yield { row, values: { text: el } };
    else if (el && typeof el === 'object' && !Array.isArray(el)) {
      yield { row, values: fromObject(el as Record<string, unknown>) };
    } else
      yield {
        row,
        message: `${name} element ${row}: expected an object or a string, got ${kind(el)}`,
      };
  }
}

/** Streams a table's records; bad rows come as RowProblems and the rest continue. */
export function readRows(
  file: string,
  opts: { format?: TableFormat; signal?: AbortSignal } = {},
): AsyncGenerator<TableRow | RowProblem> {
  const format = opts.format ?? formatOf(file);
  const name = path.basename(file);
  switch (format) {
    case 'jsonl':
      return jsonlRows(file, name, opts.signal);
    case 'csv':
      return delimitedRows(file, name, ',', opts.signal);
    case 'tsv':
      return delimitedRows(file, name, '\t', opts.signal);
    case 'json':
      return jsonArrayRows(file, name);
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

/** Reads a table (up to `limit` good rows) with its columns and problems. */
export async function readTable(
  file: string,
  opts: { format?: TableFormat; limit?: number; signal?: AbortSignal } = {},
): Promise<Table> {
  const f = opts.format ?? formatOf(file);
  if (f === 'text')
    throw new Error(`${file}: plain text, not a table (use .jsonl, .csv, .tsv or .json)`);
  const columns: string[] = [];
  const seen = new Set<string>();
  const rows: TableRow[] = [];
  const problems: RowProblem[] = [];
  const limit = opts.limit ?? Infinity;
  for await (const r of readRows(file, {
    format: f,
    ...(opts.signal ? { signal: opts.signal } : {}),
  })) {
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
