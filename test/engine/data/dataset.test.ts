import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { dir, root, useScratch, write } from './scratch';
import {
  datasetShards,
  importDataset,
  inspectFile,
  listDatasets,
  readTextAt,
  TextStats,
} from '../../../src/engine/data/dataset';

useScratch('gpt-studio-ds-');

describe('TextStats', () => {
  it('counts characters, lines, distinct characters and repeated lines across chunk borders', () => {
    const s = new TextStats();
    for (const piece of ['ab\nc', 'd\nab', '\n\n', 'é😀\ncd']) s.push(piece);
    const r = s.finish();
    // lines: "ab", "cd", "ab", "", "é😀", "cd"
    expect(r.lines).toBe(6);
    expect(r.nonEmptyLines).toBe(5);
    expect(r.duplicateLines).toBe(2);
    expect(r.chars).toBe(15);
    expect(r.uniqueChars).toBe(7); // a b c d \n é 😀
    expect(r.charset).toContain('😀');
  });

  it('counts a line longer than it holds without keeping it', () => {
    const s = new TextStats();
    const chunk = 'x'.repeat(600_000);
    for (let i = 0; i < 4; i++) s.push(chunk);
    s.push('\nshort\nshort');
    const r = s.finish();
    expect(r).toMatchObject({ lines: 3, nonEmptyLines: 3, duplicateLines: 1, chars: 2_400_012 });
  });
});

describe('importDataset', () => {
  it('normalizes text files, records stats and hashes, and recognizes the same content again', async () => {
    const a = await write('corpus/a.txt', 'one\r\ntwo\r\n');
    await write('corpus/sub/b.md', 'three\nthree');
    await write('corpus/skip.bin', 'x');
    const { manifest, duplicate } = await importDataset({
      root,
      paths: [path.join(dir, 'corpus')],
    });
    expect(duplicate).toBe(false);
    expect(manifest.name).toBe('corpus');
    expect(manifest.files.map((f) => f.name)).toEqual(['corpus/a.txt', 'corpus/sub/b.md']);
    expect(manifest.files[0]!.sha256).toMatch(/^[0-9a-f]{64}$/);
    const text = (
      await Promise.all(datasetShards(root, manifest).map((f) => fs.readFile(f, 'utf8')))
    ).join('');
    expect(text).toBe('one\ntwo\nthree\nthree\n');
    expect(manifest.stats).toMatchObject({ lines: 4, duplicateLines: 1, chars: 20 });
    expect(manifest.contentHash).toMatch(/^[0-9a-f]{64}$/);

    // the same text in another encoding and file layout is the same dataset
    const utf16 = Buffer.concat([
      Buffer.from([0xff, 0xfe]),
      Buffer.from('one\ntwo\nthree\nthree\n', 'utf16le'),
    ]);
    const again = await importDataset({ root, paths: [await write('c.txt', utf16)] });
    expect(again.duplicate).toBe(true);
    expect(again.manifest.id).toBe(manifest.id);
    expect(await listDatasets(root)).toHaveLength(1);
    expect(a).toBeTruthy();
  });

  it('takes the chosen field of JSONL and the chosen column of CSV', async () => {
    const jl = await write(
      'reviews.jsonl',
      '{"text":"good film","label":1}\n{"text":"bad film","label":0}\nnot json\n',
    );
    const info = await inspectFile(jl);
    expect(info.columns).toEqual(['text', 'label']);
    expect(info.suggested).toBe('text');
    const r = await importDataset({ root, paths: [jl], field: 'text' });
    expect(r.manifest.stats.preview).toBe('good film\nbad film\n');
    expect(r.manifest.field).toBe('text');
    expect(r.manifest.problemCount).toBe(1);
    expect(r.manifest.warnings[0]).toMatch(/reviews\.jsonl.*3/);

    const csv = await write('t.csv', 'id,body\n1,"hello, world"\n2,"multi\nline"\n');
    const c = await importDataset({ root, paths: [csv], field: 'body' });
    expect(c.manifest.stats.preview).toBe('hello, world\nmulti\nline\n');
    await expect(importDataset({ root, paths: [csv], field: 'nope' })).rejects.toThrow(
      /t\.csv.*"nope"/,
    );
  });

  it('refuses binary and empty files naming them, and leaves nothing behind', async () => {
    const bin = await write('blob.txt', new Uint8Array([1, 2, 0, 0, 5, 6, 7, 0, 9]));
    await expect(importDataset({ root, paths: [bin] })).rejects.toThrow(/blob\.txt/);
    const empty = await write('empty.txt', '');
    await expect(importDataset({ root, paths: [empty] })).rejects.toThrow(/empty\.txt/);
    await expect(importDataset({ root, paths: [await write('x.pdf', 'x')] })).rejects.toThrow(
      /x\.pdf/,
    );
    expect(await fs.readdir(root).catch(() => [])).toEqual([]);
  });

  it('reads the validation part of the text at a line start', async () => {
    const lines = Array.from({ length: 100 }, (_, i) => `line ${i}`).join('\n') + '\n';
    const { manifest } = await importDataset({ root, paths: [await write('n.txt', lines)] });
    const tail = await readTextAt(root, manifest, Math.round(manifest.stats.bytes * 0.9), 20);
    expect(tail).toMatch(/^line 9\d\n/);
  });
});
