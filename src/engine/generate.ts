/**
 * Autoregressive sampling with a KV cache: greedy, temperature, top-k, top-p, repetition penalty,
 * stop sequences and a seed. Tokens stream as they are made.
 *
 * A context longer than the model's block: the model always sees a window of the latest tokens.
 * When the window would exceed blockSize it restarts at the last ⌊blockSize/2⌋ tokens (the cache is
 * rebuilt from them), so the cached and the uncached paths see exactly the same tokens.
 *
 * On the wasm backend the cached path runs in model/wasmDecoder.ts's WasmDecoder (its own cache
 * on the wasm heap, a few kernels per token); elsewhere through GPT.forwardCached's tf ops.
 */
import * as tf from './tf';
import { disposeCache, type KVCache } from './model/attention';
import { refuseMaskedLm } from './model/config';
import type { GPT } from './model/gpt';
import { WasmDecoder } from './model/wasmDecoder';
import type { Tokenizer } from './tokenizer/types';
import { Rng } from './util/rng';
import { SAMPLING_DEFAULTS } from '../common/defaults';

export interface SamplingOptions {
  maxNewTokens: number;
  /** 0 means greedy. */
  temperature: number;
  /** 0 disables. */
  topK: number;
  /** 1 disables. */
  topP: number;
  /** 1 disables; > 1 discourages tokens already in the context (CTRL's penalty). */
  repetitionPenalty: number;
  stop: string[];
  seed: number;
  /** Compare against the uncached forward; on by default. */
  useCache: boolean;
  /** Also report the top-k alternatives of each step (for the console's token view). */
  topAlternatives: number;
}

export const DEFAULT_SAMPLING: SamplingOptions = {
  ...SAMPLING_DEFAULTS,
  stop: [],
  useCache: true,
  topAlternatives: 0,
};

export interface GeneratedToken {
  id: number;
  /** Text completed by this token (may be '' inside a multi-byte character). */
  text: string;
  /** log P(token) under the model's (untempered) distribution. */
  logprob: number;
  alternatives?: Array<{ id: number; logprob: number }>;
}

export interface GenerationResult {
  ids: number[];
  text: string;
  stoppedBy: 'length' | 'stop' | 'eos' | 'cancelled';
}

function logSoftmax(logits: Float32Array): Float32Array {
  let max = -Infinity;
  for (const v of logits) if (v > max) max = v;
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return logits.map((v) => v - lse);
}

/** How often (ms) generation with a stop signal yields to the event loop. */
const YIELD_EVERY_MS = 15;

/** Picks the next token from one row of logits. */
export function sampleNext(
  logits: Float32Array,
  context: readonly number[],
  o: Pick<SamplingOptions, 'temperature' | 'topK' | 'topP' | 'repetitionPenalty'>,
  rng: Rng,
): number {
  const l = Float32Array.from(logits);
  if (o.repetitionPenalty !== 1) {
    for (const id of new Set(context)) {
      const v = l[id]!;
      l[id] = v > 0 ? v / o.repetitionPenalty : v * o.repetitionPenalty;
    }
  }
  if (o.temperature <= 0) {
    let best = 0;
    for (let i = 1; i < l.length; i++) if (l[i]! > l[best]!) best = i;
    return best;
  }
  if (o.topK <= 0 && o.topP >= 1) {
    // plain temperature sampling: no ranking needed (a sort of GPT-2's 50k logits per token is not free)
    const lp = logSoftmax(l.map((v) => v / o.temperature));
    let r = rng.next();
    for (let i = 0; i < lp.length; i++) {
      r -= Math.exp(lp[i]!);
      if (r <= 0) return i;
    }
    return lp.length - 1;
  }
  const order = Array.from(l.keys()).sort((a, b) => l[b]! - l[a]! || a - b);
  let keep = order.length;
  if (o.topK > 0) keep = Math.min(keep, o.topK);
  const lp = logSoftmax(l.map((v) => v / o.temperature));
  if (o.topP < 1) {
    let cum = 0;
    for (let i = 0; i < keep; i++) {
      cum += Math.exp(lp[order[i]!]!);
      if (cum >= o.topP) {
        keep = i + 1;
        break;
      }
    }
  }
  let total = 0;
  for (let i = 0; i < keep; i++) total += Math.exp(lp[order[i]!]!);
  let r = rng.next() * total;
  for (let i = 0; i < keep; i++) {
    r -= Math.exp(lp[order[i]!]!);
    if (r <= 0) return order[i]!;
  }
  return order[keep - 1]!;
}

/** Window start for a sequence of `len` tokens, given the previous start (see the file comment). */
export function windowStart(prev: number, len: number, blockSize: number): number {
  return len - prev <= blockSize ? prev : len - Math.floor(blockSize / 2);
}

/** Length of the longest end of `text` that is a proper prefix of one of the stop strings. */
function stopPrefixLength(text: string, stops: readonly string[]): number {
  let best = 0;
  for (const s of stops) {
    for (let k = Math.min(s.length - 1, text.length); k > best; k--) {
      if (text.endsWith(s.slice(0, k))) {
        best = k;
        break;
      }
    }
  }
  return best;
}

/**
 * Streams tokens after `promptIds`. The generator's return value is the whole result; the streamed
 * tokens' texts add up to its text, except that a run cancelled or ended by end-of-text while its
 * text ends in the start of a stop string has that (held-back) tail only in the result.
 */
export async function* generateTokens(
  model: GPT,
  tokenizer: Tokenizer,
  promptIds: readonly number[],
  options: Partial<SamplingOptions> = {},
  signal?: AbortSignal,
): AsyncGenerator<GeneratedToken, GenerationResult> {
  refuseMaskedLm(model.config, 'This model');
  const o = { ...DEFAULT_SAMPLING, ...options };
  const block = model.config.blockSize;
  const ids = [...promptIds];
  if (ids.length === 0) {
    if (tokenizer.eosId === undefined) throw new Error('empty prompt and no end-of-text token');
    ids.push(tokenizer.eosId);
  }
  const promptLen = ids.length;
  const rng = new Rng(o.seed);
  const decoder = tokenizer.streamDecoder();
  let text = '';
  /** Characters of `text` already streamed, and whether the decoder has been flushed. */
  let streamed = 0;
  let flushed = false;
  let start = ids.length > block ? ids.length - block : 0;
  let cache: KVCache | null = null;
  // wasm: the decoder's own heap-resident cache and kernels (model/wasmDecoder.ts); else tf ops
  const fast = o.useCache ? WasmDecoder.create(model) : null;
  /** Logits of the next token through GPT.forwardCached, for the window starting at `next`. */
  const forwardStep = async (next: number): Promise<Float32Array> => {
    let logits: tf.Tensor2D;
    if (!o.useCache || !cache || next !== start) {
      start = next;
      disposeCache(cache);
      cache = null;
      const input = tf.tensor2d(ids.slice(start), [1, ids.length - start], 'int32');
      const out = model.forwardCached(input, null, true);
      input.dispose();
      logits = out.logits;
      if (o.useCache) cache = out.cache;
      else disposeCache(out.cache);
    } else {
      const input = tf.tensor2d([ids[ids.length - 1]!], [1, 1], 'int32');
      const out = model.forwardCached(input, cache, true);
      input.dispose();
      disposeCache(cache);
      cache = out.cache;
      logits = out.logits;
    }
    const row = (await logits.data()) as Float32Array;
    logits.dispose();
    return row;
  };
  let stoppedBy: GenerationResult['stoppedBy'] = 'length';
  let yielded = Date.now();
  try {
    for (let n = 0; n < o.maxNewTokens; n++) {
      // The wasm decoder is synchronous: let the event loop run now and then, so a stop request
      // (an IPC message, Ctrl-C) is seen while tokens are being made.
      if (signal && Date.now() - yielded >= YIELD_EVERY_MS) {
        await new Promise((r) => setTimeout(r, 0));
        yielded = Date.now();
      }
      if (signal?.aborted) {
        stoppedBy = 'cancelled';
        break;
      }
      const next = windowStart(start, ids.length, block);
      let row: Float32Array;
      if (fast) {
        if (fast.length === 0 || next !== start) {
          start = next;
          row = fast.prefill(ids.slice(start));
        } else {
          row = fast.step(ids[ids.length - 1]!);
        }
      } else {
        row = await forwardStep(next);
      }
      // a model whose embedding has more rows than its tokenizer has tokens (padded to a round
      // size, as some Hub checkpoints are) samples among the tokens that exist
      if (row.length > tokenizer.vocabSize) row = row.subarray(0, tokenizer.vocabSize);
      const id = sampleNext(row, ids, o, rng);
      const lp = logSoftmax(row);
      const token: GeneratedToken = { id, text: '', logprob: lp[id]! };
      if (o.topAlternatives > 0) {
        token.alternatives = Array.from(lp.keys())
          .sort((a, b) => lp[b]! - lp[a]!)
          .slice(0, o.topAlternatives)
          .map((i) => ({ id: i, logprob: lp[i]! }));
      }
      ids.push(id);
      if (id === tokenizer.eosId) {
        stoppedBy = 'eos';
        break;
      }
      text += decoder.push(id);
      let cut = -1;
      for (const s of o.stop) {
        const at = s.length > 0 ? text.indexOf(s) : -1;
        if (at >= 0 && (cut < 0 || at < cut)) cut = at;
      }
      if (cut >= 0) {
        text = text.slice(0, cut);
        token.text = text.slice(streamed);
        if (token.text) yield token;
        stoppedBy = 'stop';
        break;
      }
      if (n === o.maxNewTokens - 1) {
        text += decoder.flush();
        flushed = true;
      }
      // Hold back a tail that may be the start of a stop string, so the streamed text never
      // includes part of one: the tokens' texts add up to the result text.
      const safe = flushed ? text.length : text.length - stopPrefixLength(text, o.stop);
      token.text = text.slice(streamed, Math.max(streamed, safe));
      streamed = Math.max(streamed, safe);
      yield token;
    }
  } finally {
    disposeCache(cache);
    fast?.dispose();
  }
  if (!flushed && (stoppedBy === 'length' || stoppedBy === 'cancelled')) {
    const rest = decoder.flush();
    text += rest;
  }
  return { ids: ids.slice(promptLen), text, stoppedBy };
}

/** Runs generateTokens to the end, calling onToken for each streamed token. */
export async function generate(
  model: GPT,
  tokenizer: Tokenizer,
  prompt: string,
  options: Partial<SamplingOptions> = {},
  onToken?: (t: GeneratedToken) => void,
  signal?: AbortSignal,
): Promise<GenerationResult> {
  const it = generateTokens(model, tokenizer, tokenizer.encode(prompt), options, signal);
  for (;;) {
    const r = await it.next();
    if (r.done) return r.value;
    onToken?.(r.value);
  }
}
