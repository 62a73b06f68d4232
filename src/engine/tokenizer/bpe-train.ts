/**
 * Learning BPE merges from a corpus (the algorithm of HF tokenizers' BpeTrainer):
 *   1. count pre-tokenized words over the streamed corpus;
 *   2. each distinct word becomes an array of symbol ids (its UTF-8 bytes) with a count;
 *   3. count adjacent pairs (weighted by word count) and index pair → words containing it;
 *   4. repeatedly take the most frequent pair from a max-heap, merge it in the words that have
 *      it, and update the pair counts incrementally around each merged position.
 * Ties go to the smallest pair key, i.e. the smallest (left id, right id), so training is
 * deterministic. Byte b has id b; merged tokens follow in order; <|endoftext|> comes last.
 */
import { BpeTokenizer } from './bpe';
import { BYTE_TO_UNICODE } from './bytes';
import { corpusFraction, formatCount, Progress, type TrainOptions } from './progress';
import { WordCounter } from './pretokenize';
import { END_OF_TEXT } from './types';

export async function trainBpe(
  corpus: AsyncIterable<string>,
  vocabSize: number,
  opts: TrainOptions = {},
): Promise<BpeTokenizer> {
  const progress = new Progress(opts);
  const counter = new WordCounter();
  let chars = 0;
  for await (const chunk of corpus) {
    counter.add(chunk);
    chars += chunk.length;
    progress.report('count', corpusFraction(corpus), `Counted ${formatCount(chars)} characters`);
    await progress.tick();
  }
  const words = counter.finish();
  if (words.size === 0) throw new Error('The corpus is empty: there is no text to train on');
  progress.report('count', 1, `Counted ${formatCount(words.size)} distinct words`, true);

  const { tokens, merges } = await learnMerges(words, vocabSize - 1, progress);
  const eos = new Map([[END_OF_TEXT, tokens.length]]);
  return new BpeTokenizer([...tokens, END_OF_TEXT], merges, eos);
}

/** Max-heap of (count, pair key): larger count first, then smaller key. */
class PairHeap {
  private readonly counts: number[] = [];
  private readonly keys: number[] = [];

  get size(): number {
    return this.keys.length;
  }

  private above(c1: number, k1: number, c2: number, k2: number): boolean {
    return c1 > c2 || (c1 === c2 && k1 < k2);
  }

  push(count: number, key: number): void {
    const { counts, keys } = this;
    let i = keys.length;
    counts.push(count);
    keys.push(key);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(count, key, counts[p]!, keys[p]!)) break;
      counts[i] = counts[p]!;
      keys[i] = keys[p]!;
      i = p;
    }
    counts[i] = count;
    keys[i] = key;
  }

  /** Removes the top entry and returns it as [count, key]. */
  pop(): [number, number] {
    const { counts, keys } = this;
    const top: [number, number] = [counts[0]!, keys[0]!];
    const c = counts.pop()!;
    const k = keys.pop()!;
    const n = keys.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        let ch = 2 * i + 1;
        if (ch >= n) break;
        if (ch + 1 < n && this.above(counts[ch + 1]!, keys[ch + 1]!, counts[ch]!, keys[ch]!)) ch++;
        if (!this.above(counts[ch]!, keys[ch]!, c, k)) break;
        counts[i] = counts[ch]!;
        keys[i] = keys[ch]!;
        i = ch;
      }
      counts[i] = c;
      keys[i] = k;
    }
    return top;
  }
}

/**
 * Learns merges until there are `numTokens` tokens (256 bytes + merged tokens), or no pair is
 * left to merge (a small corpus), in which case there are fewer.
 */
export async function learnMerges(
  wordCounts: ReadonlyMap<string, number>,
  numTokens: number,
  progress: Progress = new Progress({}),
): Promise<{ tokens: string[]; merges: [string, string][] }> {
  const tokens = [...BYTE_TO_UNICODE];
  const ids = new Map(tokens.map((t, id) => [t, id]));
  const merges: [string, string][] = [];
  if (numTokens <= tokens.length) return { tokens, merges };
  const K = numTokens; // pair key = left * K + right; every id is below numTokens

  // Words as symbol arrays packed into one buffer. One-byte words can never merge: skip them.
  const utf8 = new TextEncoder();
  const encoded: Uint8Array[] = [];
  const counts: number[] = [];
  let total = 0;
  for (const [word, count] of wordCounts) {
    const bytes = utf8.encode(word);
    if (bytes.length < 2) continue;
    encoded.push(bytes);
    counts.push(count);
    total += bytes.length;
  }
  const W = encoded.length;
  const sym = new Int32Array(total);
  const start = new Int32Array(W);
  const len = new Int32Array(W);
  const freq = Float64Array.from(counts);
  for (let w = 0, at = 0; w < W; w++) {
    const bytes = encoded[w]!;
    start[w] = at;
    len[w] = bytes.length;
    sym.set(bytes, at);
    at += bytes.length;
  }
  encoded.length = 0;

  const pairCount = new Map<number, number>();
  const where = new Map<number, number[]>(); // pair → words that have (or had) it
  const addWhere = (key: number, w: number): void => {
    const list = where.get(key);
    if (list === undefined) where.set(key, [w]);
    else if (list[list.length - 1] !== w) list.push(w);
  };
  for (let w = 0; w < W; w++) {
    const f = freq[w]!;
    for (let i = start[w]!, end = i + len[w]! - 1; i < end; i++) {
      const key = sym[i]! * K + sym[i + 1]!;
      pairCount.set(key, (pairCount.get(key) ?? 0) + f);
      addWhere(key, w);
    }
  }
  const heap = new PairHeap();
  for (const [key, count] of pairCount) heap.push(count, key);

  const seen = new Int32Array(W).fill(-1); // last merge step that visited each word
  const touched = new Set<number>(); // pairs whose count grew in this step
  const firstMerge = tokens.length;
  while (tokens.length < numTokens && heap.size > 0) {
    const [count, key] = heap.pop();
    const actual = pairCount.get(key);
    if (actual !== count) {
      // Stale entry: counts only shrink between pushes, so re-queue the current count.
      if (actual !== undefined && actual < count) heap.push(actual, key);
      continue;
    }
    const a = Math.floor(key / K);
    const b = key - a * K;
    const merged = tokens[a]! + tokens[b]!;
    // The same string can come from two different merges (x+yz and xy+z): reuse its id.
    let c = ids.get(merged);
    if (c === undefined) {
      c = tokens.length;
      tokens.push(merged);
      ids.set(merged, c);
    }
    merges.push([tokens[a]!, tokens[b]!]);
    const step = merges.length;

    const dec = (k: number, f: number): void => {
      if (k === key) return; // removed as a whole below
      const v = pairCount.get(k)! - f;
      if (v > 0) pairCount.set(k, v);
      else pairCount.delete(k);
    };
    const inc = (k: number, f: number, w: number): void => {
      pairCount.set(k, (pairCount.get(k) ?? 0) + f);
      addWhere(k, w);
      touched.add(k);
    };
    touched.clear();
    for (const w of where.get(key)!) {
      if (seen[w] === step) continue;
      seen[w] = step;
      const s = start[w]!;
      const end = s + len[w]!;
      const f = freq[w]!;
      let out = s; // merged in place: out <= i
      for (let i = s; i < end;) {
        if (sym[i] === a && i + 1 < end && sym[i + 1] === b) {
          if (out > s) {
            const p = sym[out - 1]!;
            dec(p * K + a, f);
            inc(p * K + c, f, w);
          }
          if (i + 2 < end) {
            const nx = sym[i + 2]!;
            dec(b * K + nx, f);
            inc(c * K + nx, f, w);
          }
          sym[out++] = c;
          i += 2;
        } else {
          sym[out++] = sym[i++]!;
        }
      }
      len[w] = out - s;
    }
    pairCount.delete(key);
    where.delete(key);
    for (const k of touched) {
      const v = pairCount.get(k);
      if (v !== undefined) heap.push(v, k);
    }

    if ((step & 63) === 0) {
      const done = tokens.length - firstMerge;
      const todo = numTokens - firstMerge;
      progress.report('merge', done / todo, `Learned ${done} of ${todo} merges`);
      await progress.tick();
    }
  }
  const learned = tokens.length - firstMerge;
  const message =
    tokens.length < numTokens
      ? `Learned ${learned} merges; the corpus has no more pairs to merge`
      : `Learned ${learned} merges`;
  progress.report('merge', 1, message, true);
  return { tokens, merges };
}
