import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { getEncoding } from 'js-tiktoken';
import { beforeAll, describe, expect, it } from 'vitest';
import { pretokenize } from '../../../src/engine/tokenizer/pretokenize';
import type { BpeTokenizer } from '../../../src/engine/tokenizer/index';
import { AUSTEN, loadGpt2, ROOT, TANG, VARIED_TEXTS } from './helpers';

const tiktoken = getEncoding('gpt2');
// special-token text is ordinary text for us; tell tiktoken the same
const reference = (s: string) => tiktoken.encode(s, [], []);

let gpt2: BpeTokenizer;
beforeAll(async () => {
  gpt2 = await loadGpt2();
});

function testPlans(): { sample: string; encoded: number[] }[] {
  const file = path.join(ROOT, 'node_modules/gpt-tokenizer/data/TestPlans.txt');
  const plans = [];
  for (const block of readFileSync(file, 'utf8').split('\n\n')) {
    const [name, sample, encoded] = block.split('\n');
    if (name !== 'EncodingName: r50k_base' || sample === undefined || encoded === undefined)
      continue;
    plans.push({
      sample: sample.slice('Sample: '.length),
      encoded: JSON.parse(encoded.slice('Encoded: '.length)) as number[],
    });
  }
  return plans;
}

describe("GPT-2's tokenizer", () => {
  it('loads encoder.json + vocab.bpe', () => {
    expect(gpt2.kind).toBe('bpe');
    expect(gpt2.vocabSize).toBe(50257);
    expect(gpt2.eosId).toBe(50256);
    expect([...gpt2.specialTokens]).toEqual([['<|endoftext|>', 50256]]);
    expect(gpt2.idToToken(1169)).toBe('the');
    expect(gpt2.idToToken(262)).toBe('Ġthe');
  });

  it('matches tiktoken on varied text', () => {
    for (const text of VARIED_TEXTS) {
      expect(gpt2.encode(text), JSON.stringify(text)).toEqual(reference(text));
      expect(gpt2.decode(gpt2.encode(text))).toBe(text);
    }
  });

  it("matches gpt-tokenizer's r50k_base test plans", () => {
    const plans = testPlans();
    expect(plans.length).toBeGreaterThan(50);
    for (const { sample, encoded } of plans) {
      expect(gpt2.encode(sample), sample).toEqual(encoded);
      expect(gpt2.decode(encoded)).toBe(sample);
    }
  });

  it('matches tiktoken on real text (English, Chinese poetry)', () => {
    const austen = readFileSync(AUSTEN, 'utf8').slice(0, 200_000);
    expect(gpt2.encode(austen)).toEqual(reference(austen));
    const tang = readFileSync(TANG, 'utf8').slice(0, 30_000);
    expect(gpt2.encode(tang)).toEqual(reference(tang));
  });

  it('matches tiktoken on a long word (heap merge path)', () => {
    const long = '天地玄黄宇宙洪荒日月盈昃辰宿列张'.repeat(40) + 'x'.repeat(500);
    expect(gpt2.encode(long)).toEqual(reference(long));
  });

  it('matches tiktoken on arbitrary strings', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'grapheme', maxLength: 40 }),
          fc.string({ unit: 'binary', maxLength: 40 }),
          fc.string({
            unit: fc.constantFrom(' ', '\n', '\t', "'", 's', 'l', 'a', '1', '!', '中'),
            maxLength: 30,
          }),
        ),
        (s) => {
          expect(gpt2.encode(s)).toEqual(reference(s));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('round-trips any valid Unicode string', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary' })), (s) => {
        expect(gpt2.decode(gpt2.encode(s))).toBe(s);
      }),
      { numRuns: 500 },
    );
  });

  it('turns lone surrogates into U+FFFD (they are not valid UTF-8)', () => {
    expect(gpt2.decode(gpt2.encode('a\ud800b\udfffc'))).toBe('a\ufffdb\ufffdc');
  });

  it('merges long words with the heap exactly like GPT-2 does', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 60 }), (s) => {
        for (const word of pretokenize(s)) {
          const syms = gpt2.byteSymbols(word);
          expect(gpt2.mergeWithHeap([...syms])).toEqual(gpt2.mergeQuadratic([...syms]));
        }
      }),
      { numRuns: 300 },
    );
    const word = 'abababababcabcabcaaaaaaaaaaa';
    const syms = gpt2.byteSymbols(word);
    expect(gpt2.mergeWithHeap([...syms])).toEqual(gpt2.mergeQuadratic([...syms]));
  });

  it('stream-decodes Chinese and emoji exactly', () => {
    const text = '你好，世界！🌍🚀 Emoji 👨‍👩‍👧‍👦 and 漢字 mixed.';
    const ids = gpt2.encode(text);
    const stream = gpt2.streamDecoder();
    const pieces = ids.map((id) => stream.push(id));
    pieces.push(stream.flush());
    expect(pieces.join('')).toBe(text);
    for (const p of pieces) expect(p).not.toContain('\ufffd');
    // some tokens are partial characters, so some pushes returned ''
    expect(pieces.filter((p) => p === '').length).toBeGreaterThan(0);
  });

  it('flushes an incomplete character as U+FFFD', () => {
    const ids = gpt2.encode('🚀');
    expect(ids.length).toBeGreaterThan(1);
    const stream = gpt2.streamDecoder();
    expect(stream.push(ids[0]!)).toBe('');
    expect(stream.flush()).toBe('\ufffd');
    expect(gpt2.decode(ids.slice(0, 1))).toBe('\ufffd');
  });

  it('decodes special tokens to their text and rejects unknown ids', () => {
    expect(gpt2.decode([15496, 50256])).toBe('Hello<|endoftext|>');
    expect(() => gpt2.decode([50257])).toThrow(/out of range/);
  });
});
