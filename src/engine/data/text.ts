/**
 * Reading text files whatever their encoding: a byte-order mark (UTF-8, UTF-16LE/BE) decides
 * first, then valid UTF-8, then UTF-16 without a BOM (its NUL pattern), then a detected legacy
 * encoding (chardet, decoded by iconv-lite). Binary and empty files are refused with a message
 * naming the file. Files are streamed chunk by chunk, never read whole.
 */
import chardet from 'chardet';
import iconv from 'iconv-lite';
import { createReadStream, promises as fs } from 'node:fs';

const SNIFF_BYTES = 64 * 1024;
const CHUNK_BYTES = 1 << 20;

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
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(b, { stream: !complete });
    return true;
  } catch {
    return false;
  }
}

/** Sniffs a file's first 64 KiB; refuses empty and binary files, naming them. */
export async function detectEncoding(file: string): Promise<Encoding> {
  const handle = await fs.open(file, 'r').catch((err: Error) => {
    throw new Error(`Cannot open ${file}: ${err.message}`);
  });
  let head: Uint8Array;
  let size: number;
  try {
    size = (await handle.stat()).size;
    if (size === 0) throw new Error(`${file} is empty`);
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
    throw new Error(`${file} looks binary (it contains NUL bytes), not text`);
  }
  if (controlShare(head) > 0.05) {
    throw new Error(
      `${file} looks binary (${Math.round(controlShare(head) * 100)}% control bytes), not text`,
    );
  }
  if (isUtf8(head, size <= head.length)) return { encoding: 'utf-8', bom: false, detected: false };
  const guess = chardet.detect(head);
  const name = guess ? guess.toLowerCase() : null;
  if (!name || !iconv.encodingExists(name) || name.startsWith('utf-32')) {
    throw new Error(`${file} is not text in an encoding GPT Studio can read (not UTF-8 or UTF-16)`);
  }
  return { encoding: name, bom: false, detected: true };
}

/**
 * Streams a file's text, decoded, in chunks of about 1 MiB (a character split across chunks is
 * kept whole). The BOM is dropped. Invalid UTF-8 later in a file is an error naming the byte.
 */
export async function* readTextChunks(
  file: string,
  opts: { signal?: AbortSignal; chunkBytes?: number; encoding?: Encoding } = {},
): AsyncGenerator<string> {
  const enc = opts.encoding ?? (await detectEncoding(file));
  const native = ['utf-8', 'utf-16le', 'utf-16be'].includes(enc.encoding);
  const decoder = native
    ? new TextDecoder(enc.encoding, { fatal: true })
    : iconv.getDecoder(enc.encoding, { stripBOM: true });
  let offset = 0;
  for await (const buf of createReadStream(file, {
    highWaterMark: opts.chunkBytes ?? CHUNK_BYTES,
  })) {
    opts.signal?.throwIfAborted();
    let text: string;
    try {
      text =
        decoder instanceof TextDecoder
          ? decoder.decode(buf as Buffer, { stream: true })
          : decoder.write(buf as Buffer);
    } catch {
      throw new Error(`${file} has invalid ${enc.encoding.toUpperCase()} after byte ${offset}`);
    }
    offset += (buf as Buffer).length;
    if (text !== '') yield text;
  }
  let rest: string;
  try {
    rest = decoder instanceof TextDecoder ? decoder.decode() : (decoder.end() ?? '');
  } catch {
    throw new Error(`${file} ends in the middle of a ${enc.encoding.toUpperCase()} character`);
  }
  if (rest !== '') yield rest;
}

/** Streams a file's lines (without their line breaks: \n, \r\n or \r). */
export async function* readLines(
  file: string,
  opts: { signal?: AbortSignal; encoding?: Encoding } = {},
): AsyncGenerator<string> {
  let carry = '';
  for await (const chunk of readTextChunks(file, opts)) {
    const text = carry + chunk;
    const parts = text.split(/\r\n|\n|\r(?!$)/);
    carry = parts.pop() ?? '';
    yield* parts;
  }
  if (carry.endsWith('\r')) carry = carry.slice(0, -1);
  if (carry !== '') yield carry;
}
