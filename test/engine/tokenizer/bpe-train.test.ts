import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { learnMerges } from '../../../src/engine/tokenizer/bpe-train';
import { BYTE_TO_UNICODE } from '../../../src/engine/tokenizer/bytes';
import {
  DELIMITER_TOKEN,
  END_OF_TEXT,
  EXTRACT_TOKEN,
  START_TOKEN,
  trainTokenizer,
  type BpeTokenizer,
  type TrainProgress,
} from '../../../src/engine/tokenizer/index';
import { pretokenize, WordCounter } from '../../../src/engine/tokenizer/pretokenize';
import { AUSTEN, chunks } from './helpers';

const austen = readFileSync(AUSTEN, 'utf8');
const sample = austen.slice(0, 100_000);

const trainBpe = (vocabSize: number, ...parts: string[]) =>
  trainTokenizer({ kind: 'bpe', vocabSize, corpus: chunks(...parts) }) as Promise<BpeTokenizer>;

function countWords(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const w of pretokenize(text)) counts.set(w, (counts.get(w) ?? 0) + 1);
  return counts;
}

/** Textbook BPE: recount every pair after every merge. Same tie rule: smallest (left, right). */
function naiveMerges(counts: Map<string, number>, numTokens: number) {
  const tokens = [...BYTE_TO_UNICODE];
  const ids = new Map(tokens.map((t, i) => [t, i]));
  const utf8 = new TextEncoder();
  const words = [...counts].map(([w, c]) => ({ syms: [...utf8.encode(w)], c }));
  const merges: [string, string][] = [];
  while (tokens.length < numTokens) {
    const pairs = new Map<string, number>();
    for (const { syms, c } of words) {
      for (let i = 0; i + 1 < syms.length; i++) {
        const k = `${syms[i]},${syms[i + 1]}`;
        pairs.set(k, (pairs.get(k) ?? 0) + c);
      }
    }
    let best: [number, number] | undefined;
    let bestCount = 0;
    for (const [k, c] of pairs) {
      const [a, b] = k.split(',').map(Number) as [number, number];
      if (
        c > bestCount ||
        (c === bestCount && (a < best![0] || (a === best![0] && b < best![1])))
      ) {
        best = [a, b];
        bestCount = c;
      }
    }
    if (best === undefined) break;
    const [a, b] = best;
    const str = tokens[a]! + tokens[b]!;
    let id = ids.get(str);
    if (id === undefined) {
      id = tokens.length;
      tokens.push(str);
      ids.set(str, id);
    }
    merges.push([tokens[a]!, tokens[b]!]);
    for (const w of words) {
      const out: number[] = [];
      for (let i = 0; i < w.syms.length; i++) {
        if (w.syms[i] === a && w.syms[i + 1] === b) {
          out.push(id);
          i++;
        } else out.push(w.syms[i]!);
      }
      w.syms = out;
    }
  }
  return { tokens, merges };
}

describe('BPE training', () => {
  it('learns the same merges as textbook BPE', async () => {
    const counts = countWords(sample.slice(0, 20_000));
    expect(await learnMerges(counts, 600)).toEqual(naiveMerges(counts, 600));
    await fc.assert(
      fc.asyncProperty(
        fc.string({
          unit: fc.constantFrom('a', 'b', 'c', ' ', 'é', '\n'),
          minLength: 1,
          maxLength: 80,
        }),
        fc.integer({ min: 257, max: 300 }),
        async (text, n) => {
          const counts = countWords(text);
          expect(await learnMerges(counts, n)).toEqual(naiveMerges(counts, n));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('counts words the same however the text is chunked', () => {
    fc.assert(
      fc.property(
        fc.string({
          unit: fc.constantFrom("'", 'l', 'm', 's', ' ', '\n', 'a', '1', '!', '中', '😀'),
          maxLength: 60,
        }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (text, cuts) => {
          const counter = new WordCounter();
          const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
          let at = 0;
          for (const p of [...points, text.length]) {
            counter.add(text.slice(at, p));
            at = p;
          }
          expect(counter.finish()).toEqual(countWords(text));
          expect(pretokenize(text).join('')).toBe(text);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('is deterministic, whatever the chunking', async () => {
    const a = await trainBpe(1000, sample);
    const b = await trainBpe(
      1000,
      sample.slice(0, 33_333),
      sample.slice(33_333, 70_001),
      sample.slice(70_001),
    );
    expect(b.mergeList).toEqual(a.mergeList);
    expect(b.encode(sample)).toEqual(a.encode(sample));
  });

  it('gives exactly the requested vocab size, end-of-text last', async () => {
    const progress: TrainProgress[] = [];
    const tok = (await trainTokenizer({
      kind: 'bpe',
      vocabSize: 8000,
      corpus: chunks(austen),
      onProgress: (p) => progress.push(p),
    })) as BpeTokenizer;
    expect(tok.vocabSize).toBe(8000);
    expect(tok.eosId).toBe(7999);
    expect([...tok.specialTokens]).toEqual([[END_OF_TEXT, 7999]]);
    expect(progress.some((p) => p.phase === 'count')).toBe(true);
    expect(progress.at(-1)).toMatchObject({ phase: 'merge', fraction: 1 });
    const ids = tok.encode(austen);
    expect(ids.length).toBeLessThan(austen.length / 3.5);
    expect(tok.decode(ids)).toBe(austen);
  });

  it('stops early when the corpus has no more pairs', async () => {
    const tok = await trainBpe(1000, 'ab ab ab');
    expect(tok.vocabSize).toBeLessThan(1000);
    expect(tok.encode('ab ab')).toHaveLength(2);
  });

  it('appends special tokens idempotently', async () => {
    const tok = await trainBpe(300, sample);
    const ids = tok.addSpecialTokens([START_TOKEN, DELIMITER_TOKEN, EXTRACT_TOKEN]);
    expect(ids).toEqual([300, 301, 302]);
    expect(tok.addSpecialTokens([START_TOKEN, DELIMITER_TOKEN, EXTRACT_TOKEN])).toEqual(ids);
    expect(tok.addSpecialTokens([END_OF_TEXT])).toEqual([299]);
    expect(tok.vocabSize).toBe(303);
    expect(tok.decode([300, ...tok.encode('hi'), 301])).toBe('<|start|>hi<|delim|>');
    expect(tok.encode('<|start|>')).not.toContain(300); // special text inside text is plain text
    expect(() => tok.addSpecialTokens(['a'])).toThrow(/already a BPE token/);
  });

  it('round-trips any Unicode string with a small trained BPE', async () => {
    const tok = await trainBpe(600, sample, '你好世界，这是中文。😀🚀 ñ é ü');
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary' })), (s) => {
        expect(tok.decode(tok.encode(s))).toBe(s);
      }),
      { numRuns: 500 },
    );
    const text = '中文和emoji 🌍🚀 混合';
    const stream = tok.streamDecoder();
    const pieces = tok.encode(text).map((id) => stream.push(id));
    expect(pieces.join('') + stream.flush()).toBe(text);
    for (const p of pieces) expect(p).not.toContain('\ufffd');
  });

  it('checks vocabSize', async () => {
    await expect(trainTokenizer({ kind: 'bpe', corpus: chunks('abc') })).rejects.toThrow(
      /vocabSize/,
    );
    await expect(
      trainTokenizer({ kind: 'bpe', vocabSize: 257, corpus: chunks('abc') }),
    ).rejects.toThrow(/at least 258/);
    await expect(trainBpe(500)).rejects.toThrow(/empty/);
  });

  it('can be aborted, before or while merging', async () => {
    const before = new AbortController();
    before.abort();
    await expect(
      trainTokenizer({
        kind: 'bpe',
        vocabSize: 5000,
        corpus: chunks(sample),
        signal: before.signal,
      }),
    ).rejects.toThrow(/abort/i);

    const during = new AbortController();
    const phases: string[] = [];
    const training = trainTokenizer({
      kind: 'bpe',
      vocabSize: 30_000,
      corpus: chunks(austen),
      signal: during.signal,
      onProgress: (p) => {
        phases.push(p.phase);
        if (p.phase === 'merge') during.abort();
      },
    });
    await expect(training).rejects.toThrow(/abort/i);
    expect(phases).toContain('merge');
  });
});
