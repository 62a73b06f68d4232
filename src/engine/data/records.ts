/**
 * Tables in the formats users bring: JSON Lines, CSV (RFC 4180: quoted fields, "" escapes,
 * line breaks inside quotes), TSV (tab-separated, no quoting) and JSON arrays. Every record comes
 * out as string values by column name; a bad row is reported with its row number and the rest
 * go on. Files of any encoding text.ts reads, streamed in linear time, JSON arrays too (element by
 * element). No line, field, record or array element longer than `maxRecord` characters (default
 * DEFAULT_MAX_RECORD) is held: past it the file is refused naming the line, and JSON nested
 * deeper than MAX_JSON_DEPTH levels is refused naming the file and line.
 */
import * as path from 'node:path';
import { assertRegularFile } from '../util/fs';
import { DEFAULT_MAX_RECORD, readLines, readTextChunks, sizeText, type ReadOptions } from './text';

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
/** JSON nested deeper than this (arrays and objects, the top level counting as 1) is refused. */
export const MAX_JSON_DEPTH = 1000;

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

/** values[k] = v, a key "__proto__" too (as a plain property, not the prototype). */
function put(values: Record<string, string>, k: string, v: string): void {
  if (k === '__proto__') {
    Object.defineProperty(values, k, {
      value: v,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  } else values[k] = v;
}

function fromObject(o: Record<string, unknown>): Record<string, string> {
  const values: Record<string, string> = {};
  for (const [k, v] of Object.entries(o)) put(values, k, cell(v));
  return values;
}

/** Options every table reader takes. */
export interface TableReadOptions extends ReadOptions {
  /** The longest line, field, record or JSON array element held (default DEFAULT_MAX_RECORD). */
  maxRecord?: number;
}

/** Whether JSON text nests arrays and objects deeper than `max` levels (strings skipped). */
export function nestedDeeperThan(text: string, max: number): boolean {
  if (text.length <= max) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92)
        i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) {
      if (++depth > max) return true;
    } else if (c === 93 || c === 125) depth--;
  }
  return false;
}

async function* jsonlRows(
  file: string,
  name: string,
  opts: TableReadOptions,
): AsyncGenerator<TableRow | RowProblem> {
  let line = 0;
  for await (const text of readLines(file, { ...opts, name })) {
    line++;
    if (text.trim() === '') continue;
    if (nestedDeeperThan(text, MAX_JSON_DEPTH)) {
      yield {
        row: line,
        message: `${name} row ${line}: JSON nested deeper than ${MAX_JSON_DEPTH} levels`,
      };
      continue;
    }
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

const QUOTE = 34;
const LF = 10;
const CR = 13;

/**
 * CSV/TSV records as arrays of fields, each with the line it starts on. One pass over each chunk;
 * fields are built from slices of it, and none (nor a record) may pass `max` characters.
 */
async function* delimitedRecords(
  file: string,
  name: string,
  sep: ',' | '\t',
  opts: TableReadOptions,
): AsyncGenerator<{ line: number; fields: string[] } | { line: number; error: string }> {
  const quoting = sep === ',';
  const sepCode = sep.charCodeAt(0);
  const max = opts.maxRecord ?? DEFAULT_MAX_RECORD;
  let fields: string[] = [];
  let pieces: string[] = []; // the current field so far
  let fieldLength = 0;
  let recordLength = 0;
  let inQuotes = false;
  let quoteLine = 1; // where the open quoted field starts
  let quotePending = false; // a quote inside quotes: the end of the field, or half of a "" escape
  let afterQuote = false; // just closed a quoted field
  let lastCr = false; // inside quotes, the character before was a CR
  let line = 1;
  let start = 1;
  let pendingCr = false;
  let any = false; // the record has content
  let bad: string | null = null; // why this record is malformed

  const tooLong = (what: 'field' | 'record'): Error => {
    const where =
      what === 'record'
        ? `line ${start}: a record runs past ${sizeText(max)}`
        : inQuotes || quotePending
          ? `line ${quoteLine}: a quoted field runs past ${sizeText(max)} (an unclosed quote?)`
          : `line ${start}: a field runs past ${sizeText(max)}`;
    return new Error(`${name}: ${where}`);
  };
  const append = (piece: string) => {
    if (fieldLength + piece.length > max) throw tooLong('field');
    if (recordLength + piece.length > max) throw tooLong('record');
    pieces.push(piece);
    fieldLength += piece.length;
    recordLength += piece.length;
  };
  const endField = () => {
    fields.push(pieces.length === 1 ? pieces[0]! : pieces.join(''));
    pieces = [];
    fieldLength = 0;
    afterQuote = false;
  };
  const endRecord = function* () {
    endField();
    const rec = { line: start, fields };
    const empty = rec.fields.length === 1 && rec.fields[0] === '' && !any;
    const error = bad;
    fields = [];
    recordLength = 0;
    bad = null;
    any = false;
    if (error !== null) yield { line: start, error };
    else if (!empty) yield rec;
  };

  for await (const chunk of readTextChunks(file, { ...opts, name })) {
    let from = 0; // start of the plain text not yet appended
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i);
      if (pendingCr) {
        pendingCr = false;
        if (c === LF) {
          from = i + 1;
          continue;
        }
      }
      if (quotePending) {
        quotePending = false;
        if (c === QUOTE) {
          append('"');
          from = i + 1;
          continue;
        }
        inQuotes = false;
        afterQuote = true;
      }
      if (inQuotes) {
        if (c === QUOTE) {
          if (i > from) append(chunk.slice(from, i));
          quotePending = true;
          from = i + 1;
          lastCr = false;
        } else if (c === CR) {
          line++;
          lastCr = true;
        } else {
          if (c === LF && !lastCr) line++;
          lastCr = false;
        }
        continue;
      }
      if (c === sepCode) {
        if (i > from) append(chunk.slice(from, i));
        endField();
        if (++recordLength > max) throw tooLong('record'); // separators count: no endless records
        any = true;
        from = i + 1;
      } else if (c === LF || c === CR) {
        if (i > from) append(chunk.slice(from, i));
        yield* endRecord();
        line++;
        start = line;
        if (c === CR) pendingCr = true;
        from = i + 1;
      } else if (c === QUOTE && quoting && fieldLength === 0 && i === from && !afterQuote) {
        inQuotes = true;
        quoteLine = line;
        lastCr = false;
        any = true;
        from = i + 1;
      } else {
        if (afterQuote) {
          bad ??= `text after a closing quote in field ${fields.length + 1}`;
          afterQuote = false;
        }
        any = true;
      }
    }
    if (chunk.length > from) append(chunk.slice(from));
  }
  if (quotePending) {
    quotePending = false;
    inQuotes = false;
  }
  if (inQuotes) {
    yield { line: start, error: 'a quoted field is never closed (missing ")' };
    return;
  }
  if (fieldLength > 0 || fields.length > 0 || any) yield* endRecord();
}

async function* delimitedRows(
  file: string,
  name: string,
  sep: ',' | '\t',
  opts: TableReadOptions,
): AsyncGenerator<TableRow | RowProblem> {
  let header: string[] | null = null;
  for await (const rec of delimitedRecords(file, name, sep, opts)) {
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
    for (let i = 0; i < header.length; i++) put(values, header[i]!, rec.fields[i]!);
    yield { row: rec.line, values };
  }
  if (!header) throw new Error(`${name}: no header row (the file has no records)`);
}

/** What a JSON text that should be an array starts with instead. */
function startsAs(c: string): string | null {
  if (c === '{') return 'an object';
  if (c === '"') return 'a string';
  if (c === 't' || c === 'f') return 'a boolean';
  if (c === 'n') return 'null';
  if (c === '-' || (c >= '0' && c <= '9')) return 'a number';
  return null;
}

function arrayElement(text: string, name: string, n: number, line: number): TableRow | RowProblem {
  let el: unknown;
  try {
    el = JSON.parse(text);
  } catch (err) {
    const what = text.trim() === '' ? 'an empty element' : (err as Error).message;
    throw new Error(`${name}: invalid JSON in element ${n} (line ${line}): ${what}`);
  }
  if (typeof el === 'string') return { row: n, values: { text: el } };
  if (el && typeof el === 'object' && !Array.isArray(el)) {
    return { row: n, values: fromObject(el as Record<string, unknown>) };
  }
  return {
    row: n,
    message: `${name} element ${n}: expected an object or a string, got ${kind(el)}`,
  };
}

const isJsonSpace = (c: number) => c === 32 || c === 10 || c === 13 || c === 9;

/**
 * A JSON array's elements, streamed: a linear scan finds where each top-level element ends
 * (tracking strings and nesting), and each is parsed on its own.
 */
async function* jsonArrayRows(
  file: string,
  name: string,
  opts: TableReadOptions,
): AsyncGenerator<TableRow | RowProblem> {
  const max = opts.maxRecord ?? DEFAULT_MAX_RECORD;
  let phase: 'before' | 'inside' | 'after' = 'before';
  let line = 1;
  let pieces: string[] = []; // the current element so far
  let length = 0;
  let n = 0; // elements finished
  let elementLine = 1;
  let content = false; // the current element has more than white space
  let comma = false; // a comma came after the last element
  let depth = 1; // the array itself is level 1
  let inString = false;
  let escape = false;
  const take = (piece: string) => {
    if (length + piece.length > max) {
      const hint = inString ? ' (an unclosed string?)' : '';
      throw new Error(
        `${name}: line ${elementLine}: element ${n + 1} of the array runs past ${sizeText(max)}${hint}`,
      );
    }
    pieces.push(piece);
    length += piece.length;
  };
  const finish = () => {
    const text = pieces.join('');
    pieces = [];
    length = 0;
    content = false;
    return arrayElement(text, name, ++n, elementLine);
  };
  for await (const chunk of readTextChunks(file, { ...opts, name })) {
    let from = 0;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i);
      if (c === LF) line++;
      if (phase === 'inside') {
        if (inString) {
          if (escape) escape = false;
          else if (c === 92) escape = true;
          else if (c === QUOTE) inString = false;
          continue;
        }
        if (!content && !isJsonSpace(c)) elementLine = line;
        if (c === QUOTE) {
          inString = true;
          content = true;
        } else if (c === 91 || c === 123) {
          content = true;
          if (++depth > MAX_JSON_DEPTH) {
            throw new Error(
              `${name}: line ${line}: element ${n + 1} of the array is nested deeper than ${MAX_JSON_DEPTH} levels`,
            );
          }
        } else if ((c === 93 || c === 125) && depth > 1) depth--;
        else if (c === 44 && depth === 1) {
          if (i > from) take(chunk.slice(from, i));
          yield finish();
          comma = true;
          from = i + 1;
        } else if (c === 93 && depth === 1) {
          if (i > from) take(chunk.slice(from, i));
          if (content || comma) yield finish();
          phase = 'after';
        } else if (c === 125) {
          throw new Error(`${name}: invalid JSON at line ${line}: an unexpected "}"`);
        } else if (!isJsonSpace(c)) content = true;
      } else if (!isJsonSpace(c)) {
        if (phase === 'after') {
          throw new Error(`${name}: invalid JSON at line ${line}: more text after the array`);
        }
        if (c !== 91) {
          const got = startsAs(chunk[i]!);
          throw new Error(
            got
              ? `${name}: expected a JSON array, got ${got}`
              : `${name}: invalid JSON at line ${line}: it does not start with "["`,
          );
        }
        phase = 'inside';
        from = i + 1;
      }
    }
    if (phase === 'inside' && chunk.length > from) take(chunk.slice(from));
  }
  if (phase === 'before') throw new Error(`${name}: invalid JSON: no value`);
  if (phase === 'inside') {
    throw new Error(
      `${name}: invalid JSON: the file ends inside the array${inString ? ' (an unclosed string?)' : ''}`,
    );
  }
}

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
