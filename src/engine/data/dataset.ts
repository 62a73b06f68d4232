/**
 * The dataset library: a corpus imported once into workspace/datasets/<id>/ as normalized UTF-8
 * text shards (LF line ends, one record per line for tables) plus manifest.json with the source
 * files, their hashes and the text's statistics. Files of any size are streamed: never read whole.
 * The sha256 of the normalized text identifies a dataset, so importing the same content again
 * finds the existing one.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { DatasetManifest, DatasetStats, InspectResult } from '../../common/datasets';
import { writeJsonAtomic } from '../util/atomic';
import { ownerTag } from '../util/leftovers';
import { assertRegularFile } from '../util/fs';
import {
  formatOf,
  readRows,
  readTable,
  type DataFormat,
  type TableFormat,
  type TableReadOptions,
} from './records';
import { detectEncoding, FileChangedError, readTextChunks } from './text';

/** Extensions an import accepts (folders are walked for these). */
export const IMPORT_EXTENSIONS = ['.txt', '.md', '.jsonl', '.ndjson', '.csv', '.tsv', '.json'];
/** A new shard starts once one holds this many bytes. */
export const SHARD_BYTES = 64 * 2 ** 20;
const PREVIEW_CHARS = 4000;
/** Beyond this many distinct lines, duplicates are no longer tracked (memory stays bounded). */
const MAX_TRACKED_LINES = 5_000_000;
/** Longer lines are counted but not held for the duplicate check. */
const MAX_LINE_CHARS = 1 << 20;
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

export interface ImportProgress {
  phase: 'read' | 'hash' | 'write';
  fraction: number;
  file: string;
  bytesDone: number;
  totalBytes: number;
}

export interface ImportOptions {
  /** workspace/datasets */
  root: string;
  /** Files or folders (walked recursively for .txt, .md, .jsonl, .csv, .tsv, .json). */
  paths: string[];
  name?: string;
  /** The field (jsonl/json) or column (csv/tsv) holding the text of table files. */
  field?: string;
  /** Display names of the sources (browser uploads arrive under generated names). */
  displayNames?: string[];
  source?: DatasetManifest['source'];
  signal?: AbortSignal;
  onProgress?: (p: ImportProgress) => void;
  /** The longest line, field, record or JSON element of a table file (default DEFAULT_MAX_RECORD). */
  maxRecord?: number;
  /** Refuses (throws) a file a folder's symbolic link leads to that the caller may not read. */
  mayRead?: (realPath: string, shown: string) => Promise<void>;
}

export interface ImportResult {
  manifest: DatasetManifest;
  /** True when the same content was already in the library (that dataset is returned). */
  duplicate: boolean;
}

/**
 * The files a set of paths stands for, in the order given: a folder is walked for importable
 * files (sorted). Each file gets the name the user knows it by: `names[i]` for a given file,
 * else its name, and for a folder's files their path from the folder's parent. A given path that
 * is not a regular file or folder is refused; in a folder, an importable name that is a link
 * loop, a FIFO, a device or a socket is left out, and why goes into `skipped`. Symbolic links to
 * folders are not followed; a link to a file is taken only where `mayRead` accepts its real path
 * (browser mode's allow-list), else it too is skipped, with the reason `mayRead` threw.
 */
export async function expandImportPaths(
  paths: readonly string[],
  names: readonly string[] = [],
  skipped: string[] = [],
  mayRead?: (realPath: string, shown: string) => Promise<void>,
): Promise<Array<{ file: string; name: string }>> {
  if (paths.length === 0) throw new Error('No files to import');
  const out: Array<{ file: string; name: string }> = [];
  const seen = new Set<string>();
  const add = (file: string, name: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    out.push({ file, name });
  };
  const walk = async (dir: string, shown: string, into: string[]): Promise<void> => {
    for (const e of await fs.readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.name.startsWith('.')) continue;
      if (e.isDirectory()) await walk(p, path.join(shown, e.name), into);
      else if (IMPORT_EXTENSIONS.includes(path.extname(e.name).toLowerCase())) {
        if (e.isFile()) into.push(p);
        else {
          // a symbolic link (taken if it leads to a regular file), a FIFO, a device, a socket
          const name = path.join(shown, e.name);
          await assertRegularFile(p, name)
            .then(async () => mayRead?.(await fs.realpath(p), name))
            .then(
              () => into.push(p),
              (err: Error) => skipped.push(`${err.message}; skipped`),
            );
        }
      }
    }
  };
  for (const [i, p] of paths.entries()) {
    const shown = names[i] || p;
    const st = await fs.stat(p).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') throw new Error(`File not found: ${shown}`);
      return assertRegularFile(p, shown); // a link loop, no permission: refused, naming it
    });
    if (st.isDirectory()) {
      const base = names[i] || path.basename(p);
      const inside: string[] = [];
      const before = skipped.length;
      await walk(p, base, inside);
      if (inside.length === 0) {
        const why = skipped[before];
        throw new Error(
          `No importable files in folder ${shown} (.txt, .md, .jsonl, .csv, .tsv, .json)` +
            (why ? `: ${why}` : ''),
        );
      }
      for (const f of inside.sort()) add(f, path.join(base, path.relative(p, f)));
    } else {
      await assertRegularFile(p, shown); // a FIFO or a device is refused before any open
      formatOf(p); // an unknown extension is refused here, naming the file
      add(p, names[i] || path.basename(p));
    }
  }
  return out;
}

/**
 * A table file's columns and first rows, and the column most likely to hold the text. Only a
 * regular file is read; `maxRecord` bounds a line, field or record as in records.ts.
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

/** cyrb53: a fast 53-bit string hash, for spotting repeated lines without keeping them. */
function lineHash(s: string): number {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/** Statistics of a text fed in pieces: characters, lines, distinct characters, repeated lines. */
export class TextStats {
  bytes = 0;
  chars = 0;
  lines = 0;
  nonEmptyLines = 0;
  duplicateLines = 0;
  duplicatesExact = true;
  preview = '';
  private readonly bmp = new Uint8Array(0x10000);
  private readonly astral = new Set<number>();
  private readonly seen = new Set<number>();
  private carry = '';
  private longLine = false;
  private longLineEmpty = true;

  push(text: string): void {
    if (text === '') return;
    this.bytes += Buffer.byteLength(text, 'utf8');
    if (this.preview.length < PREVIEW_CHARS) this.preview += text.slice(0, PREVIEW_CHARS);
    // distinct characters: a bitmap for the BMP, a set for the rest
    const n = text.length;
    for (let i = 0; i < n; i++) {
      const c = text.charCodeAt(i);
      this.chars++;
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < n) {
        const d = text.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          this.astral.add(((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000);
          i++;
          continue;
        }
      }
      this.bmp[c] = 1;
    }
    const parts = (this.carry + text).split('\n');
    this.carry = parts.pop()!;
    for (const line of parts) {
      this.line(line, this.longLine);
      this.longLine = false;
    }
    // a line without end (a file with no line breaks) is not held whole: it counts, unhashed
    if (this.carry.length > MAX_LINE_CHARS) {
      this.longLine = true;
      this.longLineEmpty &&= this.carry.trim() === '';
      this.carry = '';
    }
  }

  private line(line: string, long = false): void {
    this.lines++;
    if (long) {
      if (!this.longLineEmpty || line.trim() !== '') this.nonEmptyLines++;
      this.longLineEmpty = true;
      return;
    }
    if (line.trim() === '') return;
    this.nonEmptyLines++;
    const h = lineHash(line);
    if (this.seen.has(h)) this.duplicateLines++;
    else if (this.seen.size < MAX_TRACKED_LINES) this.seen.add(h);
    else this.duplicatesExact = false;
  }

  finish(): DatasetStats {
    if (this.carry !== '' || this.longLine) this.line(this.carry, this.longLine);
    this.carry = '';
    this.longLine = false;
    const chars: number[] = [];
    for (let c = 0; c < 0x10000; c++) if (this.bmp[c]) chars.push(c);
    chars.push(...[...this.astral].sort((a, b) => a - b));
    return {
      bytes: this.bytes,
      chars: this.chars,
      lines: this.lines,
      nonEmptyLines: this.nonEmptyLines,
      uniqueChars: chars.length,
      duplicateLines: this.duplicateLines,
      duplicatesExact: this.duplicatesExact,
      preview: this.preview.slice(0, PREVIEW_CHARS),
      charset: String.fromCodePoint(...chars.slice(0, 400)),
    };
  }
}

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
async function* normalizedText(
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

/** Writes text into shards of about SHARD_BYTES: text-000.txt, text-001.txt, … */
class ShardWriter {
  readonly names: string[] = [];
  private handle: fs.FileHandle | null = null;
  private bytes = 0;
  constructor(private readonly dir: string) {}
  async write(text: string): Promise<void> {
    if (!this.handle || this.bytes >= SHARD_BYTES) {
      await this.handle?.close();
      const name = `text-${String(this.names.length).padStart(3, '0')}.txt`;
      this.names.push(name);
      this.handle = await fs.open(path.join(this.dir, name), 'w');
      this.bytes = 0;
    }
    const buf = Buffer.from(text, 'utf8');
    await this.handle.write(buf);
    this.bytes += buf.length;
  }
  async close(): Promise<void> {
    await this.handle?.sync();
    await this.handle?.close();
    this.handle = null;
  }
  /** Closes the open shard without syncing it (an import that failed). */
  async abandon(): Promise<void> {
    await this.handle?.close().catch(() => {});
    this.handle = null;
  }
}

export function slug(name: string): string {
  const s = name
    .normalize('NFKD')
    .replace(/[^\w.-]+/g, '-')
    .replace(/^[-.]+|[-.]+$/g, '')
    .toLowerCase()
    .slice(0, 40);
  return s || 'dataset';
}

/** A source's text, with a change to the file while it is read told in import terms. */
async function* changesRefused(texts: AsyncGenerator<string>, name: string) {
  try {
    yield* texts;
  } catch (err) {
    if (!(err instanceof FileChangedError)) throw err;
    throw new Error(
      `${name} changed while it was being imported (${err.detail}); nothing was imported`,
    );
  }
}

/**
 * Imports files into the library; the same content again returns the existing dataset. Each
 * file's size and mtime are taken first; one that changes before it has been read through is
 * refused and nothing is imported.
 */
export async function importDataset(opts: ImportOptions): Promise<ImportResult> {
  const { signal } = opts;
  const skipped: string[] = [];
  const entries = await expandImportPaths(opts.paths, opts.displayNames, skipped, opts.mayRead);
  const files = entries.map((e) => e.file);
  const formats = files.map((f) => formatOf(f));
  // the size and mtime now: a file that differs by the end of its reading is refused
  const before = await Promise.all(entries.map((e) => assertRegularFile(e.file, e.name)));
  const sizes = before.map((st) => st.size);
  const totalBytes = sizes.reduce((a, b) => a + b, 0);
  const displayName = (i: number) => entries[i]!.name;
  // the encoding check refuses binary and empty files before anything is written
  const encodings: string[] = [];
  for (const f of files) encodings.push((await detectEncoding(f)).encoding);

  await fs.mkdir(opts.root, { recursive: true });
  const tmp = path.join(opts.root, `.import-${ownerTag()}`);
  await fs.mkdir(tmp, { recursive: true });
  const writer = new ShardWriter(tmp);
  try {
    const stats = new TextStats();
    const content = createHash('sha256');
    const problems: string[] = [...skipped];
    let done = 0;
    const fileInfo: DatasetManifest['files'] = [];
    for (const [i, file] of files.entries()) {
      const name = displayName(i);
      const format = formats[i]!;
      let read = 0;
      const hash = createHash('sha256');
      const reading: TableReadOptions = {
        expect: { size: sizes[i]!, mtimeMs: before[i]!.mtimeMs },
        onBytes: (b) => hash.update(b),
        ...(signal ? { signal } : {}),
        ...(opts.maxRecord !== undefined ? { maxRecord: opts.maxRecord } : {}),
      };
      const texts = normalizedText(file, format, opts.field, problems, reading);
      for await (const text of changesRefused(texts, name)) {
        signal?.throwIfAborted();
        stats.push(text);
        content.update(text, 'utf8');
        await writer.write(text);
        read = Math.min(sizes[i]!, read + Buffer.byteLength(text, 'utf8'));
        opts.onProgress?.({
          phase: 'read',
          fraction: totalBytes > 0 ? (done + read) / totalBytes : 1,
          file: name,
          bytesDone: done + read,
          totalBytes,
        });
      }
      done += sizes[i]!;
      opts.onProgress?.({
        phase: 'read',
        fraction: totalBytes > 0 ? done / totalBytes : 1,
        file: name,
        bytesDone: done,
        totalBytes,
      });
      fileInfo.push({
        name,
        bytes: sizes[i]!,
        sha256: hash.digest('hex'),
        format,
        encoding: encodings[i]!,
      });
    }
    await writer.close();
    const s = stats.finish();
    if (s.chars === 0 || s.nonEmptyLines === 0) {
      const names = fileInfo.map((f) => f.name).join(', ');
      throw new Error(
        `No text found in ${names}` +
          (opts.field ? ` (field "${opts.field}")` : '') +
          (problems[0] ? `: ${problems[0]}` : ''),
      );
    }
    const contentHash = content.digest('hex');
    const existing = (await listDatasets(opts.root)).find((d) => d.contentHash === contentHash);
    if (existing) {
      await fs.rm(tmp, { recursive: true, force: true });
      return { manifest: existing, duplicate: true };
    }
    const name =
      opts.name?.trim() ||
      (fileInfo.length === 1
        ? fileInfo[0]!.name.replace(/\.[^.]+$/, '')
        : path.basename(opts.paths[0]!).replace(/\.[^.]+$/, ''));
    const id = `${slug(name)}-${contentHash.slice(0, 8)}`;
    const distinct = [...new Set(formats)];
    const tableField = distinct.some((f) => f !== 'text') ? opts.field : undefined;
    const manifest: DatasetManifest = {
      version: 1,
      id,
      name,
      createdAt: new Date().toISOString(),
      contentHash,
      format: distinct.length === 1 ? distinct[0]! : 'mixed',
      ...(tableField ? { field: tableField } : {}),
      files: fileInfo,
      shards: writer.names,
      stats: s,
      warnings: problems.slice(0, 20),
      problemCount: problems.length,
      ...(opts.source ? { source: opts.source } : {}),
      tokenCounts: {},
    };
    await writeJsonAtomic(path.join(tmp, 'manifest.json'), manifest);
    const final = path.join(opts.root, id);
    await fs.rm(final, { recursive: true, force: true });
    await fs.rename(tmp, final);
    return { manifest, duplicate: false };
  } catch (err) {
    await writer.abandon();
    await fs.rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

export async function readManifest(dir: string): Promise<DatasetManifest> {
  const file = path.join(dir, 'manifest.json');
  const m = JSON.parse(await fs.readFile(file, 'utf8')) as DatasetManifest;
  if (m.version !== 1 || typeof m.id !== 'string') throw new Error(`${file}: unknown format`);
  return m;
}

/** Every dataset in the library, newest first (folders without a readable manifest skipped). */
export async function listDatasets(root: string): Promise<DatasetManifest[]> {
  const names = await fs.readdir(root).catch(() => [] as string[]);
  const out: DatasetManifest[] = [];
  for (const n of names) {
    if (n.startsWith('.')) continue;
    try {
      out.push(await readManifest(path.join(root, n)));
    } catch {
      // not a dataset folder
    }
  }
  return out.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}

/** The normalized text files of a dataset, in order. */
export function datasetShards(root: string, m: DatasetManifest): string[] {
  return m.shards.map((s) => path.join(root, m.id, s));
}

/** Reads `length` characters of a dataset's text starting near byte `offset`, at a line start. */
export async function readTextAt(
  root: string,
  m: DatasetManifest,
  offset: number,
  length: number,
): Promise<string> {
  let pos = offset;
  for (const shard of datasetShards(root, m)) {
    const { size } = await fs.stat(shard);
    if (pos >= size) {
      pos -= size;
      continue;
    }
    const h = await fs.open(shard, 'r');
    try {
      const buf = Buffer.alloc(Math.min(size - pos, length * 4 + 4096));
      await h.read(buf, 0, buf.length, pos);
      let s = new TextDecoder('utf-8').decode(buf).replace(/^\uFFFD+/, '');
      if (offset > 0) {
        const nl = s.indexOf('\n');
        if (nl >= 0 && nl < s.length - 1) s = s.slice(nl + 1);
      }
      return [...s].slice(0, length).join('');
    } finally {
      await h.close();
    }
  }
  return '';
}
