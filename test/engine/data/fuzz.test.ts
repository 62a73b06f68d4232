import fc from 'fast-check';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTable, type Table } from '../../../src/engine/data/records';

let dir: string;
let n = 0;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gpt-studio-fuzz-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const RUNS = 200;
const write = async (ext: string, content: string | Uint8Array) => {
  const p = path.join(dir, `f${n++}${ext}`);
  await fs.writeFile(p, content);
  return p;
};

/** Reads a table; an error must be a plain Error naming the file, never a crash of the parser. */
async function readOrClean(file: string, opts: { chunkBytes?: number; maxRecord?: number } = {}) {
  try {
    return await readTable(file, opts);
  } catch (err) {
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(RangeError);
    expect(err).not.toBeInstanceOf(TypeError);
    expect((err as Error).message).toContain(path.basename(file));
    return null;
  } finally {
    await fs.rm(file);
  }
}

function problemsNameTheFile(t: Table | null, file: string) {
  for (const p of t?.problems ?? []) expect(p.message).toContain(path.basename(file));
}

// text built from characters that matter to the parsers, plus some that do not
const special = fc.constantFrom('"', ',', '\n', '\r', '\t', '[', ']', '{', '}', ':', '\\', ' ');
const plain = fc.constantFrom('a', 'b', 'é', '中', '😀', '1', '-', 'n', 't');
const text = fc.string({ unit: fc.oneof(special, plain), maxLength: 300 });
const chunkBytes = fc.integer({ min: 1, max: 64 });
const readOpts = fc.record({ chunkBytes, maxRecord: fc.constantFrom(16, 1000, 1 << 20) });

describe('fuzzed input: clean errors naming the file, never a crash or a hang', () => {
  for (const ext of ['.csv', '.tsv', '.jsonl', '.json']) {
    it(`${ext}: arbitrary text and arbitrary bytes`, async () => {
      await fc.assert(
        fc.asyncProperty(text, readOpts, async (s, opts) => {
          const f = await write(ext, s);
          problemsNameTheFile(await readOrClean(f, opts), f);
        }),
        { numRuns: RUNS },
      );
      await fc.assert(
        fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), readOpts, async (b, opts) => {
          const f = await write(ext, b);
          problemsNameTheFile(await readOrClean(f, opts), f);
        }),
        { numRuns: RUNS },
      );
    });
  }
});

/** What the rows of a value parsed whole are (the semantics the streaming readers keep). */
function valuesOf(v: unknown): Record<string, string> | null {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return null;
  const cell = (x: unknown) =>
    x === null || x === undefined
      ? ''
      : typeof x === 'string'
        ? x
        : typeof x === 'object'
          ? JSON.stringify(x)
          : String(x);
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, cell(x)]));
}

describe('streamed JSON reads what JSON.parse of the whole reads', () => {
  const jsonText = fc.oneof(
    fc.json(),
    fc
      .array(fc.oneof(fc.object(), fc.string(), fc.jsonValue()), { maxLength: 8 })
      .chain((a) => fc.constantFrom(JSON.stringify(a), JSON.stringify(a, null, 2))),
    text,
  );

  it('.json: the same elements, or an error exactly when JSON.parse fails', async () => {
    await fc.assert(
      fc.asyncProperty(jsonText, chunkBytes, async (s, chunk) => {
        fc.pre(!s.startsWith('\uFEFF') && s.trim() !== '');
        let whole: unknown;
        let parses = true;
        try {
          whole = JSON.parse(s);
        } catch {
          parses = false;
        }
        const f = await write('.json', s);
        const t = await readOrClean(f, { chunkBytes: chunk });
        if (!parses || !Array.isArray(whole)) {
          expect(t).toBeNull();
          return;
        }
        expect(t).not.toBeNull();
        const expected = whole.flatMap((el, i) =>
          typeof el === 'string'
            ? [{ row: i + 1, values: { text: el } }]
            : valuesOf(el)
              ? [{ row: i + 1, values: valuesOf(el)! }]
              : [],
        );
        expect(t!.rows).toEqual(expected);
        expect(t!.rows.length + t!.problems.length).toBe(whole.length);
      }),
      { numRuns: RUNS },
    );
  });

  it('.jsonl: each line as JSON.parse reads it', async () => {
    const line = fc.oneof(
      fc.json(),
      fc.object().map((o) => JSON.stringify(o)),
      text,
    );
    const eol = fc.constantFrom('\n', '\r\n', '\r');
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(line, eol), { maxLength: 10 }),
        chunkBytes,
        async (ls, chunk) => {
          const s = ls.map(([l, e]) => l + e).join('');
          fc.pre(!s.startsWith('\uFEFF') && s.trim() !== '');
          const lines = s.split(/\r\n|\n|\r/);
          if (lines[lines.length - 1] === '') lines.pop();
          const rows: Array<{ row: number; values: Record<string, string> }> = [];
          const bad: number[] = [];
          lines.forEach((l, i) => {
            if (l.trim() === '') return;
            let v: unknown;
            try {
              v = JSON.parse(l);
            } catch {
              bad.push(i + 1);
              return;
            }
            const values = valuesOf(v);
            if (values) rows.push({ row: i + 1, values });
            else bad.push(i + 1);
          });
          const f = await write('.jsonl', s);
          const t = await readOrClean(f, { chunkBytes: chunk });
          expect(t).not.toBeNull();
          expect(t!.rows).toEqual(rows);
          expect(t!.problems.map((p) => p.row)).toEqual(bad);
        },
      ),
      { numRuns: RUNS },
    );
  });
});

describe('well-formed CSV round-trips', () => {
  const cellChar = fc.constantFrom(
    'a',
    'Z',
    ' ',
    'é',
    '中',
    '😀',
    ',',
    '"',
    '\n',
    '\r',
    '\r\n',
    '\t',
    "'",
  );
  const cell = fc.string({ unit: cellChar, maxLength: 12 });
  const name = fc
    .string({ unit: cellChar, minLength: 1, maxLength: 6 })
    .filter((h) => h.trim() === h && h !== '');
  const table = fc.integer({ min: 1, max: 4 }).chain((cols) =>
    fc.record({
      header: fc.uniqueArray(name, { minLength: cols, maxLength: cols }),
      rows: fc.array(fc.array(cell, { minLength: cols, maxLength: cols }), { maxLength: 8 }),
      eol: fc.constantFrom('\n', '\r\n', '\r'),
      quoteAll: fc.boolean(),
      trailing: fc.boolean(),
      chunkBytes,
    }),
  );

  it('fields with quotes, commas and line breaks come back as written, on their lines', async () => {
    await fc.assert(
      fc.asyncProperty(
        table,
        async ({ header, rows, eol, quoteAll, trailing, chunkBytes: chunk }) => {
          const quote = (v: string) =>
            quoteAll || /[",\r\n]/.test(v) || (v === '' && header.length === 1)
              ? `"${v.replaceAll('"', '""')}"`
              : v;
          const records = [header, ...rows].map((r) => r.map(quote).join(','));
          const s = records.join(eol) + (trailing ? eol : '');
          // each record starts on the line after the line breaks before it
          const starts: number[] = [];
          let at = 0;
          for (const r of records) {
            starts.push(1 + (s.slice(0, at).match(/\r\n|\r|\n/g)?.length ?? 0));
            at += r.length + eol.length;
          }
          const f = await write('.csv', s);
          const t = await readOrClean(f, { chunkBytes: chunk });
          expect(t).not.toBeNull();
          expect(t!.problems).toEqual([]);
          expect(t!.columns).toEqual(rows.length ? header : []); // columns come from the rows read
          expect(t!.rows).toEqual(
            rows.map((r, i) => ({
              row: starts[i + 1],
              values: Object.fromEntries(header.map((h, j) => [h, r[j]!])),
            })),
          );
        },
      ),
      { numRuns: RUNS },
    );
  });
});
