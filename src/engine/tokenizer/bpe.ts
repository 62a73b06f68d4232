/**
 * Byte-level BPE, as in GPT-2: text → pre-tokenized words (pretokenize.ts) → UTF-8 bytes →
 * one token per byte → repeatedly merge the adjacent pair with the lowest merge rank.
 *
 * Text is encoded with TextEncoder, so any string round-trips exactly except lone UTF-16
 * surrogates, which are not valid UTF-8: they become U+FFFD (bytes EF BF BD).
 *
 * Token ids are arbitrary (GPT-2's first 256 are not in byte order); merges are looked up by a
 * numeric pair key `left * pairBase + right`. Special tokens are never produced by encode();
 * they decode to their own text.
 */
import { unicodeToBytes } from './bytes';
import { saveTokenizerFiles, type SaveOptions, type TokenizerData } from './hf';
import { GPT2_SPLIT } from './pretokenize';
import { MinHeap } from './heap';
import type { StreamDecoder, Tokenizer } from './types';
import { SpecialTokens } from './vocab';

const utf8 = new TextEncoder();
/** Words longer than this (in bytes) are merged with a heap instead of GPT-2's quadratic loop. */
const LONG_WORD = 48;
const CACHE_LIMIT = 100_000;
const CACHED_WORD_MAX = 256;

export class BpeTokenizer extends SpecialTokens implements Tokenizer {
  readonly kind = 'bpe' as const;
  private readonly tokenBytes: Uint8Array[];
  private readonly vocab = new Map<string, number>();
  private readonly merges: [string, string][];
  private readonly byteIds = new Int32Array(256).fill(-1);
  private readonly pairBase: number;
  private readonly ranks = new Map<number, number>();
  private readonly mergeLeft: Int32Array;
  private readonly mergeRight: Int32Array;
  private readonly mergeResult: Int32Array;
  private cache = new Map<string, readonly number[]>();

  /**
   * `tokens`: id → byte-level token string (or special token); `merges` in rank order;
   * `specials`: special token → id. End-of-text is appended when missing.
   */
  constructor(
    tokens: readonly string[],
    merges: readonly (readonly [string, string])[],
    specials: ReadonlyMap<string, number>,
  ) {
    super(tokens, specials);
    this.tokenBytes = new Array<Uint8Array>(tokens.length);
    for (const [tok, id] of this.specials) this.tokenBytes[id] = utf8.encode(tok);
    this.tokens.forEach((tok, id) => {
      if (this.specials.get(tok) === id) return;
      const bytes = unicodeToBytes(tok);
      if (bytes === undefined || bytes.length === 0) {
        throw new Error(
          `token ${JSON.stringify(tok)} (id ${id}) is not a byte-level token ` +
            "(it has characters outside GPT-2's byte alphabet)",
        );
      }
      if (this.vocab.has(tok)) throw new Error(`token ${JSON.stringify(tok)} appears twice`);
      this.vocab.set(tok, id);
      this.tokenBytes[id] = bytes;
      if (bytes.length === 1) this.byteIds[bytes[0]!] = id;
    });
    const missing = this.byteIds.indexOf(-1);
    if (missing >= 0) {
      throw new Error(`the vocabulary lacks the token for byte 0x${missing.toString(16)}`);
    }

    this.merges = [];
    this.pairBase = this.tokens.length;
    const n = merges.length;
    this.mergeLeft = new Int32Array(n);
    this.mergeRight = new Int32Array(n);
    this.mergeResult = new Int32Array(n);
    merges.forEach(([a, b], i) => {
      const left = this.vocab.get(a);
      const right = this.vocab.get(b);
      const result = this.vocab.get(a + b);
      if (left === undefined || right === undefined || result === undefined) {
        const what = left === undefined ? a : right === undefined ? b : a + b;
        throw new Error(
          `merge ${i + 1} (${a} ${b}): token ${JSON.stringify(what)} is not in the vocabulary`,
        );
      }
      const key = left * this.pairBase + right;
      if (this.ranks.has(key)) return; // a repeated merge never applies; keep the first
      const rank = this.merges.length;
      this.ranks.set(key, rank);
      this.mergeLeft[rank] = left;
      this.mergeRight[rank] = right;
      this.mergeResult[rank] = result;
      this.merges.push([a, b]);
    });
    this.ensureEndOfText();
  }

  protected clash(tok: string): string | null {
    return this.vocab.has(tok) ? 'a BPE token' : null;
  }

  protected override onSpecialAdded(tok: string): void {
    this.tokenBytes.push(utf8.encode(tok));
  }

  /** Merges in rank order, as byte-level strings. */
  get mergeList(): readonly (readonly [string, string])[] {
    return this.merges;
  }

  encode(text: string): number[] {
    const out: number[] = [];
    const words = text.match(GPT2_SPLIT);
    if (words === null) return out;
    const cache = this.cache;
    for (const word of words) {
      let ids = cache.get(word);
      if (ids === undefined) {
        ids = this.encodeWord(word);
        if (word.length <= CACHED_WORD_MAX) {
          if (cache.size >= CACHE_LIMIT) cache.clear();
          cache.set(word, ids);
        }
      }
      for (let i = 0; i < ids.length; i++) out.push(ids[i]!);
    }
    return out;
  }

  /** BPE on one pre-tokenized word. */
  encodeWord(word: string): number[] {
    const syms = this.byteSymbols(word);
    return syms.length > LONG_WORD ? this.mergeWithHeap(syms) : this.mergeQuadratic(syms);
  }

  /** One token per UTF-8 byte: where BPE starts. */
  byteSymbols(text: string): number[] {
    const bytes = utf8.encode(text);
    const syms = new Array<number>(bytes.length);
    for (let i = 0; i < bytes.length; i++) syms[i] = this.byteIds[bytes[i]!]!;
    return syms;
  }

  /** GPT-2's loop: find the lowest-ranked pair, merge all its occurrences left to right, repeat. */
  mergeQuadratic(syms: number[]): number[] {
    const { ranks, pairBase } = this;
    while (syms.length > 1) {
      let best = -1;
      for (let i = 0; i + 1 < syms.length; i++) {
        const r = ranks.get(syms[i]! * pairBase + syms[i + 1]!);
        if (r !== undefined && (best < 0 || r < best)) best = r;
      }
      if (best < 0) break;
      const a = this.mergeLeft[best]!;
      const b = this.mergeRight[best]!;
      const c = this.mergeResult[best]!;
      const next: number[] = [];
      for (let i = 0; i < syms.length; i++) {
        if (syms[i] === a && i + 1 < syms.length && syms[i + 1] === b) {
          next.push(c);
          i++;
        } else {
          next.push(syms[i]!);
        }
      }
      syms = next;
    }
    return syms;
  }

  /**
   * Same result in O(n log n): a linked list of symbols and a min-heap of (rank, position).
   * Equal ranks pop left to right, which is GPT-2's "merge all occurrences" order.
   */
  mergeWithHeap(syms: number[]): number[] {
    const n = syms.length;
    if (n < 2) return syms;
    const { ranks, pairBase } = this;
    const sym = Int32Array.from(syms);
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap = new MinHeap();
    const rankAt = (i: number): number | undefined => {
      const j = next[i]!;
      return j < 0 ? undefined : ranks.get(sym[i]! * pairBase + sym[j]!);
    };
    const pushPair = (i: number): void => {
      const r = rankAt(i);
      if (r !== undefined) heap.push(r * n + i);
    };
    for (let i = 0; i + 1 < n; i++) pushPair(i);
    while (heap.size > 0) {
      const top = heap.pop();
      const r = Math.floor(top / n);
      const i = top - r * n;
      // stale: i was merged into its left neighbour, or the pair at i changed
      if (sym[i]! < 0 || rankAt(i) !== r) continue;
      const j = next[i]!;
      sym[i] = this.mergeResult[r]!;
      sym[j] = -1;
      next[i] = next[j]!;
      if (next[j]! >= 0) prev[next[j]!] = i;
      if (prev[i]! >= 0) pushPair(prev[i]!);
      pushPair(i);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]!) out.push(sym[i]!);
    return out;
  }

  decode(ids: readonly number[]): string {
    const parts = ids.map((id) => this.bytesOf(id));
    let len = 0;
    for (const p of parts) len += p.length;
    const all = new Uint8Array(len);
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.length;
    }
    return new TextDecoder().decode(all);
  }

  streamDecoder(): StreamDecoder {
    const decoder = new TextDecoder();
    return {
      push: (id) => decoder.decode(this.bytesOf(id), { stream: true }),
      flush: () => decoder.decode(),
    };
  }

  toData(): TokenizerData {
    return {
      kind: 'bpe',
      tokens: [...this.tokens],
      merges: this.merges.map(([a, b]) => [a, b]),
      specials: new Map(this.specials),
    };
  }

  save(dir: string, opts?: SaveOptions): Promise<void> {
    return saveTokenizerFiles(dir, this.toData(), opts);
  }

  private bytesOf(id: number): Uint8Array {
    const b = this.tokenBytes[id];
    if (b === undefined) {
      throw new RangeError(`token id ${id} is out of range (vocab size ${this.tokens.length})`);
    }
    return b;
  }
}
