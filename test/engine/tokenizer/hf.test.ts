import { promises as fs, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  EXTRACT_TOKEN,
  loadTokenizer,
  START_TOKEN,
  trainTokenizer,
  type BpeTokenizer,
  type Tokenizer,
} from '../../../src/engine/tokenizer/index';
import { AUSTEN, chunks, loadGpt2, tmpDir, VARIED_TEXTS } from './helpers';

const sample = readFileSync(AUSTEN, 'utf8').slice(0, 50_000);
interface TokenizerJson {
  version: string;
  pre_tokenizer: unknown;
  decoder: { type: string };
  added_tokens: { id: number; content: string; special: boolean }[];
  model: { type: string; vocab: Record<string, number>; merges: string[] };
}
const readJson = async <T>(file: string) => JSON.parse(await fs.readFile(file, 'utf8')) as T;

function expectSameTokenizer(a: Tokenizer, b: Tokenizer, texts: string[]): void {
  expect(b.kind).toBe(a.kind);
  expect(b.vocabSize).toBe(a.vocabSize);
  expect([...b.specialTokens]).toEqual([...a.specialTokens]);
  expect(b.eosId).toBe(a.eosId);
  for (let id = 0; id < a.vocabSize; id++) expect(b.idToToken(id)).toBe(a.idToToken(id));
  for (const t of texts) expect(b.encode(t)).toEqual(a.encode(t));
}

let bpe: BpeTokenizer;
beforeAll(async () => {
  bpe = (await trainTokenizer({
    kind: 'bpe',
    vocabSize: 700,
    corpus: chunks(sample),
  })) as BpeTokenizer;
  bpe.addSpecialTokens([START_TOKEN, EXTRACT_TOKEN]);
});

describe('Hugging Face files', () => {
  it('saves a trained BPE in HF format and loads it back identically', async () => {
    const dir = await tmpDir();
    await bpe.save(dir);
    expect((await fs.readdir(dir)).sort()).toEqual([
      'merges.txt',
      'tokenizer.json',
      'tokenizer_config.json',
      'vocab.json',
    ]);
    const tj = await readJson<TokenizerJson>(path.join(dir, 'tokenizer.json'));
    expect(tj.version).toBe('1.0');
    expect(tj.model.type).toBe('BPE');
    expect(tj.pre_tokenizer).toMatchObject({
      type: 'ByteLevel',
      add_prefix_space: false,
      use_regex: true,
    });
    expect(tj.decoder.type).toBe('ByteLevel');
    expect(tj.added_tokens).toEqual([
      expect.objectContaining({ id: 699, content: '<|endoftext|>', special: true }),
      expect.objectContaining({ id: 700, content: START_TOKEN, special: true }),
      expect.objectContaining({ id: 701, content: EXTRACT_TOKEN, special: true }),
    ]);
    expect(Object.keys(tj.model.vocab)).toHaveLength(702);
    expect(tj.model.merges).toHaveLength(bpe.mergeList.length);
    const config = await readJson<object>(path.join(dir, 'tokenizer_config.json'));
    expect(config).toMatchObject({
      tokenizer_class: 'GPT2Tokenizer',
      eos_token: '<|endoftext|>',
      bos_token: '<|endoftext|>',
      unk_token: '<|endoftext|>',
      model_max_length: 1024,
    });
    const merges = (await fs.readFile(path.join(dir, 'merges.txt'), 'utf8')).split('\n');
    expect(merges[0]).toBe('#version: 0.2');
    expect(merges[1]).toBe(bpe.mergeList[0]!.join(' '));

    const loaded = await loadTokenizer(dir);
    expectSameTokenizer(bpe, loaded, [...VARIED_TEXTS, sample]);

    // without tokenizer.json, vocab.json + merges.txt give the same tokenizer
    await fs.rm(path.join(dir, 'tokenizer.json'));
    expectSameTokenizer(bpe, await loadTokenizer(dir), [...VARIED_TEXTS, sample]);
  });

  it("saves GPT-2's tokenizer and loads it back identically", async () => {
    const gpt2 = await loadGpt2();
    const dir = await tmpDir();
    await gpt2.save(dir, { modelMaxLength: 1024 });
    expectSameTokenizer(gpt2, await loadTokenizer(dir), [...VARIED_TEXTS, sample]);
  });

  it('saves a char tokenizer as an HF BPE model without merges', async () => {
    const char = await trainTokenizer({ kind: 'char', corpus: chunks('héllo wörld 😀\n') });
    char.addSpecialTokens([START_TOKEN]);
    const dir = await tmpDir();
    await char.save(dir);
    expect((await fs.readdir(dir)).sort()).toEqual(['tokenizer.json', 'tokenizer_config.json']);
    const tj = await readJson<TokenizerJson>(path.join(dir, 'tokenizer.json'));
    expect(tj.pre_tokenizer).toBeNull();
    expect(tj.decoder).toEqual({ type: 'Fuse' });
    expect(tj.model).toMatchObject({ type: 'BPE', merges: [] });
    expect(tj.model.vocab['😀']).toBe(char.encode('😀')[0]);
    expect(tj.added_tokens.map((t) => t.content)).toEqual(['<|endoftext|>', START_TOKEN]);
    const loaded = await loadTokenizer(dir);
    expectSameTokenizer(char, loaded, ['héllo', 'wörld 😀\n']);
    expect(() => loaded.encode('x')).toThrow(/U\+0078/);
  });

  describe('errors name the file and the problem', () => {
    it('missing folder or files', async () => {
      const dir = await tmpDir();
      await expect(loadTokenizer(path.join(dir, 'nope'))).rejects.toThrow(/not found: .*nope/);
      await expect(loadTokenizer(dir)).rejects.toThrow(/No tokenizer in .*tokenizer\.json/);
      await fs.writeFile(path.join(dir, 'vocab.json'), '{}');
      await expect(loadTokenizer(dir)).rejects.toThrow(/merges\.txt is missing/);
    });

    it('malformed tokenizer.json', async () => {
      const dir = await tmpDir();
      const file = path.join(dir, 'tokenizer.json');
      await fs.writeFile(file, '{"model": ');
      await expect(loadTokenizer(dir)).rejects.toThrow(/tokenizer\.json: not valid JSON/);
      await fs.writeFile(file, JSON.stringify({ model: { type: 'WordPiece', vocab: {} } }));
      await expect(loadTokenizer(dir)).rejects.toThrow(/tokenizer\.json: model type "WordPiece"/);
      await fs.writeFile(file, JSON.stringify({ model: { type: 'BPE', vocab: { a: 0, b: 2 } } }));
      await expect(loadTokenizer(dir)).rejects.toThrow(/tokenizer\.json: no token has id 1/);
      await fs.writeFile(file, JSON.stringify({ model: { type: 'BPE', vocab: { ab: 0 } } }));
      await expect(loadTokenizer(dir)).rejects.toThrow(
        /tokenizer\.json: .*"ab".*not a single character/,
      );
      await fs.writeFile(
        file,
        JSON.stringify({
          pre_tokenizer: { type: 'ByteLevel' },
          model: { type: 'BPE', vocab: { a: 0 } },
        }),
      );
      await expect(loadTokenizer(dir)).rejects.toThrow(
        /tokenizer\.json: .*lacks the token for byte/,
      );
    });

    it('malformed merges.txt', async () => {
      const dir = await tmpDir();
      await bpe.save(dir);
      await fs.rm(path.join(dir, 'tokenizer.json'));
      await fs.writeFile(path.join(dir, 'merges.txt'), '#version: 0.2\nĠ t\nbad line here\n');
      await expect(loadTokenizer(dir)).rejects.toThrow(/merges\.txt:3: expected two tokens/);
      await fs.writeFile(path.join(dir, 'merges.txt'), '#version: 0.2\nĠ t\nzzzq zzzr\n');
      await expect(loadTokenizer(dir)).rejects.toThrow(/vocab\.json: merge 2 \(zzzq zzzr\)/);
    });
  });
});
