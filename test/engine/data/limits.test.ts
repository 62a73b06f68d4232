import { execFileSync } from 'node:child_process';
import { promises as fs, truncateSync, appendFileSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { dir, root, useScratch, write } from './scratch';
import { importDataset, inspectFile } from '../../../src/engine/data/dataset';
import { MAX_JSON_DEPTH, readRows, readTable } from '../../../src/engine/data/records';
import {
  DEFAULT_MAX_RECORD,
  FileChangedError,
  firstInvalidUtf8,
  readLines,
  readTextChunks,
} from '../../../src/engine/data/text';
import { assertRegularFile, describeFileType } from '../../../src/engine/util/fs';

useScratch('gpt-studio-limits-');
const drain = async (it: AsyncIterable<unknown>) => {
  for await (const _ of it) void _;
};
const cap = 64 * 1024;
const posix = process.platform !== 'win32';

describe('lines, fields and records are capped', () => {
  it('the default cap is 16 MiB', () => {
    expect(DEFAULT_MAX_RECORD).toBe(16 * 2 ** 20);
  });

  it('CSV: an unclosed quote is refused at the cap, naming the file and the line', async () => {
    const f = await write('data.csv', 'text,label\nok,1\nfine,2\n"never closed,' + 'x'.repeat(cap));
    await expect(readTable(f, { maxRecord: cap })).rejects.toThrow(
      'data.csv: line 4: a quoted field runs past 64 KiB (an unclosed quote?)',
    );
    // the quote opened on line 3 of a record that starts on line 2
    const g = await write('multi.csv', 'a,b\n1,"x\n' + 'y'.repeat(cap));
    await expect(readTable(g, { maxRecord: cap })).rejects.toThrow(
      'multi.csv: line 2: a quoted field runs past 64 KiB',
    );
  });

  it('CSV and TSV: an overlong unquoted field, or a record of endless separators', async () => {
    const f = await write('wide.tsv', 'a\tb\n1\t' + 'z'.repeat(cap + 1) + '\n');
    await expect(readTable(f, { maxRecord: cap })).rejects.toThrow(
      'wide.tsv: line 2: a field runs past 64 KiB',
    );
    const g = await write('commas.csv', 'a,b\n' + ','.repeat(cap + 1));
    await expect(readTable(g, { maxRecord: cap })).rejects.toThrow(
      'commas.csv: line 2: a record runs past 64 KiB',
    );
    // just under the cap is read
    const ok = await write('ok.csv', 'a,b\n"' + 'q'.repeat(cap - 10) + '",1\n');
    expect((await readTable(ok, { maxRecord: cap })).rows[0]!.values.a).toHaveLength(cap - 10);
  });

  it('JSONL: a line past the cap is refused, naming the file and the line', async () => {
    const f = await write('big.jsonl', '{"a":1}\n{"a":"' + 'x'.repeat(cap) + '"}\n');
    await expect(readTable(f, { maxRecord: cap })).rejects.toThrow(
      'big.jsonl: line 2 is longer than 64 KiB',
    );
    const lines: string[] = [];
    await expect(
      (async () => {
        for await (const l of readLines(f, { maxRecord: cap, chunkBytes: 1000 })) lines.push(l);
      })(),
    ).rejects.toThrow(`${f}: line 2 is longer than 64 KiB`);
    expect(lines).toEqual(['{"a":1}']);
  });

  it('JSON arrays are streamed element by element; an element past the cap is refused', async () => {
    const f = await write('arr.json', '[{"a":1},\n "' + 'x'.repeat(cap) + '"]');
    const seen: unknown[] = [];
    await expect(
      (async () => {
        for await (const r of readRows(f, { maxRecord: cap })) seen.push(r);
      })(),
    ).rejects.toThrow('arr.json: line 2: element 2 of the array runs past 64 KiB');
    expect(seen).toEqual([{ row: 1, values: { a: '1' } }]);
    const open = await write('open.json', '["' + 'x'.repeat(cap));
    await expect(readTable(open, { maxRecord: cap })).rejects.toThrow(
      'open.json: line 1: element 1 of the array runs past 64 KiB (an unclosed string?)',
    );
  });

  it('linear: a 20 MB single-line JSONL and a 20 MB unclosed-quote CSV end in the cap error quickly', async () => {
    const body = 'x'.repeat(20 * 10 ** 6);
    const jl = await write('one-line.jsonl', `{"text":"${body}"}`);
    const csv = await write('unclosed.csv', `text,label\n"${body}`);
    const t0 = performance.now();
    await expect(readTable(jl)).rejects.toThrow('one-line.jsonl: line 1 is longer than 16 MiB');
    await expect(readTable(csv)).rejects.toThrow(
      'unclosed.csv: line 2: a quoted field runs past 16 MiB (an unclosed quote?)',
    );
    await expect(importDataset({ root, paths: [jl], field: 'text' })).rejects.toThrow(
      'one-line.jsonl: line 1 is longer than 16 MiB',
    );
    expect(performance.now() - t0).toBeLessThan(20_000);
  });
});

describe('invalid UTF-8 is reported at its byte', () => {
  const bad = (at: number, seq: number[], total = 200_000) => {
    const b = Buffer.alloc(total, 'a'.charCodeAt(0));
    Buffer.from(seq).copy(b, at);
    return b;
  };

  it('an invalid byte at 170,000 is named there, whatever the chunk size', async () => {
    const f = await write('bad.txt', bad(170_000, [0xff]));
    for (const chunkBytes of [undefined, 4096, 7, 65_536]) {
      await expect(drain(readTextChunks(f, chunkBytes ? { chunkBytes } : {}))).rejects.toThrow(
        `${f} has invalid UTF-8 at byte 170000`,
      );
    }
  });

  it('a character cut off by a later byte is named at its first byte, across chunk borders', async () => {
    // "é" is C3 A9: C3 followed by "A" is invalid at the C3
    const f = await write('cut.txt', bad(100_000, [0xc3, 0x41]));
    // a border between C3 and 41, and one well before
    for (const chunkBytes of [100_001, 50_000, 3]) {
      await expect(drain(readTextChunks(f, { chunkBytes }))).rejects.toThrow(
        'has invalid UTF-8 at byte 100000',
      );
    }
    // a three-byte character split over the border, then a bad continuation
    const g = await write('cut3.txt', bad(99_999, [0xe4, 0xb8, 0x41]));
    await expect(drain(readTextChunks(g, { chunkBytes: 100_000 }))).rejects.toThrow(
      'has invalid UTF-8 at byte 99999',
    );
    const ok = await write('ok.txt', bad(99_999, [0xe4, 0xb8, 0xad]));
    await drain(readTextChunks(ok, { chunkBytes: 100_000 }));
  });

  it('UTF-16: an unpaired surrogate is named at its byte', async () => {
    const text = Buffer.from('ab'.repeat(40_000), 'utf16le');
    Buffer.from([0x00, 0xd8, 0x41, 0x00]).copy(text, 100_000); // a high surrogate, then "A"
    const f = await write('u16.txt', Buffer.concat([Buffer.from([0xff, 0xfe]), text]));
    for (const chunkBytes of [undefined, 100_001, 4097]) {
      await expect(drain(readTextChunks(f, chunkBytes ? { chunkBytes } : {}))).rejects.toThrow(
        'has invalid UTF-16LE at byte 100002',
      );
    }
  });

  it('firstInvalidUtf8 follows the Unicode table of well-formed sequences', () => {
    const at = (...b: number[]) => firstInvalidUtf8(Uint8Array.from(b));
    expect(at(0x61, 0xe2, 0x82, 0xac)).toBe(-1); // €
    expect(at(0x61, 0xc0, 0x80)).toBe(1); // overlong
    expect(at(0xe0, 0x80, 0x80)).toBe(0); // overlong
    expect(at(0xed, 0xa0, 0x80)).toBe(0); // a surrogate
    expect(at(0xf4, 0x90, 0x80, 0x80)).toBe(0); // past U+10FFFF
    expect(at(0x61, 0xf0, 0x9f)).toBe(1); // cut off at the end
    expect(firstInvalidUtf8(Uint8Array.from([0x61, 0xf0, 0x9f]), false)).toBe(-1);
  });
});

describe('deeply nested JSON', () => {
  const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);

  it('a JSON array file nested 100k deep names the file and the depth', async () => {
    const f = await write('deep.json', deep(100_000));
    await expect(readTable(f)).rejects.toThrow(
      `deep.json: line 1: element 1 of the array is nested deeper than ${MAX_JSON_DEPTH} levels`,
    );
    const obj = await write('deepobj.json', `[{"a":${deep(100_000)}}]`);
    await expect(readTable(obj)).rejects.toThrow(/deepobj\.json: .*nested deeper than 1000/);
  });

  it('a JSONL line nested 100k deep is a problem naming the file and line; the rest is read', async () => {
    const f = await write(
      'deep.jsonl',
      `{"text":"a"}\n{"text":${deep(100_000)}}\n{"x":"[[[[" , "text":"b"}\n`,
    );
    const t = await readTable(f);
    expect(t.rows.map((r) => r.values.text)).toEqual(['a', 'b']);
    expect(t.problems.map((p) => p.message)).toEqual([
      `deep.jsonl row 2: JSON nested deeper than ${MAX_JSON_DEPTH} levels`,
    ]);
    // just inside the limit is read (and its nested value kept as JSON)
    const ok = await write('ok.jsonl', `{"v":${deep(MAX_JSON_DEPTH - 1)}}\n`);
    expect((await readTable(ok)).rows[0]!.values.v).toBe(deep(MAX_JSON_DEPTH - 1));
  });

  it('an import of deep JSONL warns and goes on', async () => {
    const f = await write('mixed.jsonl', `{"text":"kept"}\n{"text":{"a":${deep(50_000)}}}\n`);
    const { manifest } = await importDataset({ root, paths: [f], field: 'text' });
    expect(manifest.stats.preview).toBe('kept\n');
    expect(manifest.warnings).toEqual(['mixed.jsonl row 2: JSON nested deeper than 1000 levels']);
  });
});

describe('only regular files are read', () => {
  it.skipIf(!posix)('a FIFO is refused by name before it is opened, everywhere', async () => {
    const fifo = path.join(dir, 'pipe.csv');
    execFileSync('mkfifo', [fifo]);
    const message = `${fifo} is a FIFO (named pipe), not a regular file`;
    await expect(assertRegularFile(fifo)).rejects.toThrow(message);
    await expect(readTable(fifo)).rejects.toThrow(message);
    await expect(inspectFile(fifo)).rejects.toThrow(message);
    await expect(importDataset({ root, paths: [fifo], field: 'text' })).rejects.toThrow(message);
    await expect(drain(readLines(fifo))).rejects.toThrow(message);
    await expect(assertRegularFile(fifo, 'upload 1')).rejects.toThrow(
      'upload 1 is a FIFO (named pipe), not a regular file',
    );
  });

  it.skipIf(!posix)('devices, sockets and folders are named for what they are', async () => {
    await expect(assertRegularFile('/dev/null')).rejects.toThrow(
      '/dev/null is a character device, not a regular file',
    );
    await expect(importDataset({ root, paths: ['/dev/null'] })).rejects.toThrow(
      '/dev/null is a character device',
    );
    await expect(assertRegularFile(dir)).rejects.toThrow(`${dir} is a folder, not a regular file`);
    const sock = path.join(dir, 's.sock');
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    try {
      expect(describeFileType(await fs.stat(sock))).toBe('a socket');
      await expect(assertRegularFile(sock)).rejects.toThrow(`${sock} is a socket`);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    const missing = path.join(dir, 'nope.csv');
    await expect(assertRegularFile(missing)).rejects.toMatchObject({
      message: `${missing}: file not found`,
      code: 'ENOENT',
    });
    const file = await write('plain.txt', 'hi');
    expect((await assertRegularFile(file)).size).toBe(2);
  });

  it.skipIf(!posix)(
    'a folder import skips FIFOs and link loops, warning with their paths',
    async () => {
      await write('corpus/a.txt', 'alpha\n');
      await write('corpus/sub/b.txt', 'beta\n');
      execFileSync('mkfifo', [path.join(dir, 'corpus/pipe.txt')]);
      await fs.symlink('self.txt', path.join(dir, 'corpus/self.txt')); // points at itself
      await fs.symlink('loop-b.csv', path.join(dir, 'corpus/sub/loop-a.csv'));
      await fs.symlink('loop-a.csv', path.join(dir, 'corpus/sub/loop-b.csv'));
      await fs.symlink(path.join(dir, 'corpus/a.txt'), path.join(dir, 'corpus/link.md'));
      const { manifest } = await importDataset({ root, paths: [path.join(dir, 'corpus')] });
      expect(manifest.files.map((f) => f.name)).toEqual([
        'corpus/a.txt',
        'corpus/link.md',
        'corpus/sub/b.txt',
      ]);
      const text = await fs.readFile(path.join(root, manifest.id, manifest.shards[0]!), 'utf8');
      expect(text).toBe('alpha\nalpha\nbeta\n');
      expect(manifest.warnings).toEqual([
        'corpus/pipe.txt is a FIFO (named pipe), not a regular file; skipped',
        'corpus/self.txt is a symbolic link that loops (it leads back to itself); skipped',
        'corpus/sub/loop-a.csv is a symbolic link that loops (it leads back to itself); skipped',
        'corpus/sub/loop-b.csv is a symbolic link that loops (it leads back to itself); skipped',
      ]);
    },
  );

  it.skipIf(!posix)(
    'a folder holding nothing but a loop says why; a given loop is refused',
    async () => {
      const loop = path.join(dir, 'only/self.txt');
      await fs.mkdir(path.dirname(loop));
      await fs.symlink('self.txt', loop);
      await expect(importDataset({ root, paths: [path.join(dir, 'only')] })).rejects.toThrow(
        'No importable files in folder ' +
          path.join(dir, 'only') +
          ' (.txt, .md, .jsonl, .csv, .tsv, .json): only/self.txt is a symbolic link that loops',
      );
      await expect(importDataset({ root, paths: [loop] })).rejects.toThrow(
        `${loop} is a symbolic link that loops`,
      );
    },
  );
});

describe('a file that changes while it is imported is refused', () => {
  const big = 'some line of text\n'.repeat(200_000); // 3.6 MB: several reads

  it('one that shrinks mid-import: nothing is imported', async () => {
    const f = await write('shrinks.txt', big);
    let cut = false;
    await expect(
      importDataset({
        root,
        paths: [f],
        onProgress: () => {
          if (!cut) truncateSync(f, 100);
          cut = true;
        },
      }),
    ).rejects.toThrow(
      `shrinks.txt changed while it was being imported (size was ${big.length} bytes, now 100); nothing was imported`,
    );
    expect(cut).toBe(true);
    expect(await fs.readdir(root)).toEqual([]);
  });

  it('one that grows mid-import (a table)', async () => {
    const f = await write('grows.csv', 'text\n' + big);
    let grown = false;
    await expect(
      importDataset({
        root,
        paths: [f],
        field: 'text',
        onProgress: () => {
          if (!grown) appendFileSync(f, 'more\n');
          grown = true;
        },
      }),
    ).rejects.toThrow(
      /^grows\.csv changed while it was being imported \(size was \d+ bytes, now \d+\)/,
    );
    expect(await fs.readdir(root)).toEqual([]);
  });

  it('one that differs from what the caller saw first; a file read whole keeps its hash', async () => {
    const f = await write('x.txt', 'hello\n');
    const st = await fs.stat(f);
    const stale = { size: st.size + 1, mtimeMs: st.mtimeMs };
    const err = await drain(readTextChunks(f, { expect: stale })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FileChangedError);
    expect((err as Error).message).toBe(
      `${f} changed while it was being read (size was 7 bytes, now 6)`,
    );
    const touched = { size: st.size, mtimeMs: st.mtimeMs - 5000 };
    await expect(drain(readTextChunks(f, { expect: touched }))).rejects.toThrow(
      /changed while it was being read \(size 6 bytes, but modified at /,
    );
    const { manifest } = await importDataset({ root, paths: [f] });
    // sha256 of "hello\n", hashed while it was read
    expect(manifest.files[0]!.sha256).toBe(
      '5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03',
    );
  });
});
