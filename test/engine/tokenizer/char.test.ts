import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CharTokenizer,
  DELIMITER_TOKEN,
  END_OF_TEXT,
  EXTRACT_TOKEN,
  START_TOKEN,
  trainTokenizer,
} from '../../../src/engine/tokenizer/index';
import { chunks } from './helpers';

const train = (...parts: string[]) => trainTokenizer({ kind: 'char', corpus: chunks(...parts) });

describe('CharTokenizer', () => {
  it('has the sorted code points, then <|endoftext|>', async () => {
    const tok = await train('hello 😀', ' wörld\n');
    const chars = [...'\n dehlorwö😀'];
    expect(tok.kind).toBe('char');
    expect(tok.vocabSize).toBe(chars.length + 1);
    chars.forEach((c, i) => expect(tok.idToToken(i)).toBe(c));
    expect(tok.eosId).toBe(chars.length);
    expect(tok.specialTokens.get(END_OF_TEXT)).toBe(chars.length);
    expect(tok.encode('😀')).toEqual([chars.length - 1]); // one code point, one token
    expect(tok.decode([tok.eosId!])).toBe(END_OF_TEXT);
  });

  it('handles a surrogate pair split across chunks', async () => {
    const emoji = '😀';
    const tok = await train('a' + emoji[0], emoji[1] + 'b');
    expect(tok.vocabSize).toBe(4);
    expect(tok.decode(tok.encode('a' + emoji + 'b'))).toBe('a' + emoji + 'b');
  });

  it('names an unknown character', async () => {
    const tok = await train('abc');
    expect(() => tok.encode('abé')).toThrow(/'é' \(U\+00E9\) at index 2/);
    expect(() => tok.encode('a\u0007')).toThrow(/U\+0007/);
    expect(() => tok.encode('🚀')).toThrow(/U\+1F680/);
    expect(() => tok.decode([99])).toThrow(/out of range/);
  });

  it('rejects an empty corpus', async () => {
    await expect(train()).rejects.toThrow(/empty/);
  });

  it('appends special tokens idempotently', async () => {
    const tok = await train('abc');
    const ids = tok.addSpecialTokens([START_TOKEN, DELIMITER_TOKEN, EXTRACT_TOKEN]);
    expect(ids).toEqual([4, 5, 6]);
    expect(tok.addSpecialTokens([EXTRACT_TOKEN, START_TOKEN, END_OF_TEXT])).toEqual([6, 4, 3]);
    expect(tok.vocabSize).toBe(7);
    expect(tok.decode([4, 0, 5, 1, 6])).toBe('<|start|>a<|delim|>b<|extract|>');
    expect(() => tok.addSpecialTokens(['a'])).toThrow(/already a character/);
    const stream = tok.streamDecoder();
    expect([4, 0].map((id) => stream.push(id)).join('') + stream.flush()).toBe('<|start|>a');
  });

  it('round-trips any string it was trained on', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string({ unit: 'grapheme', minLength: 1 }),
          fc.string({ unit: 'binary', minLength: 1 }),
        ),
        async (s) => {
          const tok = await train(s);
          const ids = tok.encode(s);
          expect(ids).toHaveLength([...s].length);
          expect(tok.decode(ids)).toBe(s);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('keeps lone surrogates as characters', () => {
    const tok = CharTokenizer.fromCodePoints([0xd800, 0x61]);
    expect(tok.decode(tok.encode('a\ud800a'))).toBe('a\ud800a');
  });
});
