import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readCorpusChunks } from '../../../src/engine/tokenizer/index';
import { tmpDir } from './helpers';

async function collect(chunks: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const c of chunks) out.push(c);
  return out;
}

describe('readCorpusChunks', () => {
  it('streams UTF-8 with characters split across chunks kept whole', async () => {
    const dir = await tmpDir();
    const text = '你好，世界！🌍🚀 café\n'.repeat(50);
    const file = path.join(dir, 'a.txt');
    await fs.writeFile(file, text);
    const corpus = readCorpusChunks([file], 7);
    const chunks = await collect(corpus);
    expect(chunks.length).toBeGreaterThan(50);
    expect(chunks.join('')).toBe(text);
    expect(corpus.bytesRead).toBe(Buffer.byteLength(text));
    expect(corpus.totalBytes).toBe(Buffer.byteLength(text));
  });

  it('expands folders to their .txt/.md files, recursively and sorted', async () => {
    const dir = await tmpDir();
    await fs.mkdir(path.join(dir, 'b', 'c'), { recursive: true });
    await fs.writeFile(path.join(dir, 'b', 'c', 'z.md'), '3');
    await fs.writeFile(path.join(dir, 'b', 'y.txt'), '2');
    await fs.writeFile(path.join(dir, 'a.txt'), '1');
    await fs.writeFile(path.join(dir, 'skip.bin'), '\0\0');
    const corpus = readCorpusChunks([dir]);
    expect((await collect(corpus)).join('')).toBe('132'); // sorted by path: a.txt, b/c/z.md, b/y.txt
    expect(corpus.files.map((f) => path.relative(dir, f))).toEqual([
      'a.txt',
      path.join('b', 'c', 'z.md'),
      path.join('b', 'y.txt'),
    ]);
  });

  it('rejects a binary file, naming it', async () => {
    const dir = await tmpDir();
    const file = path.join(dir, 'model.bin');
    await fs.writeFile(file, Buffer.from([0x47, 0x50, 0x00, 0x01, 0x02]));
    await expect(collect(readCorpusChunks([file]))).rejects.toThrow(
      new RegExp(`${file.replace(/[\\.]/g, '\\$&')} looks binary`),
    );
  });

  it('rejects invalid UTF-8, naming the file', async () => {
    const dir = await tmpDir();
    const file = path.join(dir, 'latin1.txt');
    await fs.writeFile(file, Buffer.from('caf\xe9 cr\xe8me', 'latin1'));
    await expect(collect(readCorpusChunks([file]))).rejects.toThrow(
      /latin1\.txt is not UTF-8 text/,
    );
  });

  it('reports invalid UTF-8 past the first 64 KiB at its byte, across chunk borders', async () => {
    const dir = await tmpDir();
    const file = path.join(dir, 'late.txt');
    // "é" (2 bytes) repeated, so a chunk border can fall inside a character; then a lone 0xff
    const good = Buffer.from('é'.repeat(85_000));
    await fs.writeFile(file, Buffer.concat([good, Buffer.from([0xff]), Buffer.from('tail')]));
    for (const chunkBytes of [1 << 16, 4097, 1000]) {
      await expect(collect(readCorpusChunks([file], chunkBytes))).rejects.toThrow(
        `late.txt has invalid UTF-8 at byte ${good.length}`,
      );
    }
  });

  it('rejects an empty file, a missing path and an empty folder, naming them', async () => {
    const dir = await tmpDir();
    const empty = path.join(dir, 'empty.txt');
    await fs.writeFile(empty, '');
    await expect(collect(readCorpusChunks([empty]))).rejects.toThrow(
      /Corpus file is empty: .*empty\.txt/,
    );
    const missing = path.join(dir, 'missing.txt');
    await expect(collect(readCorpusChunks([missing]))).rejects.toThrow(
      /Corpus path not found: .*missing\.txt/,
    );
    await fs.mkdir(path.join(dir, 'sub'));
    await expect(collect(readCorpusChunks([path.join(dir, 'sub')]))).rejects.toThrow(
      /No \.txt or \.md files in folder .*sub/,
    );
    await expect(collect(readCorpusChunks([]))).rejects.toThrow(/No corpus files/);
  });
});
