/**
 * The decoder's memory for float32 weights on the wasm backend (see ./decoderMemory.ts): its
 * buffers are tensors on tfjs-wasm's heap, and each linear map is one XNNPACK matmul called
 * straight into tfjs-wasm's module through the same entry point as its _FusedMatMul kernel (so
 * the same cached operators with packed weights).
 *
 * Writing into a tensor's memory is only safe because no one else can see it: every buffer here
 * is created by the decoder, never handed out, and never passed to a matmul as its weight operand
 * (tfjs-wasm caches the packed weights of a matmul's `b` by tensor id, so mutable memory there
 * would be read stale). The parameters are read, never written, and looked up again whenever a
 * variable's buffer changes (a training step assigns new ones).
 */
import * as tf from '../tf';
import type { DecoderBuf, DecoderMemory } from './decoderMemory';
import type { GPT } from './gpt';

/** tfjs-wasm's BackendWasm, as far as it is used here. */
export interface WasmBackend {
  dataIdMap: { get(dataId: object): { id: number; memoryOffset: number } | undefined };
  wasm: {
    HEAPU8: Uint8Array;
    cwrap(name: string, ret: null, args: string[]): (...args: unknown[]) => void;
  };
}

/** A buffer owned by the decoder: the tensor (for disposal) and its backend id. */
interface Buf extends DecoderBuf {
  t: tf.Tensor;
  id: number;
}

/**
 * The wasm module's matmul, the function behind tfjs-wasm's _FusedMatMul kernel, called with
 * the shapes as heap pointers (an all-number cwrap is the raw export, no per-call marshalling).
 */
type MatMul = (
  aId: number,
  aShapePtr: number,
  aRank: number,
  bId: number,
  bShapePtr: number,
  bRank: number,
  transposeA: number,
  transposeB: number,
  activation: number,
  biasId: number,
  preluId: number,
  leakyAlpha: number,
  outId: number,
) => void;

function wasmMatMul(be: WasmBackend): MatMul {
  return be.wasm.cwrap('_FusedMatMul', null, new Array<string>(13).fill('number')) as MatMul;
}

/** The active backend as tfjs-wasm, or null when it is not (or not the build this knows). */
export function activeWasmBackend(): WasmBackend | null {
  if (tf.getBackend() !== 'wasm') return null;
  const be = tf.backend() as unknown as Partial<WasmBackend>;
  if (typeof be.wasm?.cwrap !== 'function' || typeof be.dataIdMap?.get !== 'function') return null;
  if (typeof wasmMatMul(be as WasmBackend) !== 'function') return null;
  return be as WasmBackend;
}

export class XnnpackMemory implements DecoderMemory {
  private readonly mm: MatMul;
  private readonly bufs: Buf[] = [];
  /** Six int32s: the matmul operands' shapes, passed to the wasm module by pointer. */
  private readonly shapes: Buf;
  /** W_eᵀ [C, V] for the head (XNNPACK wants the weight operand as [in, out]), per W_e buffer. */
  private wteT: { of: object; buf: Buf } | null = null;
  private paramIds: object[] = [];
  private views = new Map<string, Float32Array>();
  private viewsOf: ArrayBuffer | null = null;

  constructor(
    private readonly model: GPT,
    private readonly be: WasmBackend,
  ) {
    this.mm = wasmMatMul(be);
    this.shapes = this.alloc(6) as Buf;
  }

  buffer(): ArrayBuffer {
    return this.be.wasm.HEAPU8.buffer as ArrayBuffer;
  }

  alloc(size: number): Buf {
    const t = tf.keep(tf.zeros([size]));
    const d = this.be.dataIdMap.get(t.dataId);
    if (!d) throw new Error('WasmDecoder: buffer not on the wasm heap');
    const buf = { t, id: d.id, off: d.memoryOffset, size };
    this.bufs.push(buf);
    return buf;
  }

  reserve(): void {}

  paramsChanged(): boolean {
    const vars = this.model.variables;
    let same = vars.length === this.paramIds.length;
    for (let i = 0; i < vars.length; i++) {
      const v = vars[i]!;
      if (v.isDisposed) throw new Error('WasmDecoder: the model has been disposed');
      if (same && v.dataId !== this.paramIds[i]) same = false;
    }
    if (same) return false;
    this.paramIds = vars.map((v) => v.dataId);
    this.viewsOf = null;
    return true;
  }

  param(name: string): Float32Array {
    const heap = this.buffer();
    if (this.viewsOf !== heap) {
      this.views = new Map();
      this.viewsOf = heap;
    }
    let v = this.views.get(name);
    if (!v) {
      const t = this.model.p(name);
      const d = this.be.dataIdMap.get(t.dataId);
      if (!d) throw new Error(`WasmDecoder: parameter ${name} is not on the wasm heap`);
      v = new Float32Array(heap, d.memoryOffset, t.size);
      this.views.set(name, v);
    }
    return v;
  }

  /** out[rows, n] = a[rows, k] · W[k, n] (W a parameter or W_eᵀ: never a decoder buffer). */
  private matmul(a: DecoderBuf, rows: number, k: number, wId: number, n: number, out: DecoderBuf) {
    const s = new Int32Array(this.buffer(), this.shapes.off, 6);
    s.set([1, rows, k, 1, k, n]);
    const ptr = this.shapes.off;
    this.mm((a as Buf).id, ptr, 3, wId, ptr + 12, 3, 0, 0, 0, 0, 0, 0, (out as Buf).id);
  }

  linear(a: DecoderBuf, rows: number, k: number, weight: string, n: number, out: DecoderBuf) {
    const d = this.be.dataIdMap.get(this.model.p(weight).dataId);
    if (!d) throw new Error(`WasmDecoder: parameter ${weight} is not on the wasm heap`);
    // the first call with a weight creates its operator (packing the weights): the heap may grow
    this.matmul(a, rows, k, d.id, n, out);
  }

  embedding(id: number, out: Float32Array, off: number): void {
    const C = this.model.config.nEmbd;
    out.set(this.param('wte.weight').subarray(id * C, (id + 1) * C), off);
  }

  logits(a: DecoderBuf, rows: number, out: DecoderBuf): void {
    const { nEmbd: C, vocabSize: V } = this.model.config;
    this.matmul(a, rows, C, this.headWeightId(), V, out);
  }

  /** The backend id of W_eᵀ, remade when W_e's buffer changes. */
  private headWeightId(): number {
    const wte = this.model.p('wte.weight');
    if (this.wteT?.of !== wte.dataId) {
      if (this.wteT) this.wteT.buf.t.dispose(); // also drops its cached operator
      const t = tf.keep(tf.tidy(() => tf.transpose(wte)));
      const d = this.be.dataIdMap.get(t.dataId)!;
      this.wteT = { of: wte.dataId, buf: { t, id: d.id, off: d.memoryOffset, size: t.size } };
    }
    return this.wteT.buf.id;
  }

  /** A tensor's values as a view of the heap (the generic prefill's keys and values). */
  read(t: tf.Tensor): Float32Array {
    const d = this.be.dataIdMap.get(t.dataId);
    if (!d) throw new Error('WasmDecoder: tensor not on the wasm heap');
    return new Float32Array(this.buffer(), d.memoryOffset, t.size);
  }

  dispose(): void {
    const all = this.bufs.map((b) => b.t);
    if (this.wteT) all.push(this.wteT.buf.t);
    tf.dispose(all);
    this.bufs.length = 0;
    this.wteT = null;
    this.views.clear();
  }
}
