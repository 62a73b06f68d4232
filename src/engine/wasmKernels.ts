/**
 * Faster kernels for the wasm backend, written in JS over views of the wasm heap, and an Identity
 * that shares instead of copying.
 *
 * tfjs-wasm's Transpose walks the output element by element with index arithmetic (~65M floats/s
 * here); the attention and the linear layers' gradients transpose several MB per step. Two shapes
 * of permutation cover all the engine's transposes and are done here instead:
 *  - the last two axes swapped (a batch of 2-D transposes), cache-tiled;
 *  - the last axis kept in place: whole rows move, with TypedArray.set (a memcpy).
 * Anything else falls through to the stock kernel.
 *
 * A Slice that is one contiguous run of the input (the attention's q, k and v out of qkv) is one
 * memcpy. BatchMatMul runs ./kernels/gemm.ts's own kernel (transposes and batches included).
 */
import * as tf from '@tensorflow/tfjs-core';
import { batchMatMul } from './kernels/gemm';
import { heapFloats, offsetOf, tensorOf, type HeapBackend } from './kernels/heap';

let installed = false;

/**
 * Puts `fast` in front of wasm's stock kernel `name`: it runs first, and the stock kernel runs
 * whenever it returns null (a case it does not take).
 */
function override<A>(name: string, fast: (args: A) => tf.TensorInfo | null): void {
  const stock = tf.getKernel(name, 'wasm');
  if (!stock) return;
  tf.unregisterKernel(name, 'wasm');
  tf.registerKernel({
    ...stock,
    kernelFunc: (args) => fast(args as unknown as A) ?? (stock.kernelFunc(args) as tf.TensorInfo),
  });
}

export function installWasmKernels(): void {
  if (installed || !tf.getKernel('Transpose', 'wasm')) return;
  override('Transpose', fastTranspose);
  // Identity shares the buffer (tensors are immutable), as Reshape already does. The stock one
  // copies, and tfjs clones every tensor it saves for a backward pass through Identity: on wasm
  // that doubled the activations kept for the gradient and cost a copy each.
  override(
    'Identity',
    ({ inputs, backend }: { inputs: { x: tf.TensorInfo }; backend: HeapBackend }) => {
      const { x } = inputs;
      if (x.dtype === 'string') return null;
      backend.incRef(x.dataId);
      return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
    },
  );
  override('Slice', contiguousSlice);
  override('BatchMatMul', batchMatMul);
  installed = true;
}

interface SliceArgs {
  inputs: { x: tf.TensorInfo };
  backend: HeapBackend;
  attrs: { begin: number | number[]; size: number | number[] };
}

/** A slice whose elements are one contiguous run of x: every axis after the first cut is whole. */
function contiguousSlice({ inputs, backend, attrs }: SliceArgs): tf.TensorInfo | null {
  const { x } = inputs;
  const rank = x.shape.length;
  if ((x.dtype !== 'float32' && x.dtype !== 'int32') || rank === 0) return null;
  const begin = typeof attrs.begin === 'number' ? [attrs.begin] : attrs.begin;
  const size = typeof attrs.size === 'number' ? [attrs.size] : attrs.size;
  if (begin.length !== rank || size.length !== rank) return null;
  const out = size.map((s, i) => (s === -1 ? x.shape[i]! - begin[i]! : s));
  const cut = out.findIndex((s, i) => s !== x.shape[i]);
  if (cut === -1) return null;
  // before the cut: one index each; after it: whole axes
  for (let i = 0; i < rank; i++) {
    if (i < cut && out[i] !== 1) return null;
    if (i > cut && (begin[i] !== 0 || out[i] !== x.shape[i])) return null;
  }
  let start = 0;
  for (let i = 0; i < rank; i++) start = start * x.shape[i]! + begin[i]!;
  const total = out.reduce((a, b) => a * b, 1);
  if (total === 0) return null;
  const result = backend.makeOutput(out, x.dtype);
  const heap = backend.wasm.HEAPU8.buffer as ArrayBuffer;
  const Arr = x.dtype === 'float32' ? Float32Array : Int32Array;
  const src = new Arr(heap, offsetOf(backend, x) + 4 * start, total);
  new Arr(heap, offsetOf(backend, result), total).set(src);
  return result;
}

interface TransposeArgs {
  inputs: { x: tf.TensorInfo };
  backend: HeapBackend;
  attrs: { perm: number[] };
}

const TILE = 32;

function fastTranspose({ inputs, backend, attrs }: TransposeArgs): tf.TensorInfo | null {
  const { x } = inputs;
  if (x.dtype !== 'float32' && x.dtype !== 'int32') return null;
  // drop size-1 axes: they do not move data
  const shape: number[] = [];
  const keep: number[] = [];
  x.shape.forEach((d, i) => {
    if (d !== 1) {
      keep.push(i);
      shape.push(d);
    }
  });
  const perm = attrs.perm.filter((p) => x.shape[p] !== 1).map((p) => keep.indexOf(p));
  const outShape = attrs.perm.map((p) => x.shape[p]!);
  const n = shape.length;
  if (n < 2) return null;
  const size = shape.reduce((a, b) => a * b, 1);

  const lastKept = perm[n - 1] === n - 1;
  const swapLast =
    perm[n - 1] === n - 2 && perm[n - 2] === n - 1 && perm.slice(0, n - 2).every((p, i) => p === i);
  if (!lastKept && !swapLast) return null;
  if (lastKept && shape[n - 1]! < 4) return null;

  const out = backend.makeOutput(outShape, x.dtype);
  // views are taken after makeOutput, which may have grown (and so moved) the heap
  const heap = backend.wasm.HEAPU8.buffer as ArrayBuffer;
  const Arr = x.dtype === 'float32' ? Float32Array : Int32Array;
  const src = new Arr(heap, offsetOf(backend, x), size);
  const dst = new Arr(heap, offsetOf(backend, out), size);

  if (swapLast) {
    if (x.dtype === 'float32') {
      transposePlanes(src as Float32Array, dst as Float32Array, size, shape[n - 2]!, shape[n - 1]!);
    } else {
      transposePlanes(src as Int32Array, dst as Int32Array, size, shape[n - 2]!, shape[n - 1]!);
    }
    return out;
  }

  // the last axis stays: move rows of `inner` contiguous values
  const inner = shape[n - 1]!;
  const outer = shape.slice(0, n - 1);
  const permOuter = perm.slice(0, n - 1);
  const srcStrides = new Array<number>(n - 1);
  let st = inner;
  for (let i = n - 2; i >= 0; i--) {
    srcStrides[i] = st;
    st *= outer[i]!;
  }
  const dstShape = permOuter.map((p) => outer[p]!);
  const stepSrc = permOuter.map((p) => srcStrides[p]!);
  const idx = new Array<number>(n - 1).fill(0);
  const rowsTotal = size / inner;
  let srcOff = 0;
  for (let r = 0; r < rowsTotal; r++) {
    const d = r * inner;
    if (inner >= 256) dst.set(src.subarray(srcOff, srcOff + inner), d);
    else for (let k = 0; k < inner; k++) dst[d + k] = src[srcOff + k]!;
    // odometer over the output's row index, updating the source offset incrementally
    for (let a = n - 2; a >= 0; a--) {
      idx[a]! += 1;
      srcOff += stepSrc[a]!;
      if (idx[a]! < dstShape[a]!) break;
      srcOff -= stepSrc[a]! * dstShape[a]!;
      idx[a] = 0;
    }
  }
  return out;
}

/** Transposes each rows×cols plane of src into dst, in TILE×TILE blocks. */
function transposePlanes<A extends Float32Array | Int32Array>(
  src: A,
  dst: A,
  size: number,
  rows: number,
  cols: number,
): void {
  const plane = rows * cols;
  for (let b = 0; b < size; b += plane) {
    for (let i0 = 0; i0 < rows; i0 += TILE) {
      const i1 = Math.min(i0 + TILE, rows);
      for (let j0 = 0; j0 < cols; j0 += TILE) {
        const j1 = Math.min(j0 + TILE, cols);
        for (let i = i0; i < i1; i++) {
          const s = b + i * cols;
          let d = b + j0 * rows + i;
          for (let j = j0; j < j1; j++, d += rows) dst[d] = src[s + j]!;
        }
      }
    }
  }
}

/**
 * Σ over the rows of x [N, C] → [C], on the wasm heap: a bias's gradient. The stock reduction over
 * axis 0 transposes first, and ones[1, N] · x is a matmul call for very little work.
 * wasm backend only.
 */
export function columnSum(x: tf.Tensor2D): tf.Tensor1D {
  const be = tf.backend() as unknown as HeapBackend;
  const [n, c] = x.shape;
  const info = be.makeOutput([c], 'float32');
  const src = heapFloats(be, x);
  const dst = heapFloats(be, info);
  const acc = new Float64Array(c);
  for (let i = 0; i < n; i++) {
    const row = i * c;
    for (let j = 0; j < c; j++) acc[j]! += src[row + j]!;
  }
  dst.set(acc);
  return tensorOf<tf.Tensor1D>(info);
}
