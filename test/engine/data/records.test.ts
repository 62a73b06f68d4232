import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import iconv from 'iconv-lite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatOf, readRows, readTable } from '../../../src/engine/data/records';
import { detectEncoding, readLines, readTextChunks } from '../../../src/engine/data/text';

let dir: string;
const write = async (name: string, content: string | Uint8Array) => {
  const p = path.join(dir, name);
  await fs.writeFile(p, content);
  return p;
};
const all = async (file: string, chunkBytes?: number) => {
  let s = '';
  for await (const c of readTextChunks(file, chunkBytes ? { chunkBytes } : {})) s += c;
  return s;
};

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'records-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('text files in any encoding', () => {
  const text = 'Café, naïve — “quoted” 中文 and emoji 🎉\nsecond line\n';

  it('UTF-8 with and without a BOM; UTF-16 LE/BE with a BOM; BOM dropped', async () => {
    const plain = await write('u8.txt', text);
    expect(await detectEncoding(plain)).toEqual({ encoding: 'utf-8', bom: false, detected: false });
    expect(await all(plain)).toBe(text);
    const bom = await write(
      'u8bom.txt',
      Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]),
    );
    expect((await detectEncoding(bom)).bom).toBe(true);
    expect(await all(bom)).toBe(text);
    const le = await write(
      'u16le.txt',
      Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]),
    );
    expect((await detectEncoding(le)).encoding).toBe('utf-16le');
    expect(await all(le, 7)).toBe(text);
    const be = await write('u16be.txt', iconv.encode(text, 'utf-16be', { addBOM: true }));
    expect((await detectEncoding(be)).encoding).toBe('utf-16be');
    expect(await all(be, 5)).toBe(text);
  });

  it('UTF-16 without a BOM and legacy encodings are detected', async () => {
    const ascii = 'The quick brown fox jumps over the lazy dog.\n'.repeat(20);
    const le = await write('nobom.txt', Buffer.from(ascii, 'utf16le'));
    expect(await detectEncoding(le)).toMatchObject({ encoding: 'utf-16le', detected: true });
    expect(await all(le)).toBe(ascii);
    const latin = 'Les élèves étaient très fâchés à cause de l’été. Ça coûte cher, déjà.\n'.repeat(
      20,
    );
    const l1 = await write('latin1.txt', iconv.encode(latin.replace('’', "'"), 'windows-1252'));
    const enc = await detectEncoding(l1);
    expect(enc.detected).toBe(true);
    expect(await all(l1)).toBe(latin.replace('’', "'"));
  });

  it('refuses binary and empty files, naming them', async () => {
    const bin = await write(
      'image.png',
      Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 13, 1, 2, 0, 0, 3]),
    );
    await expect(detectEncoding(bin)).rejects.toThrow(/image\.png looks binary/);
    const empty = await write('empty.txt', '');
    await expect(detectEncoding(empty)).rejects.toThrow(/empty\.txt is empty/);
  });

  it('splits lines on \\n, \\r\\n and \\r across chunk boundaries', async () => {
    const f = await write('lines.txt', 'a\r\nb\rc\n\nd');
    const lines: string[] = [];
    for await (const l of readLines(f)) lines.push(l);
    expect(lines).toEqual(['a', 'b', 'c', '', 'd']);
  });
});

describe('tables', () => {
  it('knows formats by extension and refuses others', () => {
    expect(formatOf('a/b.JSONL')).toBe('jsonl');
    expect(formatOf('x.md')).toBe('text');
    expect(() => formatOf('/tmp/x.docx')).toThrow(/x\.docx: unsupported file type "\.docx"/);
  });

  it('CSV: quotes, "" escapes, commas and line breaks inside quotes, CRLF, bad rows named', async () => {
    const f = await write(
      'r.csv',
      'text,label\r\n"Hello, world",pos\r\n"She said ""hi""\nthen left",neg\r\nplain,neu\r\nthree,fields,here\r\n\r\n"open,neg\n',
    );
    const t = await readTable(f);
    expect(t.columns).toEqual(['text', 'label']);
    expect(t.rows).toEqual([
      { row: 2, values: { text: 'Hello, world', label: 'pos' } },
      { row: 3, values: { text: 'She said "hi"\nthen left', label: 'neg' } },
      { row: 5, values: { text: 'plain', label: 'neu' } },
    ]);
    expect(t.problems.map((p) => p.message)).toEqual([
      'r.csv row 6: has 3 fields, the header has 2',
      'r.csv row 8: a quoted field is never closed (missing ")',
    ]);
  });

  it('CSV: the same records whatever the chunking', async () => {
    const body = 'a,b\n' + Array.from({ length: 50 }, (_, i) => `"x""${i}""\n,y",${i}`).join('\n');
    const f = await write('chunks.csv', body);
    const whole = await readTable(f);
    const small: unknown[] = [];
    // the same table in UTF-16: other bytes, other boundaries, the same records
    const g = await write(
      'chunks16.csv',
      Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(body, 'utf16le')]),
    );
    for await (const r of readRows(g)) small.push(r);
    expect(whole.rows.length).toBe(50);
    expect(small).toEqual(whole.rows);
    expect(whole.rows[7]!.values).toEqual({ a: 'x"7"\n,y', b: '7' });
  });

  it('TSV has no quoting', async () => {
    const f = await write('r.tsv', 'sentence\tscore\n"quoted" text\t0.5\n');
    expect((await readTable(f)).rows[0]!.values).toEqual({
      sentence: '"quoted" text',
      score: '0.5',
    });
  });

  it('JSONL: objects by line; bad lines are problems with their line numbers', async () => {
    const f = await write(
      'd.jsonl',
      '{"text":"a","label":1}\n\nnot json\n[1,2]\n{"text":"b","extra":{"k":true}}\n',
    );
    const t = await readTable(f);
    expect(t.columns).toEqual(['text', 'label', 'extra']);
    expect(t.rows).toEqual([
      { row: 1, values: { text: 'a', label: '1' } },
      { row: 5, values: { text: 'b', extra: '{"k":true}' } },
    ]);
    expect(t.problems[0]!.message).toMatch(/^d\.jsonl row 3: invalid JSON/);
    expect(t.problems[1]!.message).toBe('d.jsonl row 4: expected a JSON object, got an array');
  });

  it('JSON arrays of objects or strings; limit stops early', async () => {
    const f = await write('a.json', JSON.stringify([{ q: 'x' }, 'plain', 3, { q: 'y' }]));
    const t = await readTable(f);
    expect(t.rows.map((r) => r.values)).toEqual([{ q: 'x' }, { text: 'plain' }, { q: 'y' }]);
    expect(t.problems[0]!.message).toBe(
      'a.json element 3: expected an object or a string, got a number',
    );
    expect((await readTable(f, { limit: 1 })).rows).toHaveLength(1);
    const notArr = await write('o.json', '{"a":1}');
    await expect(readTable(notArr)).rejects.toThrow('o.json: expected a JSON array, got an object');
  });

  it('reads the bundled labeled sample', async () => {
    const t = await readTable(path.resolve('resources/samples/sentiment-imdb.jsonl'));
    expect(t.problems).toEqual([]);
    expect(t.rows.length).toBe(1000);
    expect(t.columns.length).toBeGreaterThanOrEqual(2);
  });
});
