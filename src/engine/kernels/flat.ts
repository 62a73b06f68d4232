/**
 * ./flat.c in a memory of its own, for the training workers: the all-reduce's sums and squares,
 * and AdamW, over chunks of the shared buffers copied in and out (a memcpy each way is cheaper
 * than the scalar JavaScript loops it replaces: ~10× on train-B's 10M parameters).
 */
import { FLAT_WASM_BASE64 } from './flatWasm';
import { compileWasm, fromBase64, instantiateWasm } from './heap';

interface FlatExports {
  memory: { buffer: ArrayBuffer; grow(pages: number): number };
  __heap_base: { value: number };
  add_into(acc: number, x: number, n: number): void;
  sum_squares(x: number, n: number): number;
  adamw(
    p: number,
    g: number,
    m: number,
    v: number,
    n: number,
    clip: number,
    b1: number,
    c1: number,
    b2: number,
    c2: number,
    eps: number,
    wd: number,
    lr: number,
    ibc1: number,
    ibc2: number,
  ): void;
}

/** Elements per chunk copied in at a time. */
export const CHUNK = 1 << 16;

let module: object | null = null;

/** AdamW's hyperparameters for one update (rounded to float32 on the way in, as tfjs's scalars). */
export interface AdamWStep {
  clip: number;
  beta1: number;
  beta2: number;
  eps: number;
  wd: number;
  lr: number;
  /** 1 − β₁ᵗ and 1 − β₂ᵗ. */
  bc1: number;
  bc2: number;
}

/**
 * One instance holding AdamW's moments m and v for `size` elements, and three chunk buffers. The
 * memory is sized up front and never grows after, so the views stay valid.
 */
export class FlatKernels {
  private readonly k: FlatExports;
  readonly m: Float32Array;
  readonly v: Float32Array;
  private readonly mPtr: number;
  private readonly vPtr: number;
  private readonly chunks: [number, number];

  constructor(size: number) {
    module ??= compileWasm(fromBase64(FLAT_WASM_BASE64));
    this.k = instantiateWasm<FlatExports>(module);
    const base = (this.k.__heap_base.value + 15) & ~15;
    const bytes = base + 4 * (2 * size + 2 * CHUNK);
    const pages = Math.ceil(bytes / 65536) - this.k.memory.buffer.byteLength / 65536;
    if (pages > 0 && this.k.memory.grow(pages) < 0) {
      throw new Error(`could not grow the optimizer's wasm memory to ${bytes} bytes`);
    }
    this.mPtr = base;
    this.vPtr = base + 4 * size;
    this.m = new Float32Array(this.k.memory.buffer, this.mPtr, size);
    this.v = new Float32Array(this.k.memory.buffer, this.vPtr, size);
    const c = base + 8 * size;
    this.chunks = [c, c + 4 * CHUNK];
  }

  private view(i: 0 | 1, n: number): Float32Array {
    return new Float32Array(this.k.memory.buffer, this.chunks[i], n);
  }

  /**
   * into[lo, hi) ← Σ_k regions[k][lo, hi), added in k order; returns Σ of the sums' squares (in
   * double precision, over the float32 sums).
   */
  sumRegions(regions: Float32Array[], lo: number, hi: number, into: Float32Array): number {
    let squares = 0;
    for (let c = lo; c < hi; c += CHUNK) {
      const n = Math.min(CHUNK, hi - c);
      const acc = this.view(0, n);
      acc.set(regions[0]!.subarray(c, c + n));
      for (let k = 1; k < regions.length; k++) {
        this.view(1, n).set(regions[k]!.subarray(c, c + n));
        this.k.add_into(this.chunks[0], this.chunks[1], n);
      }
      squares += this.k.sum_squares(this.chunks[0], n);
      into.set(acc, c);
    }
    return squares;
  }

  /** AdamW on params[lo, hi) from grad[lo, hi), with the moments' elements from `at` on. */
  adamw(
    params: Float32Array,
    grad: Float32Array,
    lo: number,
    hi: number,
    at: number,
    h: AdamWStep,
  ): void {
    for (let c = lo; c < hi; c += CHUNK) {
      const n = Math.min(CHUNK, hi - c);
      const j = 4 * (at + c - lo);
      this.view(0, n).set(params.subarray(c, c + n));
      this.view(1, n).set(grad.subarray(c, c + n));
      this.k.adamw(
        this.chunks[0],
        this.chunks[1],
        this.mPtr + j,
        this.vPtr + j,
        n,
        h.clip,
        h.beta1,
        1 - h.beta1,
        h.beta2,
        1 - h.beta2,
        h.eps,
        h.wd,
        h.lr,
        1 / h.bc1,
        1 / h.bc2,
      );
      params.set(this.view(0, n), c);
    }
  }
}
