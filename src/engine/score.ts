/**
 * Likelihood scoring (GPT-2/3 style): the log-probability of each token given the ones before it,
 * or of a continuation given a prompt, for many texts in one batched forward.
 *
 * A sequence longer than the block is scored in windows that advance by ⌊blockSize/2⌋, so every
 * token after the first window is scored with at least half a block of context.
 */
import * as tf from './tf';
import { refuseMaskedLm } from './model/config';
import type { GPT } from './model/gpt';
import { WasmDecoder } from './model/wasmDecoder';
import type { Tokenizer } from './tokenizer/types';

export interface ScoreItem {
  /** Tokens that condition but are not scored. */
  context: number[];
  /** Tokens whose log-probabilities are returned. */
  target: number[];
}

export interface ScoreResult {
  tokens: number[];
  logprobs: number[];
  sum: number;
  mean: number;
}

export interface ScoreOptions {
  /** Checked between batched forwards: once aborted, scoring stops with its reason. */
  signal?: AbortSignal;
}

/**
 * Between two batched forwards: lets the event loop run (other requests, a job.cancel) and stops
 * once `signal` aborted. A long text is hundreds of forwards; without this the host answers nothing
 * until the last one.
 */
export async function betweenBatches(signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted();
  await new Promise<void>((resolve) => setImmediate(resolve));
  signal?.throwIfAborted();
}

/**
 * log P(row[t+1] | row[..t]) for each row: one batched forward over the rows padded to the same
 * length, or for a model whose weights are held as f16/q8 the decoder's kernels over each row
 * (its matmuls take up to 64 positions at once), so the stored matrices are never dequantised.
 */
async function rowLogprobs(model: GPT, rows: number[][]): Promise<number[][]> {
  if (model.store) {
    const decoder = WasmDecoder.create(model)!;
    try {
      return rows.map((r) => Array.from(decoder.logprobs(r)));
    } finally {
      decoder.dispose();
    }
  }
  const len = Math.max(...rows.map((r) => r.length));
  const ids = new Int32Array(rows.length * len);
  const next = new Int32Array(rows.length * len).fill(-1);
  rows.forEach((r, b) => {
    ids.set(r, b * len);
    for (let t = 0; t + 1 < r.length; t++) next[b * len + t] = r[t + 1]!;
  });
  const out = tf.tidy(() => {
    const x = tf.tensor2d(ids, [rows.length, len], 'int32');
    const logits = model.lmHead(model.hidden(x));
    const logp = tf.logSoftmax(logits);
    const y = tf.tensor1d(next, 'int32');
    return tf.sum(tf.mul(logp, tf.cast(tf.oneHot(y, model.config.vocabSize), 'float32')), -1);
  });
  const flat = (await out.data()) as Float32Array;
  out.dispose();
  return rows.map((r, b) => Array.from(flat.subarray(b * len, b * len + r.length - 1)));
}

/** Splits a long sequence into windows of ≤ blockSize tokens; `from` is where scoring starts. */
function windows(seq: number[], firstScored: number, block: number) {
  const out: Array<{ start: number; from: number }> = [];
  if (seq.length <= block) return [{ start: 0, from: firstScored }];
  const stride = Math.floor(block / 2);
  let scoredUpTo = firstScored; // tokens before this index already have a logprob
  let start = Math.max(0, firstScored - stride);
  for (;;) {
    const end = Math.min(seq.length, start + block);
    out.push({ start, from: scoredUpTo });
    if (end >= seq.length) break;
    scoredUpTo = end;
    start = end - stride;
  }
  return out;
}

/** Scores many items, batching the windows `batchSize` at a time. */
export async function scoreBatch(
  model: GPT,
  items: ScoreItem[],
  batchSize = 16,
  opts: ScoreOptions = {},
): Promise<ScoreResult[]> {
  refuseMaskedLm(model.config, 'This model');
  const block = model.config.blockSize;
  type Job = { item: number; start: number; from: number; row: number[] };
  const jobs: Job[] = [];
  items.forEach((it, i) => {
    if (it.context.length === 0) throw new Error('scoring needs at least one context token');
    const seq = [...it.context, ...it.target];
    for (const w of windows(seq, it.context.length, block)) {
      jobs.push({
        item: i,
        start: w.start,
        from: w.from,
        row: seq.slice(w.start, w.start + block),
      });
    }
  });
  const logprobs = items.map((it) => new Array<number>(it.target.length).fill(NaN));
  for (let j = 0; j < jobs.length; j += batchSize) {
    if (j > 0) await betweenBatches(opts.signal);
    else opts.signal?.throwIfAborted();
    const chunk = jobs.slice(j, j + batchSize);
    const lps = await rowLogprobs(
      model,
      chunk.map((c) => c.row),
    );
    chunk.forEach((c, k) => {
      const ctx = items[c.item]!.context.length;
      // lps[k][t] scores the token at absolute position c.start + t + 1
      lps[k]!.forEach((lp, t) => {
        const pos = c.start + t + 1;
        if (pos >= c.from && pos >= ctx) logprobs[c.item]![pos - ctx] = lp;
      });
    });
  }
  return items.map((it, i) => {
    const lp = logprobs[i]!;
    const sum = lp.reduce((a, b) => a + b, 0);
    return { tokens: it.target, logprobs: lp, sum, mean: lp.length ? sum / lp.length : 0 };
  });
}

/** log P of every token of `text`, each given the ones before it (after end-of-text). */
export async function scoreText(
  model: GPT,
  tokenizer: Tokenizer,
  text: string,
  opts: ScoreOptions = {},
) {
  const bos = tokenizer.eosId;
  if (bos === undefined) throw new Error('the tokenizer has no end-of-text token to start from');
  const [r] = await scoreBatch(
    model,
    [{ context: [bos], target: tokenizer.encode(text) }],
    undefined,
    opts,
  );
  return r!;
}

/** log P(continuation | prompt), token by token. */
export async function scoreContinuation(
  model: GPT,
  tokenizer: Tokenizer,
  prompt: string,
  continuation: string,
  opts: ScoreOptions = {},
) {
  const ctx = tokenizer.encode(prompt);
  const context = ctx.length ? ctx : [tokenizer.eosId ?? 0];
  const [r] = await scoreBatch(
    model,
    [{ context, target: tokenizer.encode(continuation) }],
    undefined,
    opts,
  );
  return r!;
}

/**
 * scoreBatch for short items (context + target within the block, as the console's candidate
 * answers and label words are): one forward per row, with the LM head and its softmax only at the
 * positions that predict a target token — V·|target| per row instead of V·T. Items longer than the
 * block go through scoreBatch's windows, and so does every item of a model held as f16/q8 (the
 * decoder's kernels). The same numbers as scoreBatch.
 */
export async function scoreTargets(
  model: GPT,
  items: ScoreItem[],
  batchSize = 16,
  opts: ScoreOptions = {},
): Promise<ScoreResult[]> {
  refuseMaskedLm(model.config, 'This model');
  if (model.store) return scoreBatch(model, items, batchSize, opts);
  const { blockSize: block, vocabSize: V } = model.config;
  const out = new Array<ScoreResult>(items.length);
  const long: number[] = [];
  const short: number[] = [];
  items.forEach((it, i) => {
    if (it.context.length === 0) throw new Error('scoring needs at least one context token');
    (it.context.length + it.target.length > block ? long : short).push(i);
  });
  if (long.length) {
    const r = await scoreBatch(
      model,
      long.map((i) => items[i]!),
      batchSize,
      opts,
    );
    long.forEach((i, j) => (out[i] = r[j]!));
  }
  for (let c = 0; c < short.length; c += batchSize) {
    if (c > 0 || long.length) await betweenBatches(opts.signal);
    else opts.signal?.throwIfAborted();
    const chunk = short.slice(c, c + batchSize).map((i) => items[i]!);
    const len = Math.max(...chunk.map((it) => it.context.length + it.target.length));
    const ids = new Int32Array(chunk.length * len);
    const at: number[] = []; // the row positions whose next token is a target token
    const next: number[] = [];
    chunk.forEach((it, b) => {
      ids.set([...it.context, ...it.target], b * len);
      it.target.forEach((id, t) => {
        at.push(b * len + it.context.length - 1 + t);
        next.push(id);
      });
    });
    let flat: Float32Array = new Float32Array(0);
    if (at.length) {
      const lp = tf.tidy(() => {
        const h = model.hidden(tf.tensor2d(ids, [chunk.length, len], 'int32'));
        const logp = tf.logSoftmax(model.lmHead(tf.gather(h, tf.tensor1d(at, 'int32'))));
        const y = tf.cast(tf.oneHot(tf.tensor1d(next, 'int32'), V), 'float32');
        return tf.sum(tf.mul(logp, y), -1);
      });
      flat = (await lp.data()) as Float32Array;
      lp.dispose();
    }
    let k = 0;
    chunk.forEach((it, b) => {
      const logprobs = Array.from(flat.subarray(k, k + it.target.length));
      k += it.target.length;
      const sum = logprobs.reduce((a, x) => a + x, 0);
      out[short[c + b]!] = {
        tokens: it.target,
        logprobs,
        sum,
        mean: logprobs.length ? sum / logprobs.length : 0,
      };
    });
  }
  return out;
}
