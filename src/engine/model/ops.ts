/**
 * The GPT's differentiable building blocks, each with a hand-written gradient.
 *
 * tfjs's default gradients use matmuls with transposeA/transposeB, which the wasm backend runs
 * 10–20× slower than a plain matmul, and `gather`'s gradient (UnsortedSegmentSum) is missing on
 * wasm. Writing the backward passes out keeps every matmul plain, and fewer ops run per step.
 */
import * as tf from '../tf';
import { splitBatch } from '../wasmKernels';

type T2 = tf.Tensor2D;
type T3 = tf.Tensor3D;

const t2 = (x: tf.Tensor): T2 => tf.transpose(x as T2) as T2;

const onesCache = new Map<string, T2>();

/** Σ over rows of x [N, C] → [C], as ones[1, N] · x: on wasm a reduction over axis 0 is ~10× slower. */
function colSum(x: T2): tf.Tensor1D {
  const n = x.shape[0];
  const key = `${tf.getBackend()}:${n}`;
  let ones = onesCache.get(key);
  if (!ones || ones.isDisposed) {
    ones = tf.keep(tf.ones([1, n]) as T2);
    onesCache.set(key, ones);
  }
  return tf.reshape(tf.matMul(ones, x), [x.shape[1]]);
}

/**
 * ∂L/∂W = xᵀ dy for x [N, in], dy [N, out]. Transposes are memory-bound on wasm, so when in > out
 * it computes (dyᵀ x)ᵀ instead, transposing N·out + out·in values rather than N·in.
 */
function outerGrad(x: T2, dy: T2): T2 {
  const [n, nIn] = x.shape;
  const nOut = dy.shape[1];
  if (n * nIn <= n * nOut + nOut * nIn) return tf.matMul(t2(x), dy);
  return t2(tf.matMul(t2(dy), x));
}

/** y = x W + b, x [N, in], W [in, out] (GPT-2's Conv1D layout), b [out]. */
export const linear = tf.customGrad(((x: T2, w: T2, b: tf.Tensor1D, save: tf.GradSaveFunc) => {
  save([x, w]);
  return {
    value: tf.add(tf.matMul(x, w), b),
    gradFunc: (dy: T2, [xs, ws]: tf.Tensor[]) => [
      tf.matMul(dy, t2(ws!)),
      outerGrad(xs as T2, dy),
      colSum(dy),
    ],
  };
}) as never) as (x: T2, w: T2, b: tf.Tensor1D) => T2;

/** logits = h W_eᵀ: the LM head tied to the token embedding W_e [V, C]. */
export const tiedLmHead = tf.customGrad(((h: T2, wte: T2, save: tf.GradSaveFunc) => {
  save([h, wte]);
  return {
    value: tf.matMul(h, t2(wte)),
    gradFunc: (dy: T2, [hs, ws]: tf.Tensor[]) => [tf.matMul(dy, ws as T2), tf.matMul(t2(dy), hs!)],
  };
}) as never) as (h: T2, wte: T2) => T2;

/** LayerNorm over the last axis of x [N, C]. */
export function layerNorm(x: T2, g: tf.Tensor1D, b: tf.Tensor1D, eps: number): T2 {
  const f = tf.customGrad(((xi: T2, gi: tf.Tensor1D, bi: tf.Tensor1D, save: tf.GradSaveFunc) => {
    const mu = tf.mean(xi, -1, true);
    const xc = tf.sub(xi, mu);
    const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(xc), -1, true), eps));
    const xhat = tf.mul(xc, rstd);
    save([xhat, rstd, gi]);
    return {
      value: tf.add(tf.mul(xhat, gi), bi),
      gradFunc: (dy: T2, [xh, rs, gs]: tf.Tensor[]) => {
        const dxhat = tf.mul(dy, gs!);
        const dx = tf.mul(
          rs!,
          tf.sub(
            tf.sub(dxhat, tf.mean(dxhat, -1, true)),
            tf.mul(xh!, tf.mean(tf.mul(dxhat, xh!), -1, true)),
          ),
        );
        return [dx, colSum(tf.mul(dy, xh!)), colSum(dy)];
      },
    };
  }) as never);
  return (f as unknown as (a: T2, b: tf.Tensor1D, c: tf.Tensor1D) => T2)(x, g, b);
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/**
 * GPT-2's gelu_new: 0.5 x (1 + tanh(u)), u = √(2/π) (x + 0.044715 x³). Since 0.5 (1 + tanh u) = σ(2u),
 * it runs as x σ(2u): wasm's sigmoid is ~8× faster than its tanh.
 */
export const geluNew = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
  const x2 = tf.mul(x, x);
  const s = tf.sigmoid(tf.mul(tf.mul(x, tf.add(tf.mul(x2, 0.044715), 1)), 2 * SQRT_2_OVER_PI));
  save([x, s]);
  return {
    value: tf.mul(x, s),
    gradFunc: (dy: tf.Tensor, [xs, ss]: tf.Tensor[]) => {
      // d/dx x σ(2u) = σ + x σ (1 − σ) 2 u'(x), u'(x) = √(2/π) (1 + 3·0.044715 x²)
      const du = tf.mul(tf.add(tf.mul(tf.mul(xs!, xs!), 3 * 0.044715), 1), 2 * SQRT_2_OVER_PI);
      const d = tf.add(ss!, tf.mul(tf.mul(tf.mul(xs!, ss!), tf.sub(1, ss!)), du));
      return [tf.mul(dy, d)];
    },
  };
}) as never) as <X extends tf.Tensor>(x: X) => X;

/** The exact GELU, 0.5 x (1 + erf(x/√2)). */
export const geluErf = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
  save([x]);
  return {
    value: tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1)),
    gradFunc: (dy: tf.Tensor, [xs]: tf.Tensor[]) => {
      const cdf = tf.mul(tf.add(tf.erf(tf.mul(xs!, Math.SQRT1_2)), 1), 0.5);
      const pdf = tf.mul(tf.exp(tf.mul(tf.square(xs!), -0.5)), 1 / Math.sqrt(2 * Math.PI));
      return [tf.mul(dy, tf.add(cdf, tf.mul(xs!, pdf)))];
    },
  };
}) as never) as <X extends tf.Tensor>(x: X) => X;

/** Rows of W_e [V, C] for token ids [N]; the gradient scatters back with ScatterNd. */
export function embedding(wte: T2, ids: tf.Tensor1D): T2 {
  const vocab = wte.shape[0];
  const f = tf.customGrad(((w: T2, save: tf.GradSaveFunc) => {
    // the ids are saved (as [N, 1] scatter indices) so they outlive the caller's scope
    save([tf.expandDims(ids, 1)]);
    return {
      value: tf.gather(w, ids),
      gradFunc: (dy: T2, [idx]: tf.Tensor[]) => [tf.scatterND(idx!, dy, [vocab, dy.shape[1]])],
    };
  }) as never);
  return (f as unknown as (w: T2) => T2)(wte);
}

/**
 * Mean cross-entropy of logits [N, V] against targets [N]. Targets < 0 are ignored (padding).
 * The gradient is (softmax − onehot) / count, written out directly.
 */
export function crossEntropy(logits: T2, targets: tf.Tensor1D): tf.Scalar {
  const vocab = logits.shape[1];
  const f = tf.customGrad(((lg: T2, save: tf.GradSaveFunc) => {
    const onehot = tf.cast(tf.oneHot(targets, vocab), 'float32');
    const valid = tf.cast(tf.greaterEqual(targets, 0), 'float32');
    const count = tf.maximum(tf.sum(valid), 1);
    const z = tf.sub(lg, tf.max(lg, -1, true));
    const lse = tf.log(tf.sum(tf.exp(z), -1, true));
    const logp = tf.sub(z, lse);
    const nll = tf.neg(tf.sum(tf.mul(logp, onehot), -1));
    save([tf.exp(logp), onehot, valid, count]);
    return {
      value: tf.div(tf.sum(tf.mul(nll, valid)), count) as tf.Scalar,
      gradFunc: (dy: tf.Scalar, [p, oh, vd, c]: tf.Tensor[]) => {
        const scale = tf.div(tf.expandDims(vd!, 1), c!);
        return [tf.mul(tf.mul(tf.sub(p!, oh!), scale), dy)];
      },
    };
  }) as never);
  return (f as unknown as (l: T2) => tf.Scalar)(logits);
}

/** How batched [G, M, K] × [G, K, N] products run: one BatchMatMul, or G plain 2-D matmuls. */
export type BmmStrategy = 'batched' | 'unrolled';

/**
 * Batched products op(a) · op(b) for a, b [G, ·, ·], op = transpose when asked.
 *
 * On wasm, BatchMatMul with a batch > 1 takes a slow generic path (~8× slower than XNNPACK's 2-D
 * matmul) and transposed operands are slower still, so there the batch is split straight on the
 * wasm heap (transposing while copying) and run as G plain 2-D matmuls.
 */
export function bmm(
  a: T3,
  b: T3,
  strategy: BmmStrategy,
  transposeA = false,
  transposeB = false,
): T3 {
  if (strategy === 'batched' || a.shape[0] === 1) return tf.matMul(a, b, transposeA, transposeB);
  return tf.tidy(() => {
    const g = a.shape[0];
    const m = transposeA ? a.shape[2] : a.shape[1];
    const n = transposeB ? b.shape[1] : b.shape[2];
    const as = splitBatch(a, transposeA);
    const bs = splitBatch(b, transposeB);
    return tf.reshape(tf.concat(as.map((ai, i) => tf.matMul(ai, bs[i]!))), [g, m, n]);
  });
}

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
  strategy: BmmStrategy;
  /** Attention dropout rate; 0 in eval. */
  dropout: number;
  seed?: number;
}

/**
 * Causal scaled dot-product attention for q, k, v [G, T, hs] (G = heads × batch):
 * Y = softmax(q kᵀ / √hs + mask) v.
 */
export function causalAttention(q: T3, k: T3, v: T3, opts: AttentionOptions): T3 {
  const [, tLen, hs] = q.shape;
  const scale = 1 / Math.sqrt(hs);
  const mask = causalMask(tLen);
  const s = opts.strategy;
  const f = tf.customGrad(((qi: T3, ki: T3, vi: T3, save: tf.GradSaveFunc) => {
    const att = tf.add(tf.mul(bmm(qi, ki, s, false, true), scale), mask);
    const p = tf.softmax(att) as T3;
    let pd = p;
    let keepMask: tf.Tensor = tf.scalar(1);
    if (opts.dropout > 0) {
      const rate = opts.dropout;
      keepMask = tf.div(
        tf.cast(
          tf.greaterEqual(tf.randomUniform(p.shape, 0, 1, 'float32', opts.seed), rate),
          'float32',
        ),
        1 - rate,
      );
      pd = tf.mul(p, keepMask) as T3;
    }
    save([qi, ki, vi, p, pd, keepMask]);
    return {
      value: bmm(pd, vi, s),
      gradFunc: (dy: T3, [qs, ks, vs, ps, pds, km]: tf.Tensor[]) => {
        const dv = bmm(pds as T3, dy, s, true);
        const dpd = bmm(dy, vs as T3, s, false, true);
        const dp = tf.mul(dpd, km!);
        const ds = tf.mul(tf.mul(ps!, tf.sub(dp, tf.sum(tf.mul(dp, ps!), -1, true))), scale) as T3;
        return [bmm(ds, ks as T3, s), bmm(ds, qs as T3, s, true), dv];
      },
    };
  }) as never);
  return (f as unknown as (a: T3, b: T3, c: T3) => T3)(q, k, v);
}
