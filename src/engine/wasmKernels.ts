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
 */
import * as tf from '@tensorflow/tfjs-core';

interface HeapBackend {
  dataIdMap: { get(id: object): { memoryOffset: number } };
  incRef(id: object): void;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  wasm: { HEAPU8: Uint8Array };
}

let installed = false;

export function installWasmKernels(): void {
  if (installed) return;
  const stock = tf.getKernel('Transpose', 'wasm');
  if (!stock) return;
  tf.unregisterKernel('Transpose', 'wasm');
  tf.registerKernel({
    ...stock,
    kernelFunc: (args) =>
      fastTranspose(args as unknown as TransposeArgs) ?? (stock.kernelFunc(args) as tf.TensorInfo),
  });

  // Identity shares the buffer (tensors are immutable), as Reshape already does. The stock one
  // copies, and tfjs clones every tensor it saves for a backward pass through Identity: on wasm
  // that doubled the activations kept for the gradient and cost a copy each.
  const identity = tf.getKernel('Identity', 'wasm');
  if (identity) {
    tf.unregisterKernel('Identity', 'wasm');
    tf.registerKernel({
      ...identity,
      kernelFunc: ({ inputs, backend }) => {
        const x = inputs.x as tf.TensorInfo;
        if (x.dtype === 'string') return identity.kernelFunc({ inputs, backend, attrs: {} });
        (backend as unknown as HeapBackend).incRef(x.dataId);
        return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
      },
    });
  }
  installed = true;
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
  const src = new Arr(heap, backend.dataIdMap.get(x.dataId).memoryOffset, size);
  const dst = new Arr(heap, backend.dataIdMap.get(out.dataId).memoryOffset, size);

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
 * Splits x [G, R, C] into `count` tensors [R, C] (or [C, R] with `transpose`) from batch `from`,
 * copying straight between the wasm heap's buffers: the stock Slice/SplitV kernels cost ~0.1 ms
 * each and read the whole input every time, and a transposed BatchMatMul takes a slow path, so the
 * attention's per-head matmuls get their operands this way. wasm backend only.
 */
export function splitBatch(
  x: tf.Tensor3D,
  transpose: boolean,
  from = 0,
  count = x.shape[0] - from,
): tf.Tensor2D[] {
  const be = tf.backend() as unknown as HeapBackend;
  const [g, r, c] = x.shape;
  if (from < 0 || from + count > g)
    throw new Error(`splitBatch: [${from}, ${from + count}) of ${g}`);
  const plane = r * c;
  const infos: tf.TensorInfo[] = [];
  for (let i = 0; i < count; i++) {
    infos.push(be.makeOutput(transpose ? [c, r] : [r, c], 'float32'));
  }
  const heap = be.wasm.HEAPU8.buffer as ArrayBuffer;
  const src = new Float32Array(heap, be.dataIdMap.get(x.dataId).memoryOffset, g * plane);
  infos.forEach((info, i) => {
    const dst = new Float32Array(heap, be.dataIdMap.get(info.dataId).memoryOffset, plane);
    const s = src.subarray((from + i) * plane, (from + i + 1) * plane);
    if (transpose) transposePlanes(s, dst, plane, r, c);
    else dst.set(s);
  });
  const engine = tf.engine() as unknown as {
    makeTensorFromTensorInfo(t: tf.TensorInfo): tf.Tensor2D;
  };
  return infos.map((info) => engine.makeTensorFromTensorInfo(info));
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
  const heap = be.wasm.HEAPU8.buffer as ArrayBuffer;
  const src = new Float32Array(heap, be.dataIdMap.get(x.dataId).memoryOffset, n * c);
  const dst = new Float32Array(heap, be.dataIdMap.get(info.dataId).memoryOffset, c);
  const acc = new Float64Array(c);
  for (let i = 0; i < n; i++) {
    const row = i * c;
    for (let j = 0; j < c; j++) acc[j]! += src[row + j]!;
  }
  dst.set(acc);
  const engine = tf.engine() as unknown as {
    makeTensorFromTensorInfo(t: tf.TensorInfo): tf.Tensor1D;
  };
  return engine.makeTensorFromTensorInfo(info);
}
