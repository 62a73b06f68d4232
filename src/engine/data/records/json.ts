/** JSON Lines, one object a line, and JSON arrays, streamed element by element. */
import { DEFAULT_MAX_RECORD, readLines, readTextChunks, sizeText } from '../text';
import { LF, QUOTE } from './chars';
import { fromObject, type RowProblem, type TableReadOptions, type TableRow } from './rows';

/** JSON nested deeper than this (arrays and objects, the top level counting as 1) is refused. */
export const MAX_JSON_DEPTH = 1000;

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

export async function* jsonlRows(
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
export async function* jsonArrayRows(
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
