/**
 * Fast single-sequence decoding on the wasm backend (inference only, batch 1).
 *
 * Through tfjs ops one cached token of a small GPT dispatches ~200 kernels, and at these sizes
 * the dispatch, not the math, is the cost. Here a token runs as one XNNPACK matmul per linear
 * layer (4 per block, plus the LM head), called straight into tfjs-wasm's module through the same
 * entry point as its _FusedMatMul kernel (so the same cached operators with packed weights), and
 * everything else — embedding, LayerNorm, biases, GELU, attention over the cache, residual adds —
 * as plain loops over Float32Array views of the wasm heap.
 *
 * The KV cache is one buffer [nLayer, 2 (k, v), nHead, blockSize, headSize] allocated when the
 * decoder is made and written in place, a row per token: no Concat, nothing quadratic. Writing
 * into a tensor's memory is only safe because no one else can see it: every buffer here is
 * created by the decoder, never handed out (results are copies), and never passed to a matmul as
 * its weight operand (tfjs-wasm caches the packed weights of a matmul's `b` by tensor id, so
 * mutable memory there would be read stale). The parameters are read, never written, and looked
 * up again whenever a variable's buffer changes (a training step assigns new ones).
 *
 * A short prompt runs in chunks of rows through the same code (causal attention within a chunk);
 * a long one goes through the generic GPT.forwardCached, where XNNPACK's batched ops win, and its
 * keys and values are copied into the cache.
 *
 * The math is the block's (./block.ts), specialised to one sequence; the parameters are the
 * model's tree (./params.ts) with each leaf seen on the heap.
 */
import * as tf from '../tf';
import type { GPT } from './gpt';
import { paramTree, type GPTParams } from './params';
import { addRows, attendRows, biasGeluRows, layerNormRows } from './rowKernels';

/** tfjs-wasm's BackendWasm, as far as it is used here. */
interface WasmBackend {
  dataIdMap: { get(dataId: object): { id: number; memoryOffset: number } | undefined };
  wasm: {
    HEAPU8: Uint8Array;
    cwrap(name: string, ret: null, args: string[]): (...args: unknown[]) => void;
  };
}

/** A buffer owned by the decoder: the tensor (for disposal), its backend id and heap offset. */
interface Buf {
  t: tf.Tensor;
  id: number;
  off: number;
  size: number;
}

/** A parameter on the heap: its backend id (a matmul's weight operand) and a view of its values. */
interface HeapParam {
  id: number;
  view: Float32Array;
}

export interface WasmDecoderOptions {
  /** Rows per prompt chunk (default min(64, blockSize)). */
  chunkRows?: number;
  /**
   * A prompt of n tokens runs through the generic forward (GPT.forwardCached) instead of the JS
   * loops when nLayer·nEmbd·n·(n+1), about its attention's multiply-adds, exceeds this (default
   * 2^23). Measured here: the loops win for short prompts, where tfjs's per-op dispatch dominates
   * (A: 32 tokens 7 ms vs 11 ms), XNNPACK's batched ops for long ones (B: 128 tokens 187 ms vs
   * 138 ms).
   */
  jsAttentionLimit?: number;
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

/**
 * KV-cache decoding of one sequence on the wasm backend. Make one per generation, feed it a
 * prompt with prefill(), then one token at a time with step(); dispose() frees its buffers.
 */
export class WasmDecoder {
  /** Tokens in the cache. */
  length = 0;
  private readonly model: GPT;
  private readonly be: WasmBackend;
  private readonly mm: MatMul;
  private readonly rowsMax: number;
  private readonly jsAttentionLimit: number;
  private readonly kv: Buf;
  private readonly x: Buf;
  private readonly h: Buf;
  private readonly qkv: Buf;
  private readonly y: Buf;
  private readonly a: Buf;
  private readonly f: Buf;
  private readonly logits: Buf;
  /** Six int32s: the matmul operands' shapes, passed to the wasm module by pointer. */
  private readonly shapes: Buf;
  private shapeView: Int32Array | null = null;
  private readonly scratch: Float64Array;
  /** W_eᵀ [C, V] for the head (XNNPACK wants the weight operand as [in, out]), per W_e buffer. */
  private wteT: { of: object; buf: Buf } | null = null;
  /** The heap buffer the views below were made on, and the parameter buffers they show. */
  private heap: ArrayBuffer | null = null;
  private paramIds: object[] = [];
  private params: GPTParams<HeapParam> | null = null;
  private views: Record<
    'kv' | 'x' | 'h' | 'qkv' | 'y' | 'a' | 'f' | 'logits',
    Float32Array
  > | null = null;
  private disposed = false;

  /**
   * A decoder for `model`, or null when it cannot run here: the active backend is not wasm (or
   * not the tfjs-wasm this was written against), or the parameters are not on its heap.
   */
  static create(model: GPT, opts: WasmDecoderOptions = {}): WasmDecoder | null {
    if (tf.getBackend() !== 'wasm') return null;
    const be = tf.backend() as unknown as Partial<WasmBackend>;
    if (typeof be.wasm?.cwrap !== 'function' || typeof be.dataIdMap?.get !== 'function') {
      return null;
    }
    if (typeof wasmMatMul(be as WasmBackend) !== 'function') return null;
    if (model.variables.some((v) => v.isDisposed || !be.dataIdMap!.get(v.dataId))) return null;
    return new WasmDecoder(model, opts);
  }

  private constructor(model: GPT, opts: WasmDecoderOptions) {
    this.model = model;
    this.be = tf.backend() as unknown as WasmBackend;
    this.mm = wasmMatMul(this.be);
    const { nLayer, nEmbd: C, blockSize: T, vocabSize: V } = model.config;
    this.rowsMax = Math.max(1, Math.min(opts.chunkRows ?? 64, T));
    this.jsAttentionLimit = opts.jsAttentionLimit ?? 2 ** 23;
    const R = this.rowsMax;
    this.kv = this.alloc(nLayer * 2 * T * C);
    this.x = this.alloc(R * C);
    this.h = this.alloc(R * C);
    this.qkv = this.alloc(R * 3 * C);
    this.y = this.alloc(R * C);
    this.a = this.alloc(R * C);
    this.f = this.alloc(R * 4 * C);
    this.logits = this.alloc(V);
    this.shapes = this.alloc(6);
    this.scratch = new Float64Array(T);
  }

  private alloc(size: number): Buf {
    const t = tf.keep(tf.zeros([size]));
    const d = this.be.dataIdMap.get(t.dataId);
    if (!d) throw new Error('WasmDecoder: buffer not on the wasm heap');
    return { t, id: d.id, off: d.memoryOffset, size };
  }

  private view(b: Buf): Float32Array {
    return new Float32Array(this.heap!, b.off, b.size);
  }

  /** Views of the decoder's buffers and the parameters, remade after heap growth or new weights. */
  private sync(): void {
    if (this.disposed) throw new Error('WasmDecoder: used after dispose()');
    const heap = this.be.wasm.HEAPU8.buffer as ArrayBuffer;
    const vars = this.model.variables;
    let fresh = heap === this.heap && vars.length === this.paramIds.length;
    for (let i = 0; i < vars.length; i++) {
      const v = vars[i]!;
      if (v.isDisposed) throw new Error('WasmDecoder: the model has been disposed');
      if (fresh && v.dataId !== this.paramIds[i]) fresh = false;
    }
    if (fresh) return;
    this.heap = heap;
    this.views = {
      kv: this.view(this.kv),
      x: this.view(this.x),
      h: this.view(this.h),
      qkv: this.view(this.qkv),
      y: this.view(this.y),
      a: this.view(this.a),
      f: this.view(this.f),
      logits: this.view(this.logits),
    };
    this.shapeView = new Int32Array(heap, this.shapes.off, 6);
    this.paramIds = vars.map((v) => v.dataId);
    this.params = this.readParams(heap);
  }

  private readParams(heap: ArrayBuffer): GPTParams<HeapParam> {
    return paramTree(this.model.config, (name) => {
      const t = this.model.p(name);
      const d = this.be.dataIdMap.get(t.dataId);
      if (!d) throw new Error(`WasmDecoder: parameter ${name} is not on the wasm heap`);
      return { id: d.id, view: new Float32Array(heap, d.memoryOffset, t.size) };
    });
  }

  /** out[rows, n] = a[rows, k] · W[k, n] (W a parameter or W_eᵀ: never a decoder buffer). */
  private matmul(a: Buf, rows: number, k: number, wId: number, n: number, out: Buf): void {
    const s = this.shapeView!;
    s[0] = 1;
    s[1] = rows;
    s[2] = k;
    s[3] = 1;
    s[4] = k;
    s[5] = n;
    const ptr = this.shapes.off;
    this.mm(a.id, ptr, 3, wId, ptr + 12, 3, 0, 0, 0, 0, 0, 0, out.id);
    // the first call with a weight creates its operator (packing the weights): the heap may grow
    if (this.be.wasm.HEAPU8.buffer !== this.heap) this.sync();
  }

  /** The backend id of W_eᵀ, remade when W_e's buffer changes. */
  private headWeightId(): number {
    const wte = this.model.p('wte.weight');
    if (this.wteT?.of !== wte.dataId) {
      if (this.wteT) this.wteT.buf.t.dispose(); // also drops its cached operator
      const t = tf.keep(tf.tidy(() => tf.transpose(wte)));
      const d = this.be.dataIdMap.get(t.dataId)!;
      this.wteT = { of: wte.dataId, buf: { t, id: d.id, off: d.memoryOffset, size: t.size } };
      this.sync();
    }
    return this.wteT.buf.id;
  }

  /**
   * Resets the cache to `ids` (positions 0 … n−1, n ≤ blockSize) and returns the logits [V] of
   * the next token after them.
   */
  prefill(ids: readonly number[]): Float32Array {
    const { blockSize, nLayer, nEmbd: C } = this.model.config;
    this.checkIds(ids);
    if (ids.length === 0) throw new Error('WasmDecoder.prefill: no tokens');
    if (ids.length > blockSize) {
      throw new Error(`sequence of ${ids.length} tokens exceeds the context of ${blockSize}`);
    }
    this.length = 0;
    const n = ids.length;
    if (nLayer * C * n * (n + 1) > this.jsAttentionLimit) return this.prefillGeneric(ids);
    let out: Float32Array | null = null;
    for (let s = 0; s < n; s += this.rowsMax) {
      out = this.run(ids.slice(s, Math.min(n, s + this.rowsMax)));
    }
    return out!;
  }

  /** Appends one token and returns the logits [V] of the next. */
  step(id: number): Float32Array {
    this.checkIds([id]);
    if (this.length === 0) throw new Error('WasmDecoder.step: prefill first');
    return this.run([id]);
  }

  private checkIds(ids: readonly number[]): void {
    if (this.disposed) throw new Error('WasmDecoder: used after dispose()');
    const V = this.model.config.vocabSize;
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= V)
        throw new Error(`token id ${id} out of range`);
    }
  }

  /** Runs `ids` at positions length … length+n−1 (n ≤ rowsMax); the last row's logits. */
  private run(ids: readonly number[]): Float32Array {
    const cfg = this.model.config;
    const { nEmbd: C, nHead, blockSize: T, nLayer, vocabSize: V, layerNormEpsilon: eps } = cfg;
    const hs = C / nHead;
    const M = ids.length;
    const past = this.length;
    if (past + M > T) throw new Error(`sequence of ${past + M} tokens exceeds the context of ${T}`);
    const headId = this.headWeightId();
    this.sync();
    // the views (and the parameters' views) are re-read after each matmul, which may grow the heap
    let v = this.views!;

    // x = W_e[ids] + W_p[positions]
    const wte = this.params!.wte.weight.view;
    const wpe = this.params!.wpe.weight.view;
    for (let r = 0; r < M; r++) {
      const to = ids[r]! * C;
      const po = (past + r) * C;
      for (let i = 0; i < C; i++) v.x[r * C + i] = wte[to + i]! + wpe[po + i]!;
    }
    for (let l = 0; l < nLayer; l++) {
      // qkv = LN_1(x) W_qkv + b_qkv
      let b = this.params!.h[l]!;
      layerNormRows(v.x, v.h, M, C, b.ln_1.weight.view, b.ln_1.bias.view, eps);
      this.matmul(this.h, M, C, b.attn.c_attn.weight.id, 3 * C, this.qkv);
      v = this.views!;
      b = this.params!.h[l]!;
      const { qkv, kv } = v;
      const bqkv = b.attn.c_attn.bias.view;
      // the new keys and values into the cache, head-major: [l][k|v][head][position][hs]
      const kOff = l * 2 * T * C;
      const vOff = kOff + T * C;
      for (let r = 0; r < M; r++) {
        const ro = r * 3 * C;
        for (let i = 0; i < 3 * C; i++) qkv[ro + i] = qkv[ro + i]! + bqkv[i]!;
        const pos = past + r;
        for (let h = 0; h < nHead; h++) {
          const src = ro + C + h * hs;
          const dst = h * T * hs + pos * hs;
          for (let d = 0; d < hs; d++) {
            kv[kOff + dst + d] = qkv[src + d]!;
            kv[vOff + dst + d] = qkv[src + C + d]!;
          }
        }
      }
      // x += attn(q, cache) W_o + b_o; h = LN_2(x)
      attendRows(qkv, 0, 3 * C, kv, kOff, vOff, v.y, M, past, nHead, hs, T, this.scratch);
      this.matmul(this.y, M, C, b.attn.c_proj.weight.id, C, this.a);
      v = this.views!;
      b = this.params!.h[l]!;
      addRows(v.x, v.a, b.attn.c_proj.bias.view, M, C);
      layerNormRows(v.x, v.h, M, C, b.ln_2.weight.view, b.ln_2.bias.view, eps);
      // x += GELU(h W_fc + b_fc) W_proj + b_proj
      this.matmul(this.h, M, C, b.mlp.c_fc.weight.id, 4 * C, this.f);
      v = this.views!;
      b = this.params!.h[l]!;
      biasGeluRows(v.f, M, 4 * C, b.mlp.c_fc.bias.view, cfg.activation);
      this.matmul(this.f, M, 4 * C, b.mlp.c_proj.weight.id, C, this.a);
      v = this.views!;
      b = this.params!.h[l]!;
      addRows(v.x, v.a, b.mlp.c_proj.bias.view, M, C);
    }
    this.length = past + M;
    // logits = LN_f(x) W_eᵀ, for the last row only
    const lnf = this.params!.ln_f;
    layerNormRows(v.x, v.h, 1, C, lnf.weight.view, lnf.bias.view, eps, (M - 1) * C, 0);
    this.matmul(this.h, 1, C, headId, V, this.logits);
    return this.views!.logits.slice();
  }

  /** prefill() through GPT.forwardCached, its keys and values copied into the cache. */
  private prefillGeneric(ids: readonly number[]): Float32Array {
    const { nLayer, nHead, nEmbd: C, blockSize: T } = this.model.config;
    const hs = C / nHead;
    const n = ids.length;
    const input = tf.tensor2d([...ids], [1, n], 'int32');
    const out = this.model.forwardCached(input, null, true);
    input.dispose();
    try {
      this.sync();
      const heap = this.heap!;
      const kv = this.views!.kv;
      const read = (t: tf.Tensor): Float32Array => {
        const d = this.be.dataIdMap.get(t.dataId);
        if (!d) throw new Error('WasmDecoder: tensor not on the wasm heap');
        return new Float32Array(heap, d.memoryOffset, t.size);
      };
      for (let l = 0; l < nLayer; l++) {
        const k = read(out.cache.k[l]!); // [nHead, n, hs]
        const v = read(out.cache.v[l]!);
        for (let h = 0; h < nHead; h++) {
          const dst = l * 2 * T * C + h * T * hs;
          kv.set(k.subarray(h * n * hs, (h + 1) * n * hs), dst);
          kv.set(v.subarray(h * n * hs, (h + 1) * n * hs), dst + T * C);
        }
      }
      this.length = n;
      return read(out.logits).slice();
    } finally {
      tf.dispose([out.logits, ...out.cache.k, ...out.cache.v]);
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const bufs = [
      this.kv,
      this.x,
      this.h,
      this.qkv,
      this.y,
      this.a,
      this.f,
      this.logits,
      this.shapes,
    ];
    if (this.wteT) bufs.push(this.wteT.buf);
    tf.dispose(bufs.map((b) => b.t));
    this.views = null;
    this.params = null;
  }
}
