/**
 * What the single-token decoder (./wasmDecoder.ts) runs on: a memory holding its buffers, views
 * of the small parameters (LayerNorms, biases, W_p), and the three places the big matrices are
 * used — a token's embedding row, the blocks' linear maps, and the LM head. Two memories:
 *
 *  - XnnpackMemory (./xnnpackMemory.ts): float32 weights as tf variables on tfjs-wasm's heap,
 *    the linear maps through XNNPACK;
 *  - StoreMemory (here): f16/q8 weights in the kernels' own wasm memory (../weights/store.ts),
 *    the buffers there too, so the kernels read their input and write their output in place.
 *    It needs no tfjs backend at all, and never makes a float32 copy of a weight matrix.
 */
import type { GPT } from './gpt';
import { matmulScratchBytes, type WeightStore } from '../weights/store';

/** A float32 buffer of the decoder's: `size` values from byte offset `off` of the memory. */
export interface DecoderBuf {
  off: number;
  size: number;
}

export interface DecoderMemory {
  /** The memory the buffers and parameter views are in (it changes when the memory grows). */
  buffer(): ArrayBuffer;
  /** A zeroed buffer of `size` floats, freed by dispose(). */
  alloc(size: number): DecoderBuf;
  /** Room for linear maps of up to `rows` rows and `k` inputs: called once, before any use. */
  reserve(rows: number, k: number): void;
  /** Whether the parameter views must be taken again (the weights were replaced). */
  paramsChanged(): boolean;
  /** A small parameter (LayerNorm, bias, W_p) as a view, valid until buffer() changes. */
  param(name: string): Float32Array;
  /** out[rows][n] = a[rows][k] · W for the linear weight named `weight` (Conv1D [k, n]). */
  linear(a: DecoderBuf, rows: number, k: number, weight: string, n: number, out: DecoderBuf): void;
  /** W_e[id] (C values) into `out` from `off`. */
  embedding(id: number, out: Float32Array, off: number): void;
  /** out[rows][V] = a[rows][C] · W_eᵀ. */
  logits(a: DecoderBuf, rows: number, out: DecoderBuf): void;
  dispose(): void;
}

/** Store-held weights in the kernels' memory, the decoder's buffers beside them. */
export class StoreMemory implements DecoderMemory {
  private readonly bufs: number[] = [];
  private scratch = 0;
  private row = 0;
  private readonly views = new Map<string, Float32Array>();
  private viewsOf: ArrayBuffer | null = null;
  /** The small parameters as float32, copied once (they are a few MB even for gpt2-xl). */
  private readonly small = new Map<string, { at: number; size: number }>();

  constructor(
    private readonly model: GPT,
    private readonly store: WeightStore,
  ) {
    for (const [name, values] of store.small) {
      const at = this.store.heap.alloc(values.byteLength);
      this.store.heap.f32(at, values.length).set(values);
      this.small.set(name, { at, size: values.length });
    }
  }

  buffer(): ArrayBuffer {
    return this.store.heap.memory;
  }

  alloc(size: number): DecoderBuf {
    const at = this.store.heap.alloc(size * 4);
    this.bufs.push(at);
    this.store.heap.f32(at, size).fill(0);
    return { off: at, size };
  }

  paramsChanged(): boolean {
    return false; // a store is never trained
  }

  param(name: string): Float32Array {
    const heap = this.buffer();
    if (this.viewsOf !== heap) {
      this.views.clear();
      this.viewsOf = heap;
    }
    let v = this.views.get(name);
    if (!v) {
      const p = this.small.get(name);
      if (!p) throw new Error(`WasmDecoder: no parameter ${name}`);
      v = new Float32Array(heap, p.at, p.size);
      this.views.set(name, v);
    }
    return v;
  }

  /** Allocated here once, so that no later call grows the memory under the decoder's views. */
  reserve(rows: number, k: number): void {
    this.scratch = this.store.heap.alloc(matmulScratchBytes(this.store.format, rows, k));
    this.row = this.store.heap.alloc(this.model.config.nEmbd * 4);
  }

  linear(a: DecoderBuf, rows: number, k: number, weight: string, n: number, out: DecoderBuf) {
    const m = this.store.matrix(weight);
    if (m.k !== k || m.n !== n) throw new Error(`WasmDecoder: ${weight} is not [${k}, ${n}]`);
    this.store.matmul(weight, a.off, rows, out.off, this.scratch);
  }

  embedding(id: number, out: Float32Array, off: number): void {
    this.store.dequantizeRows('wte.weight', id, 1, this.row);
    out.set(this.store.heap.f32(this.row, this.model.config.nEmbd), off);
  }

  logits(a: DecoderBuf, rows: number, out: DecoderBuf): void {
    this.store.matmul('wte.weight', a.off, rows, out.off, this.scratch);
  }

  dispose(): void {
    for (const at of this.bufs) this.store.heap.release(at);
    for (const p of this.small.values()) this.store.heap.release(p.at);
    if (this.scratch) this.store.heap.release(this.scratch);
    if (this.row) this.store.heap.release(this.row);
    this.bufs.length = 0;
    this.small.clear();
    this.scratch = this.row = 0;
  }
}
