/**
 * GELU and LayerNorm, forward and backward, each one pass of ./elementwise.c over tfjs-wasm's
 * heap instead of a chain of 6–12 tfjs kernels. Each function returns null where it does not
 * apply (another backend, a width that is not a multiple of 4), and the caller then runs the
 * same formulas as tfjs ops (../model/ops.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import { ELEMENTWISE_WASM_BASE64 } from './elementwiseWasm';
import {
  activeHeapBackend,
  compileWasm,
  exportsOn,
  fromBase64,
  offsetOf,
  tensorOf,
  type HeapBackend,
} from './heap';

interface ElementwiseExports {
  gelu_forward(x: number, y: number, s: number, n: number, exact: number): void;
  gelu_backward(dy: number, x: number, s: number, dx: number, n: number, exact: number): void;
  layernorm_forward(
    x: number,
    g: number,
    b: number,
    y: number,
    xhat: number,
    rstd: number,
    rows: number,
    c: number,
    eps: number,
  ): void;
  layernorm_backward(
    dy: number,
    xhat: number,
    rstd: number,
    g: number,
    dx: number,
    dg: number,
    db: number,
    rows: number,
    c: number,
  ): void;
}

let module: object | null = null;

/** The kernels on the active backend, or null when it is not wasm or a tensor is not float32. */
function kernels(...ts: tf.Tensor[]): { be: HeapBackend; k: ElementwiseExports } | null {
  const be = activeHeapBackend();
  if (!be || ts.some((t) => t.dtype !== 'float32')) return null;
  module ??= compileWasm(fromBase64(ELEMENTWISE_WASM_BASE64));
  return { be, k: exportsOn<ElementwiseExports>(be, module) };
}

/** y = GELU(x) and the factor s its backward needs (σ(2u) for gelu_new, Φ(x) for gelu). */
export function fusedGelu<X extends tf.Tensor>(x: X, exact: boolean): { y: X; s: X } | null {
  const run = x.size % 4 === 0 ? kernels(x) : null;
  if (!run) return null;
  const { be, k } = run;
  const y = be.makeOutput(x.shape, 'float32');
  const s = be.makeOutput(x.shape, 'float32');
  const at = (t: tf.TensorInfo) => offsetOf(be, t);
  k.gelu_forward(at(x), at(y), at(s), x.size, exact ? 1 : 0);
  return { y: tensorOf<X>(y), s: tensorOf<X>(s) };
}

/** dL/dx of GELU from dL/dy, x and the forward's s. */
export function fusedGeluBackward<X extends tf.Tensor>(
  dy: X,
  x: X,
  s: X,
  exact: boolean,
): X | null {
  const run = x.size % 4 === 0 ? kernels(dy, x, s) : null;
  if (!run) return null;
  const { be, k } = run;
  const dx = be.makeOutput(x.shape, 'float32');
  const at = (t: tf.TensorInfo) => offsetOf(be, t);
  k.gelu_backward(at(dy), at(x), at(s), at(dx), x.size, exact ? 1 : 0);
  return tensorOf<X>(dx);
}

type T2 = tf.Tensor2D;

/** LayerNorm over the rows of x [N, C]: y = x̂ g + b, with x̂ and 1/σ [N, 1] for the backward. */
export function fusedLayerNorm(
  x: T2,
  g: tf.Tensor,
  b: tf.Tensor,
  eps: number,
): { y: T2; xhat: T2; rstd: T2 } | null {
  const [n, c] = x.shape;
  const run = c % 4 === 0 ? kernels(x, g, b) : null;
  if (!run) return null;
  const { be, k } = run;
  const y = be.makeOutput([n, c], 'float32');
  const xhat = be.makeOutput([n, c], 'float32');
  const rstd = be.makeOutput([n, 1], 'float32');
  const at = (t: tf.TensorInfo) => offsetOf(be, t);
  k.layernorm_forward(at(x), at(g), at(b), at(y), at(xhat), at(rstd), n, c, eps);
  return { y: tensorOf<T2>(y), xhat: tensorOf<T2>(xhat), rstd: tensorOf<T2>(rstd) };
}

/** LayerNorm's gradients from dL/dy and the forward's x̂ and 1/σ: [dx, dg, db]. */
export function fusedLayerNormBackward(
  dy: T2,
  xhat: T2,
  rstd: T2,
  g: tf.Tensor,
): [T2, tf.Tensor1D, tf.Tensor1D] | null {
  const [n, c] = dy.shape;
  const run = c % 4 === 0 ? kernels(dy, xhat, rstd, g) : null;
  if (!run) return null;
  const { be, k } = run;
  const dx = be.makeOutput([n, c], 'float32');
  const dg = be.makeOutput([c], 'float32');
  const db = be.makeOutput([c], 'float32');
  const at = (t: tf.TensorInfo) => offsetOf(be, t);
  k.layernorm_backward(at(dy), at(xhat), at(rstd), at(g), at(dx), at(dg), at(db), n, c);
  return [tensorOf<T2>(dx), tensorOf<tf.Tensor1D>(dg), tensorOf<tf.Tensor1D>(db)];
}
