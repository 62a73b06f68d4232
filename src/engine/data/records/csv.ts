/** CSV (RFC 4180: quoted fields, "" escapes, line breaks inside quotes) and TSV (no quoting). */
import { DEFAULT_MAX_RECORD, readTextChunks, sizeText } from '../text';
import { CR, LF, QUOTE } from './chars';
import { put, type RowProblem, type TableReadOptions, type TableRow } from './rows';

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

export async function* delimitedRows(
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
