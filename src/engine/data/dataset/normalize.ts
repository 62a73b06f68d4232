/** One source file's text, normalized: LF line ends, and one record per line for tables. */
import { readRows, type DataFormat, type TableFormat, type TableReadOptions } from '../records';
import { readTextChunks } from '../text';

/** CR LF and lone CR become LF; a CR at a chunk's end waits for the next chunk. */
function lineEnds() {
  let pendingCr = false;
  return (text: string, final = false): string => {
    let s = (pendingCr ? '\r' : '') + text;
    pendingCr = !final && s.endsWith('\r');
    if (pendingCr) s = s.slice(0, -1);
    return s.replace(/\r\n?/g, '\n');
  };
}

/**
 * The text of one source file, normalized, in chunks. `read` carries what the readers check the
 * file against (its size and mtime at the start) and a hook for its raw bytes.
 */
export async function* normalizedText(
  file: string,
  format: DataFormat,
  field: string | undefined,
  problems: string[],
  read: TableReadOptions,
): AsyncGenerator<string> {
  const norm = lineEnds();
  if (format === 'text') {
    let last = '';
    for await (const chunk of readTextChunks(file, read)) {
      const s = norm(chunk);
      if (s !== '') {
        last = s;
        yield s;
      }
    }
    const rest = norm('', true);
    if (rest !== '') yield (last = rest);
    if (last !== '' && !last.endsWith('\n')) yield '\n';
    return;
  }
  if (!field) throw new Error(`${file}: choose the field that holds the text`);
  let batch = '';
  let found = false;
  let rows = 0;
  for await (const r of readRows(file, { ...read, format: format as TableFormat })) {
    if ('message' in r) {
      problems.push(r.message);
      continue;
    }
    rows++;
    if (!(field in r.values)) {
      problems.push(`${file}: row ${r.row} has no field "${field}"`);
      continue;
    }
    found = true;
    const v = r.values[field]!.replace(/\r\n?/g, '\n');
    if (v.trim() === '') continue;
    batch += v.endsWith('\n') ? v : v + '\n';
    if (batch.length >= 1 << 20) {
      yield batch;
      batch = '';
    }
  }
  if (rows > 0 && !found) {
    throw new Error(`${file}: no record has the field "${field}"`);
  }
  if (batch !== '') yield batch;
}
