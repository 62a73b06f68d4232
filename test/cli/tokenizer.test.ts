import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, gpt2TokenizerDir, jsonLines, last, smallCorpus, STACK_LINE, tmpDir } from './helpers';

let dir: string;
let corpus: string;

beforeAll(async () => {
  dir = await tmpDir();
  corpus = await smallCorpus(dir, 12_000);
});

afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('tokenizer', () => {
  it('GPT-2 vocab.json + merges.txt encode "Hello world" as [15496, 995] and decode back', async () => {
    const gpt2 = await gpt2TokenizerDir(dir);
    const enc = await cli([
      'tokenizer',
      'encode',
      '--tokenizer',
      gpt2,
      '--text',
      'Hello world',
      '--backend',
      'cpu',
      '--json',
    ]);
    expect(enc.code).toBe(0);
    const lines = jsonLines(enc.stdout);
    // plain JavaScript: no backend is loaded, so no backend line
    expect(lines).toEqual([{ type: 'result', tokens: [15496, 995] }]);

    // The whole `encode --json` output is an acceptable ids file.
    const idsFile = path.join(dir, 'hello.jsonl');
    await fs.writeFile(idsFile, enc.stdout);
    const dec = await cli([
      'tokenizer',
      'decode',
      '--tokenizer',
      gpt2,
      '--ids-file',
      idsFile,
      '--backend',
      'cpu',
    ]);
    expect(dec.code).toBe(0);
    expect(dec.stdout).toBe('Hello world');
  });

  it('train (bpe) → encode --file → decode --out round-trips the corpus', async () => {
    const tok = path.join(dir, 'bpe');
    const tr = await cli([
      'tokenizer',
      'train',
      '--corpus',
      corpus,
      '--type',
      'bpe',
      '--vocab-size',
      '300',
      '--out',
      tok,
      '--backend',
      'cpu',
    ]);
    expect(tr.code).toBe(0);
    expect(tr.stdout).toMatch(/tokenizer: .*merges/);
    expect(tr.stdout).toMatch(/saved a bpe tokenizer with 300 tokens/);
    await fs.access(path.join(tok, 'tokenizer.json'));

    const enc = await cli([
      'tokenizer',
      'encode',
      '--tokenizer',
      tok,
      '--file',
      corpus,
      '--backend',
      'cpu',
      '--json',
    ]);
    expect(enc.code).toBe(0);
    const ids = last(jsonLines(enc.stdout)).tokens as number[];
    expect(ids.length).toBeGreaterThan(100);
    expect(ids.every((id) => Number.isInteger(id) && id >= 0 && id < 300)).toBe(true);

    const idsFile = path.join(dir, 'ids.json');
    await fs.writeFile(idsFile, JSON.stringify({ tokens: ids }));
    const outFile = path.join(dir, 'back.txt');
    const dec = await cli([
      'tokenizer',
      'decode',
      '--tokenizer',
      tok,
      '--ids-file',
      idsFile,
      '--out',
      outFile,
      '--backend',
      'cpu',
    ]);
    expect(dec.code).toBe(0);
    expect(await fs.readFile(outFile, 'utf8')).toBe(await fs.readFile(corpus, 'utf8'));
  });

  it('train (char) --json reports progress and a result; encode prints a JSON array', async () => {
    const tok = path.join(dir, 'char');
    const tr = await cli([
      'tokenizer',
      'train',
      '--corpus',
      corpus,
      '--out',
      tok,
      '--backend',
      'cpu',
      '--json',
    ]);
    expect(tr.code).toBe(0);
    const lines = jsonLines(tr.stdout);
    expect(lines.some((l) => l.type === 'tokenizer')).toBe(true);
    expect(last(lines)).toMatchObject({ type: 'result', kind: 'char', out: tok });

    const enc = await cli([
      'tokenizer',
      'encode',
      '--tokenizer',
      tok,
      '--text',
      'the',
      '--backend',
      'cpu',
    ]);
    expect(enc.code).toBe(0);
    const ids = JSON.parse(enc.stdout) as number[];
    expect(ids).toHaveLength(3);
    expect(enc.stderr).toMatch(/3 tokens/);
  });

  it('decode rejects ids outside the vocabulary and malformed files', async () => {
    const tok = path.join(dir, 'char2');
    await cli(['tokenizer', 'train', '--corpus', corpus, '--out', tok, '--backend', 'cpu']);
    const bad = path.join(dir, 'bad-ids.json');
    await fs.writeFile(bad, '[1, 2, 99999]');
    const r = await cli([
      'tokenizer',
      'decode',
      '--tokenizer',
      tok,
      '--ids-file',
      bad,
      '--backend',
      'cpu',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error: .*bad-ids\.json: token id 99999 is out of range/);
    await fs.writeFile(bad, '{"ids": [1]}');
    const r2 = await cli([
      'tokenizer',
      'decode',
      '--tokenizer',
      tok,
      '--ids-file',
      bad,
      '--backend',
      'cpu',
    ]);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/expected a JSON array of token ids/);
    expect(r2.stderr).not.toMatch(STACK_LINE);
  });
});
