/**
 * The GPT's building blocks, each a forward and its hand-written backward.
 *
 * `gather`'s gradient (UnsortedSegmentSum) is missing on wasm, and writing the backward passes out
 * runs fewer ops per step than tfjs's autodiff. Transposed operands go to the matmul as flags: on
 * wasm the engine's own BatchMatMul (../kernels/gemm.ts) packs them away at no extra cost.
 */
import * as tf from '../tf';
import {
  fusedGelu,
  fusedGeluBackward,
  fusedLayerNorm,
  fusedLayerNormBackward,
} from '../kernels/fused';
import { columnSum } from '../wasmKernels';
import type { Activation } from './config';
import type { Layer } from './params';

type T2 = tf.Tensor2D;

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

/** ∂L/∂W = xᵀ dy for x [N, in], dy [N, out]. */
export function outerGrad(x: T2, dy: T2): T2 {
  return tf.matMul(x, dy, true, false);
}

/** y = x W + b, x [N, in], W [in, out] (GPT-2's Conv1D layout), b [out]. */
export function linear(x: T2, l: Layer<tf.Tensor>): T2 {
  return tf.add(tf.matMul(x, l.weight as T2), l.bias) as T2;
}

/** Gradients of y = x W + b: [dx, dW, db]. */
export function linearBackward(dy: T2, x: T2, w: T2): [T2, T2, tf.Tensor1D] {
  return [tf.matMul(dy, w, false, true), outerGrad(x, dy), colSum(dy)];
}

/** LayerNorm over the last axis of x [N, C]: y = x̂ g + b, x̂ = (x − μ) / √(σ² + ε). */
export function layerNormForward(x: T2, g: tf.Tensor, b: tf.Tensor, eps: number) {
  const fused = fusedLayerNorm(x, g, b, eps);
  if (fused) return fused;
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
  g: tf.Tensor,
): [T2, tf.Tensor1D, tf.Tensor1D] {
  const fused = fusedLayerNormBackward(dy, xhat, rstd, g);
  if (fused) return fused;
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

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/**
 * GELU forward. gelu_new (GPT-2's) is 0.5 x (1 + tanh(u)), u = √(2/π) (x + 0.044715 x³); since
 * 0.5 (1 + tanh u) = σ(2u) it runs as x σ(2u) (wasm's sigmoid is ~8× faster than its tanh), and
 * σ(2u) is kept for the backward. gelu is the exact 0.5 x (1 + erf(x/√2)).
 */
export function geluForward<X extends tf.Tensor>(x: X, kind: Activation): { y: X; s: X } {
  const fused = fusedGelu(x, kind === 'gelu');
  if (fused) return fused;
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
  const fused = fusedGeluBackward(dy, x, s, kind === 'gelu');
  if (fused) return fused;
  if (kind === 'gelu') {
    // d/dx x Φ(x) = Φ(x) + x φ(x)
    const pdf = tf.mul(tf.exp(tf.mul(tf.square(x), -0.5)), 1 / Math.sqrt(2 * Math.PI));
    return tf.mul(dy, tf.add(s, tf.mul(x, pdf))) as X;
  }
  // d/dx x σ(2u) = σ + x σ (1 − σ) 2 u'(x), u'(x) = √(2/π) (1 + 3·0.044715 x²)
  const du = tf.mul(tf.add(tf.mul(tf.mul(x, x), 3 * 0.044715), 1), 2 * SQRT_2_OVER_PI);
  return tf.mul(dy, tf.add(s, tf.mul(tf.mul(tf.mul(x, s), tf.sub(1, s)), du))) as X;
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

/** The mean cross-entropy alone (evaluation). */
export function crossEntropy(logits: T2, targets: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => crossEntropyWithGrad(logits, targets).loss);
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
