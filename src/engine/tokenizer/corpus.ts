/** Streaming a training corpus from UTF-8 text files, with early, clear errors. */
import { createReadStream, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { firstInvalidUtf8 } from '../data/text';
import type { CorpusPosition } from './progress';

export const DEFAULT_CHUNK_BYTES = 1 << 20;
const SNIFF_BYTES = 64 * 1024;
const TEXT_EXTENSIONS = new Set(['.txt', '.md']);

export interface CorpusChunks extends AsyncIterable<string>, CorpusPosition {
  /** The files that are read, folders expanded (known once iteration has started). */
  readonly files: readonly string[];
}

async function statOrThrow(p: string) {
  try {
    return await fs.stat(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new Error(`Corpus path not found: ${p}`);
    throw new Error(`Cannot read corpus path ${p}: ${(err as Error).message}`);
  }
}

/** The .txt/.md files under a folder, recursively, sorted by path. */
async function textFilesIn(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const entry of await fs.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, entry.name);
      const isDir =
        entry.isDirectory() || (entry.isSymbolicLink() && (await statOrThrow(p)).isDirectory());
      if (isDir) await walk(p);
      else if (TEXT_EXTENSIONS.has(path.extname(entry.name).toLowerCase())) out.push(p);
    }
  };
  await walk(dir);
  return out.sort();
}

export async function expandCorpusPaths(paths: readonly string[]): Promise<string[]> {
  if (paths.length === 0) throw new Error('No corpus files given');
  const files: string[] = [];
  for (const p of paths) {
    const stat = await statOrThrow(p);
    if (stat.isDirectory()) {
      const inside = await textFilesIn(p);
      if (inside.length === 0) throw new Error(`No .txt or .md files in folder ${p}`);
      files.push(...inside);
    } else {
      files.push(p);
    }
  }
  return [...new Set(files)];
}

/** Checks that a file is non-empty UTF-8 text by its first 64 KiB; returns its size. */
export async function checkTextFile(file: string): Promise<number> {
  const handle = await fs.open(file, 'r').catch((err: Error) => {
    throw new Error(`Cannot open corpus file ${file}: ${err.message}`);
  });
  try {
    const { size } = await handle.stat();
    if (size === 0) throw new Error(`Corpus file is empty: ${file}`);
    const head = new Uint8Array(Math.min(size, SNIFF_BYTES));
    await handle.read(head, 0, head.length, 0);
    if (head.includes(0)) {
      throw new Error(
        `Corpus file ${file} looks binary (it contains NUL bytes); expected UTF-8 text`,
      );
    }
    try {
      // stream: true so a character cut off at the 64 KiB boundary is not an error
      new TextDecoder('utf-8', { fatal: true }).decode(head, { stream: size > head.length });
    } catch {
      throw new Error(`Corpus file ${file} is not UTF-8 text (invalid UTF-8 in its first 64 KiB)`);
    }
    return size;
  } finally {
    await handle.close();
  }
}

/**
 * Streams UTF-8 files as text chunks of about `chunkBytes` bytes. A streaming TextDecoder keeps
 * characters split across chunk boundaries whole. Folders expand to their .txt/.md files. All
 * files are checked before the first chunk is produced, so errors come early.
 */
export function readCorpusChunks(
  paths: readonly string[],
  chunkBytes: number = DEFAULT_CHUNK_BYTES,
): CorpusChunks {
  const state = {
    bytesRead: 0,
    totalBytes: undefined as number | undefined,
    files: [] as string[],
  };
  return {
    get bytesRead() {
      return state.bytesRead;
    },
    get totalBytes() {
      return state.totalBytes;
    },
    get files() {
      return state.files;
    },
    async *[Symbol.asyncIterator]() {
      const files = await expandCorpusPaths(paths);
      let total = 0;
      for (const f of files) total += await checkTextFile(f);
      Object.assign(state, { files, totalBytes: total, bytesRead: 0 });

      for (const file of files) {
        const decoder = new TextDecoder('utf-8', { fatal: true });
        let offset = 0;
        // the end of the previous chunk: a sequence cut there is checked with the next one
        let tail: Buffer = Buffer.alloc(0);
        for await (const buf of createReadStream(file, { highWaterMark: chunkBytes })) {
          let text: string;
          try {
            text = decoder.decode(buf as Buffer, { stream: true });
          } catch {
            const seen = Buffer.concat([tail, buf as Buffer]);
            const at = offset - tail.length + Math.max(0, firstInvalidUtf8(seen, false));
            throw new Error(`Corpus file ${file} has invalid UTF-8 at byte ${at}`);
          }
          // an unfinished sequence starts with its lead byte in the last 3 bytes
          tail = (buf as Buffer).subarray(Math.max(0, (buf as Buffer).length - 3));
          while (tail.length > 0 && (tail[0]! & 0xc0) === 0x80) tail = tail.subarray(1);
          offset += (buf as Buffer).length;
          state.bytesRead += (buf as Buffer).length;
          if (text !== '') yield text;
        }
        let rest: string;
        try {
          rest = decoder.decode();
        } catch {
          throw new Error(`Corpus file ${file} ends in the middle of a UTF-8 character`);
        }
        if (rest !== '') yield rest;
      }
    },
  };
}
