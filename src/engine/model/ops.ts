/**
 * The GPT's differentiable building blocks, each with a hand-written gradient.
 *
 * tfjs's default gradients use matmuls with transposeA/transposeB, which the wasm backend runs
 * 10–20× slower than a plain matmul, and `gather`'s gradient (UnsortedSegmentSum) is missing on
 * wasm. Writing the backward passes out keeps every matmul plain, and fewer ops run per step.
 */
import * as tf from '../tf';
import { columnSum, splitBatch } from '../wasmKernels';

type GradResult = { value: tf.Tensor; gradFunc: (dy: never, saved: tf.Tensor[]) => tf.Tensor[] };

/**
 * tf.customGrad with the backward pass in a tidy: tfjs runs gradFuncs outside any scope, so
 * without it every intermediate of every backward would live until variableGrads returns
 * (train-B's wasm heap peaked at 3.7 GB instead of ~1.9 GB).
 */
function customOp(f: (...args: never[]) => GradResult): unknown {
  return tf.customGrad(((...args: never[]) => {
    const r = f(...args);
    return {
      value: r.value,
      gradFunc: (dy: never, saved: tf.Tensor[]) => tf.tidy(() => r.gradFunc(dy, saved)),
    };
  }) as never);
}

type T2 = tf.Tensor2D;
type T3 = tf.Tensor3D;

export const t2 = (x: tf.Tensor): T2 => tf.transpose(x as T2) as T2;

const onesCache = new Map<string, T2>();

/**
 * Σ over rows of x [N, C] → [C]: on wasm a loop over the heap; elsewhere ones[1, N] · x (wasm's
 * reduction over axis 0 was ~10× slower than that product).
 */
export function colSum(x: T2): tf.Tensor1D {
  if (tf.getBackend() === 'wasm') return columnSum(x);
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
export function outerGrad(x: T2, dy: T2): T2 {
  const [n, nIn] = x.shape;
  const nOut = dy.shape[1];
  if (n * nIn <= n * nOut + nOut * nIn) return tf.matMul(t2(x), dy);
  return t2(tf.matMul(t2(dy), x));
}

/** Gradients of y = x W + b: [dx, dW, db]. */
export function linearBackward(dy: T2, x: T2, w: T2): [T2, T2, tf.Tensor1D] {
  return [tf.matMul(dy, t2(w)), outerGrad(x, dy), colSum(dy)];
}

/** y = x W + b, x [N, in], W [in, out] (GPT-2's Conv1D layout), b [out]. */
export const linear = customOp(((x: T2, w: T2, b: tf.Tensor1D, save: tf.GradSaveFunc) => {
  save([x, w]);
  return {
    value: tf.add(tf.matMul(x, w), b),
    gradFunc: (dy: T2, [xs, ws]: tf.Tensor[]) => linearBackward(dy, xs as T2, ws as T2),
  };
}) as never) as (x: T2, w: T2, b: tf.Tensor1D) => T2;

/** logits = h W_eᵀ: the LM head tied to the token embedding W_e [V, C]. */
export const tiedLmHead = customOp(((h: T2, wte: T2, save: tf.GradSaveFunc) => {
  save([h, wte]);
  return {
    value: tf.matMul(h, t2(wte)),
    gradFunc: (dy: T2, [hs, ws]: tf.Tensor[]) => [tf.matMul(dy, ws as T2), tf.matMul(t2(dy), hs!)],
  };
}) as never) as (h: T2, wte: T2) => T2;

/** LayerNorm over the last axis of x [N, C]: y = x̂ g + b, x̂ = (x − μ) / √(σ² + ε). */
export function layerNormForward(x: T2, g: tf.Tensor1D, b: tf.Tensor1D, eps: number) {
  const mu = tf.mean(x, -1, true);
  const xc = tf.sub(x, mu);
  const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(xc), -1, true), eps)) as T2;
  const xhat = tf.mul(xc, rstd) as T2;
  return { y: tf.add(tf.mul(xhat, g), b) as T2, xhat, rstd };
}

/** Gradients of LayerNorm from the saved x̂ and 1/σ: [dx, dg, db]. */
export function layerNormBackward(
  dy: T2,
  xhat: T2,
  rstd: T2,
  g: tf.Tensor1D,
): [T2, tf.Tensor1D, tf.Tensor1D] {
  const dxhat = tf.mul(dy, g);
  const dx = tf.mul(
    rstd,
    tf.sub(
      tf.sub(dxhat, tf.mean(dxhat, -1, true)),
      tf.mul(xhat, tf.mean(tf.mul(dxhat, xhat), -1, true)),
    ),
  ) as T2;
  return [dx, colSum(tf.mul(dy, xhat) as T2), colSum(dy)];
}

export function layerNorm(x: T2, g: tf.Tensor1D, b: tf.Tensor1D, eps: number): T2 {
  const f = customOp(((xi: T2, gi: tf.Tensor1D, bi: tf.Tensor1D, save: tf.GradSaveFunc) => {
    const { y, xhat, rstd } = layerNormForward(xi, gi, bi, eps);
    save([xhat, rstd, gi]);
    return {
      value: y,
      gradFunc: (dy: T2, [xh, rs, gs]: tf.Tensor[]) =>
        layerNormBackward(dy, xh as T2, rs as T2, gs as tf.Tensor1D),
    };
  }) as never);
  return (f as unknown as (a: T2, b: tf.Tensor1D, c: tf.Tensor1D) => T2)(x, g, b);
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

export type Activation = 'gelu_new' | 'gelu';

/**
 * GELU forward. gelu_new (GPT-2's) is 0.5 x (1 + tanh(u)), u = √(2/π) (x + 0.044715 x³); since
 * 0.5 (1 + tanh u) = σ(2u) it runs as x σ(2u) (wasm's sigmoid is ~8× faster than its tanh), and
 * σ(2u) is kept for the backward. gelu is the exact 0.5 x (1 + erf(x/√2)).
 */
export function geluForward<X extends tf.Tensor>(x: X, kind: Activation): { y: X; s: X } {
  if (kind === 'gelu') {
    const cdf = tf.mul(tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1), 0.5) as X;
    return { y: tf.mul(x, cdf) as X, s: cdf };
  }
  const u2 = tf.mul(tf.mul(x, tf.add(tf.mul(tf.mul(x, x), 0.044715), 1)), 2 * SQRT_2_OVER_PI);
  const s = tf.sigmoid(u2) as X;
  return { y: tf.mul(x, s) as X, s };
}

/** dL/dx of GELU from x and the forward's s (σ(2u) for gelu_new, Φ(x) for gelu). */
export function geluBackward<X extends tf.Tensor>(dy: X, x: X, s: X, kind: Activation): X {
  if (kind === 'gelu') {
    // d/dx x Φ(x) = Φ(x) + x φ(x)
    const pdf = tf.mul(tf.exp(tf.mul(tf.square(x), -0.5)), 1 / Math.sqrt(2 * Math.PI));
    return tf.mul(dy, tf.add(s, tf.mul(x, pdf))) as X;
  }
  // d/dx x σ(2u) = σ + x σ (1 − σ) 2 u'(x), u'(x) = √(2/π) (1 + 3·0.044715 x²)
  const du = tf.mul(tf.add(tf.mul(tf.mul(x, x), 3 * 0.044715), 1), 2 * SQRT_2_OVER_PI);
  return tf.mul(dy, tf.add(s, tf.mul(tf.mul(tf.mul(x, s), tf.sub(1, s)), du))) as X;
}

function geluOp(kind: Activation) {
  return customOp(((x: tf.Tensor, save: tf.GradSaveFunc) => {
    const { y, s } = geluForward(x, kind);
    save([x, s]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, [xs, ss]: tf.Tensor[]) => [geluBackward(dy, xs!, ss!, kind)],
    };
  }) as never) as <X extends tf.Tensor>(x: X) => X;
}

export const geluNew = geluOp('gelu_new');
export const geluErf = geluOp('gelu');

/** Rows of W_e [V, C] for token ids [N]; the gradient scatters back with ScatterNd. */
export function embedding(wte: T2, ids: tf.Tensor1D): T2 {
  const vocab = wte.shape[0];
  const f = customOp(((w: T2, save: tf.GradSaveFunc) => {
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
 * Mean cross-entropy of logits [N, V] against targets [N] (targets < 0 are ignored, as padding),
 * and its gradient (softmax − onehot) / count, computed together.
 */
export function crossEntropyWithGrad(logits: T2, targets: tf.Tensor1D) {
  const vocab = logits.shape[1];
  const onehot = tf.cast(tf.oneHot(targets, vocab), 'float32');
  const valid = tf.cast(tf.greaterEqual(targets, 0), 'float32');
  const count = tf.maximum(tf.sum(valid), 1);
  const z = tf.sub(logits, tf.max(logits, -1, true));
  const logp = tf.sub(z, tf.log(tf.sum(tf.exp(z), -1, true)));
  const nll = tf.neg(tf.sum(tf.mul(logp, onehot), -1));
  const loss = tf.div(tf.sum(tf.mul(nll, valid)), count) as tf.Scalar;
  const dlogits = tf.mul(
    tf.sub(tf.exp(logp), onehot),
    tf.div(tf.expandDims(valid, 1), count),
  ) as T2;
  return { loss, dlogits };
}

export function crossEntropy(logits: T2, targets: tf.Tensor1D): tf.Scalar {
  const f = customOp(((lg: T2, save: tf.GradSaveFunc) => {
    const { loss, dlogits } = crossEntropyWithGrad(lg, targets);
    save([dlogits]);
    return {
      value: loss,
      gradFunc: (dy: tf.Scalar, [dl]: tf.Tensor[]) => [tf.mul(dl!, dy)],
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

/**
 * A variable that owns its data. `tf.variable(t)` shares `t`'s data (a second reference), so `t`
 * is disposed here, or the data would outlive the variable's own dispose().
 */
export function variableOf<R extends tf.Rank>(
  init: tf.Tensor<R>,
  trainable = true,
  name?: string,
): tf.Variable<R> {
  const v = tf.variable(init, trainable, name);
  init.dispose();
  return v;
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

/** Inverted-dropout keep mask: 1/(1−rate) with probability 1 − rate, else 0. */
export function dropoutMask(shape: number[], rate: number, seed: number): tf.Tensor {
  return tf.div(
    tf.cast(tf.greaterEqual(tf.randomUniform(shape, 0, 1, 'float32', seed), rate), 'float32'),
    1 - rate,
  );
}

/** Operands of the G per-head products, cut from qkv [3G, T, hs] (q, then k, then v). */
class Heads {
  constructor(
    private qkv: T3,
    private g: number,
    private strategy: BmmStrategy,
  ) {}
  /** part 0 = q, 1 = k, 2 = v: [G, T, hs] for 'batched', or G 2-D pieces for 'unrolled'. */
  whole(part: number): T3 {
    const [, t, hs] = this.qkv.shape;
    return tf.slice(this.qkv, [part * this.g, 0, 0], [this.g, t, hs]);
  }
  pieces(part: number, transpose: boolean): T2[] {
    return splitBatch(this.qkv, transpose, part * this.g, this.g);
  }
}

function products(as: T2[], bs: T2[]): T2[] {
  return as.map((a, i) => tf.matMul(a, bs[i]!));
}

function stack3(ps: T2[], shape: [number, number, number]): T3 {
  return tf.reshape(tf.concat(ps), shape);
}

/**
 * Causal scaled dot-product attention on qkv [3G, T, hs] (G = heads × batch):
 * Y = softmax(q kᵀ / √hs + mask) v, with attention dropout on the probabilities.
 * Returns Y [G, T, hs] and what the backward needs.
 */
export function attentionForward(qkv: T3, opts: AttentionOptions) {
  const [g3, tLen, hs] = qkv.shape;
  const g = g3 / 3;
  const scale = 1 / Math.sqrt(hs);
  const heads = new Heads(qkv, g, opts.strategy);
  const unrolled = opts.strategy === 'unrolled' && g > 1;
  const scores = unrolled
    ? stack3(products(heads.pieces(0, false), heads.pieces(1, true)), [g, tLen, tLen])
    : (tf.matMul(heads.whole(0), heads.whole(1), false, true) as T3);
  const p = tf.softmax(tf.add(tf.mul(scores, scale), causalMask(tLen))) as T3;
  const keep = opts.dropout > 0 ? dropoutMask(p.shape, opts.dropout, opts.seed ?? 0) : null;
  const pd = keep ? (tf.mul(p, keep) as T3) : p;
  const y = unrolled
    ? stack3(products(splitBatch(pd, false), heads.pieces(2, false)), [g, tLen, hs])
    : (tf.matMul(pd, heads.whole(2)) as T3);
  return { y, p, pd, keep };
}

/** Gradient of attentionForward: dqkv [3G, T, hs]. */
export function attentionBackward(
  dy: T3,
  qkv: T3,
  p: T3,
  pd: T3,
  keep: tf.Tensor | null,
  strategy: BmmStrategy,
): T3 {
  const [g3, tLen, hs] = qkv.shape;
  const g = g3 / 3;
  const scale = 1 / Math.sqrt(hs);
  const heads = new Heads(qkv, g, strategy);
  const unrolled = strategy === 'unrolled' && g > 1;
  // dV = Pdᵀ dY, dPd = dY Vᵀ, dS = P ⊙ (dP − Σ dP ⊙ P) / √hs, dQ = dS K, dK = dSᵀ Q
  if (unrolled) {
    const dys = splitBatch(dy, false);
    const dv = products(splitBatch(pd, true), dys);
    let dp = stack3(products(dys, heads.pieces(2, true)), [g, tLen, tLen]);
    if (keep) dp = tf.mul(dp, keep) as T3;
    const ds = tf.mul(tf.mul(p, tf.sub(dp, tf.sum(tf.mul(dp, p), -1, true))), scale) as T3;
    const dq = products(splitBatch(ds, false), heads.pieces(1, false));
    const dk = products(splitBatch(ds, true), heads.pieces(0, false));
    return stack3([...dq, ...dk, ...dv], [g3, tLen, hs]);
  }
  const dv = tf.matMul(pd, dy, true, false);
  let dp: tf.Tensor = tf.matMul(dy, heads.whole(2), false, true);
  if (keep) dp = tf.mul(dp, keep);
  const ds = tf.mul(tf.mul(p, tf.sub(dp, tf.sum(tf.mul(dp, p), -1, true))), scale) as T3;
  const dq = tf.matMul(ds, heads.whole(1));
  const dk = tf.matMul(ds, heads.whole(0), true, false);
  return tf.concat([dq, dk, dv]) as T3;
}

/** causal attention as a differentiable op on qkv [3G, T, hs] → [G, T, hs]. */
export function causalAttention(qkv: T3, opts: AttentionOptions): T3 {
  const f = customOp(((x: T3, save: tf.GradSaveFunc) => {
    const { y, p, pd, keep } = attentionForward(x, opts);
    save([x, p, pd, keep ?? tf.scalar(1)]);
    return {
      value: y,
      gradFunc: (dy: T3, [xs, ps, pds, km]: tf.Tensor[]) => [
        attentionBackward(
          dy,
          xs as T3,
          ps as T3,
          pds as T3,
          opts.dropout > 0 ? km! : null,
          opts.strategy,
        ),
      ],
    };
  }) as never);
  return (f as unknown as (a: T3) => T3)(qkv);
}
