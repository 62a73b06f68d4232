/**
 * Causal self-attention: the heads' reshapes, scaled dot-product attention with its backward
 * (training and scoring), and the same attention over a KV cache (generation).
 */
import * as tf from '../tf';
import { SALT, dropoutMask, type Dropout } from './dropout';

type T2 = tf.Tensor2D;
type T3 = tf.Tensor3D;

// ---------------------------------------------------------------------------------------------
// Heads: x [B·T, C] ↔ [nHead·B, T, hs]

/** qkv [B·T, 3C] → [3·nHead·B, T, hs]: q's heads, then k's, then v's. */
export function splitQkv(qkv: T2, nHead: number, batch: number, tLen: number): T3 {
  const hs = qkv.shape[1] / 3 / nHead;
  const x = tf.transpose(tf.reshape(qkv, [batch, tLen, 3 * nHead, hs]), [2, 0, 1, 3]);
  return tf.reshape(x, [3 * nHead * batch, tLen, hs]) as T3;
}

/** Inverse of splitQkv(). */
export function mergeQkv(x: T3, nHead: number, batch: number, tLen: number): T2 {
  const hs = x.shape[2];
  const x4 = tf.reshape(x, [3 * nHead, batch, tLen, hs]);
  return tf.reshape(tf.transpose(x4, [1, 2, 0, 3]), [batch * tLen, 3 * nHead * hs]) as T2;
}

/** y [nHead·B, T, hs] → [B·T, C]. */
export function mergeHeads(y: T3, nHead: number, batch: number, tLen: number): T2 {
  const hs = y.shape[2];
  const y4 = tf.reshape(y, [nHead, batch, tLen, hs]);
  return tf.reshape(tf.transpose(y4, [1, 2, 0, 3]), [batch * tLen, nHead * hs]);
}

/** Inverse of mergeHeads(). */
export function splitHeads(y: T2, nHead: number, batch: number, tLen: number): T3 {
  const hs = y.shape[1] / nHead;
  const y4 = tf.reshape(y, [batch, tLen, nHead, hs]);
  return tf.reshape(tf.transpose(y4, [2, 0, 1, 3]), [nHead * batch, tLen, hs]) as T3;
}

// ---------------------------------------------------------------------------------------------
// Training and scoring: every position attends to those before it

const maskCache = new Map<string, T2>();

/** Additive causal mask [T, T]: 0 on and below the diagonal, −1e9 above. */
export function causalMask(t: number): T2 {
  const key = `${tf.getBackend()}:${t}`;
  let m = maskCache.get(key);
  if (!m || m.isDisposed) {
    const data = new Float32Array(t * t);
    for (let i = 0; i < t; i++) for (let j = i + 1; j < t; j++) data[i * t + j] = -1e9;
    m = tf.keep(tf.tensor2d(data, [t, t]));
    maskCache.set(key, m);
  }
  return m;
}

export interface AttentionOptions {
  /** Attention dropout rate; 0 in eval. */
  dropout: number;
  seed?: number;
  /** false: every position attends to every other (a masked-LM's encoder). Default true. */
  causal?: boolean;
  /** Additive key mask [G, 1, T] (0: attend, −1e9: padding), for bidirectional batches. */
  padMask?: T3 | null;
}

/** What the backward needs from attentionForward: the probabilities, and after dropout. */
export interface AttentionSaved {
  p: T3;
  pd: T3;
  keep: tf.Tensor | null;
}

/** q, k or v [G, T, hs] (part 0, 1, 2) of qkv [3G, T, hs]. */
function part(qkv: T3, i: number): T3 {
  const [g3, t, hs] = qkv.shape;
  return tf.slice(qkv, [(i * g3) / 3, 0, 0], [g3 / 3, t, hs]);
}

/** The scaled scores with the causal mask (GPT) or none (a masked-LM), plus any padding mask. */
function attentionScores(scaled: T3, opts: AttentionOptions): T3 {
  const tLen = scaled.shape[1];
  let s = opts.causal === false ? scaled : (tf.add(scaled, causalMask(tLen)) as T3);
  if (opts.padMask) s = tf.add(s, opts.padMask) as T3;
  return s;
}

/**
 * Causal scaled dot-product attention on qkv [3G, T, hs] (G = heads × batch):
 * Y = softmax(q kᵀ / √hs + mask) v, with attention dropout on the probabilities.
 * Returns Y [G, T, hs] and what the backward needs.
 */
export function attentionForward(qkv: T3, opts: AttentionOptions): { y: T3 } & AttentionSaved {
  const scale = 1 / Math.sqrt(qkv.shape[2]);
  const scores = tf.matMul(part(qkv, 0), part(qkv, 1), false, true) as T3;
  const p = tf.softmax(attentionScores(tf.mul(scores, scale) as T3, opts)) as T3;
  const keep = opts.dropout > 0 ? dropoutMask(p.shape, opts.dropout, opts.seed ?? 0) : null;
  const pd = keep ? (tf.mul(p, keep) as T3) : p;
  return { y: tf.matMul(pd, part(qkv, 2)) as T3, p, pd, keep };
}

/** Gradient of attentionForward: dqkv [3G, T, hs]. */
export function attentionBackward(dy: T3, qkv: T3, p: T3, pd: T3, keep: tf.Tensor | null): T3 {
  const scale = 1 / Math.sqrt(qkv.shape[2]);
  // dV = Pdᵀ dY, dPd = dY Vᵀ, dS = P ⊙ (dP − Σ dP ⊙ P) / √hs, dQ = dS K, dK = dSᵀ Q
  const dv = tf.matMul(pd, dy, true, false);
  let dp: tf.Tensor = tf.matMul(dy, part(qkv, 2), false, true);
  if (keep) dp = tf.mul(dp, keep);
  const ds = tf.mul(tf.mul(p, tf.sub(dp, tf.sum(tf.mul(dp, p), -1, true))), scale) as T3;
  const dq = tf.matMul(ds, part(qkv, 1));
  const dk = tf.matMul(ds, part(qkv, 0), true, false);
  return tf.concat([dq, dk, dv]) as T3;
}

// ---------------------------------------------------------------------------------------------
// Generation: new positions attend to the cached ones and to each other

/** Keys and values of the tokens seen so far, per layer: [nHead·B, t, headSize]. */
export interface KVCache {
  k: T3[];
  v: T3[];
  length: number;
  batch: number;
}

export function disposeCache(cache: KVCache | null | undefined): void {
  if (!cache) return;
  tf.dispose([...cache.k, ...cache.v]);
}

/** Attention of new queries q [G, Tn, hs] over all keys k, v [G, past+Tn, hs]. */
function attendCached(q: T3, k: T3, v: T3, past: number): T3 {
  const [g, tn, hs] = q.shape;
  const tk = k.shape[1];
  const scale = 1 / Math.sqrt(hs);
  if (tn === 1) {
    // one new token: q·k and p·v as broadcast products, no matmul dispatch
    const att = tf.mul(tf.sum(tf.mul(q, k), -1), scale); // [G, Tk]
    const p = tf.softmax(att);
    return tf.reshape(tf.sum(tf.mul(tf.expandDims(p, 2), v), 1), [g, 1, hs]);
  }
  const mask = new Float32Array(tn * tk);
  for (let i = 0; i < tn; i++) for (let j = past + i + 1; j < tk; j++) mask[i * tk + j] = -1e9;
  const att = tf.add(tf.mul(tf.matMul(q, k, false, true), scale), tf.tensor2d(mask, [tn, tk]));
  return tf.matMul(tf.softmax(att) as T3, v);
}

// ---------------------------------------------------------------------------------------------
// The attention a block runs

/** From qkv [3G, T, hs] to y [G, T, hs] in layer `layer`, and what the caller keeps of it. */
export type Attend<S> = (qkv: T3, layer: number) => { y: T3; saved: S };

/**
 * Self-attention within the sequence, with attention dropout when `dropout` is given: causal
 * (GPT), or with `mask.causal` false bidirectional (a masked-LM), padding keys masked out.
 */
export function causalSelfAttention(
  dropout: Dropout | null,
  mask: Pick<AttentionOptions, 'causal' | 'padMask'> = {},
): Attend<AttentionSaved> {
  return (qkv, layer) => {
    const { y, ...saved } = attentionForward(qkv, {
      dropout: dropout?.rate ?? 0,
      seed: dropout?.seed(SALT.attention(layer)),
      ...mask,
    });
    return { y, saved };
  };
}

/**
 * Padding of a bidirectional batch as the attention's additive key mask [nHead·B, 1, T]:
 * `lengths[b]` real tokens per row, the rest −1e9 (heads are laid out head-major, h·B + b).
 */
export function paddingMask(lengths: readonly number[], tLen: number, nHead: number): T3 {
  const batch = lengths.length;
  const data = new Float32Array(nHead * batch * tLen);
  for (let h = 0; h < nHead; h++) {
    lengths.forEach((n, b) =>
      data.fill(-1e9, (h * batch + b) * tLen + n, (h * batch + b + 1) * tLen),
    );
  }
  return tf.tensor3d(data, [nHead * batch, 1, tLen]);
}

/** Self-attention over `cache` and the new positions (inference); returns the grown k and v. */
export function cachedSelfAttention(cache: KVCache | null): Attend<{ k: T3; v: T3 }> {
  return (qkv, layer) => {
    const [q, kNew, vNew] = tf.split(qkv, 3, 0) as T3[];
    const k = cache ? (tf.concat([cache.k[layer]!, kNew!], 1) as T3) : kNew!;
    const v = cache ? (tf.concat([cache.v[layer]!, vNew!], 1) as T3) : vNew!;
    return { y: attendCached(q!, k, v, cache?.length ?? 0), saved: { k, v } };
  };
}

/**
 * `attend` as it is, also handing out each layer's attention probabilities [G, T, T] into
 * `into[layer]` (tf.keep'd: the caller disposes them). Without `into`, `attend` itself.
 */
export function captureAttention<S extends AttentionSaved>(
  attend: Attend<S>,
  into: T3[] | undefined,
): Attend<S> {
  if (!into) return attend;
  return (qkv, layer) => {
    const r = attend(qkv, layer);
    into[layer] = tf.keep(r.saved.p);
    return r;
  };
}
