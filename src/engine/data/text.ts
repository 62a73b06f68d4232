/**
 * Reading text files whatever their encoding: a byte-order mark (UTF-8, UTF-16LE/BE) decides
 * first, then valid UTF-8, then UTF-16 without a BOM (its NUL pattern), then a detected legacy
 * encoding (chardet, decoded by iconv-lite). Binary and empty files are refused with a message
 * naming the file, and so is anything but a regular file. Files are streamed chunk by chunk,
 * never read whole, and a file that changes while it is read is an error.
 */
import chardet from 'chardet';
import iconv from 'iconv-lite';
import { constants, promises as fs, type Stats } from 'node:fs';
import { assertRegularFile, describeFileType } from '../util/fs';

const SNIFF_BYTES = 64 * 1024;
const CHUNK_BYTES = 1 << 20;

/**
 * The longest line (JSONL), field or record (CSV/TSV) or array element (JSON) a reader holds, in
 * characters of decoded text (each at least one byte of the file). Past it the file is refused,
 * naming the line. Readers take `maxRecord` to change it.
 */
export const DEFAULT_MAX_RECORD = 16 * 2 ** 20;

/** 16777216 → "16 MiB", 65536 → "64 KiB", 1000 → "1000 bytes". */
export function sizeText(n: number): string {
  if (n >= 2 ** 20 && n % 2 ** 20 === 0) return `${n / 2 ** 20} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return `${n} bytes`;
}

/** What a reader was told about the file beforehand, and what it reports. */
export interface ReadOptions {
  signal?: AbortSignal;
  /** The file's name in messages (default: its path). */
  name?: string;
  /** The file's size and mtime when the caller first looked; any difference is a FileChangedError. */
  expect?: { size: number; mtimeMs: number };
  /** Every block of raw bytes, in order, as read (e.g. for a hash of exactly what was read). */
  onBytes?: (bytes: Uint8Array) => void;
  /** Bytes per read (default 1 MiB). */
  chunkBytes?: number;
}

/** A file whose size or mtime changed between the first look and the end of reading it. */
export class FileChangedError extends Error {
  constructor(
    readonly file: string,
    /** "size was 3145728 bytes, now 100" and the like. */
    readonly detail: string,
  ) {
    super(`${file} changed while it was being read (${detail})`);
  }
}

function changeDetail(
  before: { size: number; mtimeMs: number },
  after: Stats,
  bytesRead?: number,
): string | null {
  if (after.size !== before.size) return `size was ${before.size} bytes, now ${after.size}`;
  if (bytesRead !== undefined && bytesRead !== before.size) {
    return `size was ${before.size} bytes, but ${bytesRead} could be read`;
  }
  if (after.mtimeMs !== before.mtimeMs) {
    return `size ${before.size} bytes, but modified at ${new Date(after.mtimeMs).toISOString()}`;
  }
  return null;
}

/**
 * Opens a regular file for reading. Refused by its stat before the open, then opened without
 * blocking (a FIFO swapped in meanwhile cannot hang the open) and checked again.
 */
async function openRegular(file: string, name: string): Promise<fs.FileHandle> {
  await assertRegularFile(file, name);
  const flags = constants.O_RDONLY | (process.platform === 'win32' ? 0 : constants.O_NONBLOCK);
  const handle = await fs.open(file, flags).catch((err: Error) => {
    throw new Error(`Cannot open ${name}: ${err.message}`);
  });
  const st = await handle.stat();
  if (!st.isFile()) {
    await handle.close();
    throw new Error(`${name} is ${describeFileType(st)}, not a regular file`);
  }
  return handle;
}

export interface Encoding {
  /** A WHATWG / iconv-lite name: 'utf-8', 'utf-16le', 'utf-16be', 'windows-1252', 'gb18030', … */
  encoding: string;
  bom: boolean;
  /** True when guessed statistically (no BOM, not valid UTF-8). */
  detected: boolean;
}

/** Share of bytes that are control characters other than \t \n \v \f \r and ESC. */
function controlShare(b: Uint8Array): number {
  let n = 0;
  for (const x of b) if (x < 32 && !(x >= 9 && x <= 13) && x !== 27) n++;
  return b.length ? n / b.length : 0;
}

/** UTF-16 without a BOM: text in it has NULs at every other byte (for Latin and ASCII). */
function utf16WithoutBom(b: Uint8Array): 'utf-16le' | 'utf-16be' | null {
  const pairs = Math.floor(b.length / 2);
  if (pairs < 2) return null;
  let evenZero = 0;
  let oddZero = 0;
  for (let i = 0; i + 1 < b.length; i += 2) {
    if (b[i] === 0) evenZero++;
    if (b[i + 1] === 0) oddZero++;
  }
  if (oddZero / pairs > 0.4 && evenZero / pairs < 0.05) return 'utf-16le';
  if (evenZero / pairs > 0.4 && oddZero / pairs < 0.05) return 'utf-16be';
  return null;
}

function isUtf8(b: Uint8Array, complete: boolean): boolean {
  return firstInvalidUtf8(b, complete) < 0;
}

/**
 * Where the first ill-formed UTF-8 sequence starts in `b` (-1 if none). A sequence cut off at the
 * end is ill-formed only when `final`.
 */
export function firstInvalidUtf8(b: Uint8Array, final = true): number {
  const n = b.length;
  let i = 0;
  while (i < n) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) need = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      if (c === 0xe0) lo = 0xa0;
      if (c === 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      if (c === 0xf0) lo = 0x90;
      if (c === 0xf4) hi = 0x8f;
    } else return i;
    for (let k = 1; k <= need; k++) {
      if (i + k >= n) return final ? i : -1;
      const d = b[i + k]!;
      if (k === 1 ? d < lo || d > hi : d < 0x80 || d > 0xbf) return i;
    }
    i += need + 1;
  }
  return -1;
}

/** Where the first unpaired surrogate starts in UTF-16 `b` (which starts on a code unit), or -1. */
function firstInvalidUtf16(b: Uint8Array, le: boolean): number {
  const unit = (i: number) => (le ? b[i]! | (b[i + 1]! << 8) : (b[i]! << 8) | b[i + 1]!);
  for (let i = 0; i + 1 < b.length; i += 2) {
    const u = unit(i);
    if (u >= 0xdc00 && u <= 0xdfff) return i;
    if (u >= 0xd800 && u <= 0xdbff) {
      if (i + 3 >= b.length) return -1;
      const v = unit(i + 2);
      if (v < 0xdc00 || v > 0xdfff) return i;
      i += 2;
    }
  }
  return -1;
}

/**
 * The file offset of the bad bytes a decoder refused in `chunk` (at file offset `start`), given
 * the last bytes before it (`tail`, valid so far: the decoder may still hold a started character).
 */
function invalidOffset(encoding: string, tail: Uint8Array, chunk: Uint8Array, start: number) {
  let back = 0;
  if (encoding === 'utf-8') {
    for (let k = 1; k <= Math.min(3, tail.length); k++) {
      const b = tail[tail.length - k]!;
      if (b < 0x80) break;
      if (b >= 0xc0) {
        if ((b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2) > k) back = k;
        break;
      }
    }
  } else {
    back = start % 2;
    const t = tail.length - back;
    if (t >= 2) {
      const u =
        encoding === 'utf-16le'
          ? tail[t - 2]! | (tail[t - 1]! << 8)
          : (tail[t - 2]! << 8) | tail[t - 1]!;
      if (u >= 0xd800 && u <= 0xdbff) back += 2;
    }
  }
  back = Math.min(back, tail.length);
  const bytes = new Uint8Array(back + chunk.length);
  bytes.set(tail.subarray(tail.length - back));
  bytes.set(chunk, back);
  const at =
    encoding === 'utf-8'
      ? firstInvalidUtf8(bytes, false)
      : firstInvalidUtf16(bytes, encoding === 'utf-16le');
  return at < 0 ? start : start - back + at;
}

/** Sniffs a file's first 64 KiB; refuses empty, binary and non-regular files, naming them. */
export async function detectEncoding(file: string, name: string = file): Promise<Encoding> {
  const handle = await openRegular(file, name);
  let head: Uint8Array;
  let size: number;
  try {
    size = (await handle.stat()).size;
    if (size === 0) throw new Error(`${name} is empty`);
    head = new Uint8Array(Math.min(size, SNIFF_BYTES));
    await handle.read(head, 0, head.length, 0);
  } finally {
    await handle.close();
  }
  if (head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf) {
    return { encoding: 'utf-8', bom: true, detected: false };
  }
  if (head[0] === 0xff && head[1] === 0xfe)
    return { encoding: 'utf-16le', bom: true, detected: false };
  if (head[0] === 0xfe && head[1] === 0xff)
    return { encoding: 'utf-16be', bom: true, detected: false };
  if (head.includes(0)) {
    const utf16 = utf16WithoutBom(head);
    if (utf16) return { encoding: utf16, bom: false, detected: true };
    throw new Error(`${name} looks binary (it contains NUL bytes), not text`);
  }
  if (controlShare(head) > 0.05) {
    throw new Error(
      `${name} looks binary (${Math.round(controlShare(head) * 100)}% control bytes), not text`,
    );
  }
  if (isUtf8(head, size <= head.length)) return { encoding: 'utf-8', bom: false, detected: false };
  const guess = chardet.detect(head);
  const enc = guess ? guess.toLowerCase() : null;
  if (!enc || !iconv.encodingExists(enc) || enc.startsWith('utf-32')) {
    throw new Error(`${name} is not text in an encoding GPT Studio can read (not UTF-8 or UTF-16)`);
  }
  return { encoding: enc, bom: false, detected: true };
}

/**
 * Streams a file's text, decoded, in chunks of about 1 MiB (a character split across chunks is
 * kept whole). The BOM is dropped. Invalid UTF-8 or UTF-16 later in a file is an error naming
 * its byte offset. Exactly the size the file had at the start (or `expect.size`) is read; a file
 * that shrinks, grows or is modified meanwhile is a FileChangedError.
 */
export async function* readTextChunks(
  file: string,
  opts: ReadOptions & { encoding?: Encoding } = {},
): AsyncGenerator<string> {
  const name = opts.name ?? file;
  const enc = opts.encoding ?? (await detectEncoding(file, name));
  const native = ['utf-8', 'utf-16le', 'utf-16be'].includes(enc.encoding);
  const decoder = native
    ? new TextDecoder(enc.encoding, { fatal: true })
    : iconv.getDecoder(enc.encoding, { stripBOM: true });
  const chunkBytes = opts.chunkBytes ?? CHUNK_BYTES;
  const handle = await openRegular(file, name);
  try {
    const first = await handle.stat();
    const expected = opts.expect ?? { size: first.size, mtimeMs: first.mtimeMs };
    const early = changeDetail(expected, first);
    if (early) throw new FileChangedError(name, early);
    let offset = 0;
    let tail: Uint8Array = new Uint8Array(0); // the last few bytes before `offset`
    while (offset < expected.size) {
      opts.signal?.throwIfAborted();
      const buf = Buffer.allocUnsafe(Math.min(chunkBytes, expected.size - offset));
      const { bytesRead } = await handle.read(buf, 0, buf.length, offset);
      if (bytesRead === 0) break;
      const bytes = buf.subarray(0, bytesRead);
      opts.onBytes?.(bytes);
      let text: string;
      try {
        text =
          decoder instanceof TextDecoder
            ? decoder.decode(bytes, { stream: true })
            : decoder.write(bytes);
      } catch {
        const at = invalidOffset(enc.encoding, tail, bytes, offset);
        throw new Error(`${name} has invalid ${enc.encoding.toUpperCase()} at byte ${at}`);
      }
      const kept = Buffer.concat([tail, bytes.subarray(Math.max(0, bytesRead - 4))]);
      tail = kept.subarray(Math.max(0, kept.length - 4));
      offset += bytesRead;
      if (text !== '') yield text;
    }
    const changed = changeDetail(expected, await handle.stat(), offset);
    if (changed) throw new FileChangedError(name, changed);
  } finally {
    await handle.close();
  }
  let rest: string;
  try {
    rest = decoder instanceof TextDecoder ? decoder.decode() : (decoder.end() ?? '');
  } catch {
    throw new Error(`${name} ends in the middle of a ${enc.encoding.toUpperCase()} character`);
  }
  if (rest !== '') yield rest;
}

/**
 * Streams a file's lines (without their line breaks: \n, \r\n or \r) in linear time. A line
 * longer than `maxRecord` characters (default DEFAULT_MAX_RECORD) is an error naming the file
 * and the line; no more than that is ever held.
 */
export async function* readLines(
  file: string,
  opts: ReadOptions & { encoding?: Encoding; maxRecord?: number } = {},
): AsyncGenerator<string> {
  const name = opts.name ?? file;
  const max = opts.maxRecord ?? DEFAULT_MAX_RECORD;
  let parts: string[] = []; // the current line so far
  let length = 0;
  let line = 1;
  let pendingCr = false;
  const take = (piece: string) => {
    if (length + piece.length > max) {
      throw new Error(
        `${name}: line ${line} is longer than ${sizeText(max)} (the most one line may hold)`,
      );
    }
    if (piece !== '') parts.push(piece);
    length += piece.length;
  };
  const finish = (): string => {
    const s = parts.length === 1 ? parts[0]! : parts.join('');
    parts = [];
    length = 0;
    line++;
    return s;
  };
  for await (const chunk of readTextChunks(file, opts)) {
    let i = 0;
    if (pendingCr && chunk.charCodeAt(0) === 10) i = 1;
    pendingCr = false;
    let nl = -1;
    let cr = -1;
    while (i < chunk.length) {
      if (nl < i) nl = chunk.indexOf('\n', i);
      if (cr < i) cr = chunk.indexOf('\r', i);
      if (nl < 0) nl = Infinity;
      if (cr < 0) cr = Infinity;
      const end = Math.min(nl, cr);
      if (end === Infinity) {
        take(chunk.slice(i));
        break;
      }
      take(chunk.slice(i, end));
      yield finish();
      i = end + 1;
      if (end === cr) {
        if (i === chunk.length) pendingCr = true;
        else if (chunk.charCodeAt(i) === 10) i++;
      }
    }
  }
  if (length > 0) yield finish();
}
