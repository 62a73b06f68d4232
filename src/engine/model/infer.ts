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
 */
import * as tf from '../tf';
import type { GPT } from './gpt';

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

/** One block's parameters: matmul weights by backend id, the small vectors as heap views. */
interface BlockParams {
  wqkv: number;
  wo: number;
  wfc: number;
  wproj: number;
  ln1g: Float32Array;
  ln1b: Float32Array;
  bqkv: Float32Array;
  bo: Float32Array;
  ln2g: Float32Array;
  ln2b: Float32Array;
  bfc: Float32Array;
  bproj: Float32Array;
}

interface Params {
  wte: Float32Array;
  wpe: Float32Array;
  lnfg: Float32Array;
  lnfb: Float32Array;
  blocks: BlockParams[];
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
 * out[r] = LayerNorm(x[r]) for `rows` rows of n values (x̂ g + b, ε inside the root), in double
 * precision. `out` may be `x`.
 */
export function layerNormRows(
  x: Float32Array,
  out: Float32Array,
  rows: number,
  n: number,
  g: Float32Array,
  b: Float32Array,
  eps: number,
  xOff = 0,
  outOff = 0,
): void {
  for (let r = 0; r < rows; r++) {
    const xo = xOff + r * n;
    const oo = outOff + r * n;
    let sum = 0;
    for (let i = 0; i < n; i++) sum += x[xo + i]!;
    const mu = sum / n;
    let sq = 0;
    for (let i = 0; i < n; i++) {
      const d = x[xo + i]! - mu;
      sq += d * d;
    }
    const rstd = 1 / Math.sqrt(sq / n + eps);
    for (let i = 0; i < n; i++) out[oo + i] = (x[xo + i]! - mu) * rstd * g[i]! + b[i]!;
  }
}

/**
 * erfc(z) with a relative error below 1.2e-7 everywhere (Numerical Recipes' Chebyshev fit).
 */
export function erfc(z: number): number {
  const a = Math.abs(z);
  const t = 1 / (1 + 0.5 * a);
  const r =
    t *
    Math.exp(
      -a * a -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t *
                          (0.27886807 +
                            t *
                              (-1.13520398 +
                                t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return z >= 0 ? r : 2 - r;
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/**
 * x[i] = act(x[i] + bias[i mod n]) in place over `rows` rows of n: 'gelu' is the exact
 * x Φ(x) = x erfc(−x/√2) / 2, 'gelu_new' GPT-2's tanh form written as x σ(2u).
 */
export function biasGeluRows(
  x: Float32Array,
  rows: number,
  n: number,
  bias: Float32Array,
  kind: 'gelu' | 'gelu_new',
): void {
  if (kind === 'gelu') {
    for (let r = 0, o = 0; r < rows; r++, o += n) {
      for (let i = 0; i < n; i++) {
        const v = x[o + i]! + bias[i]!;
        x[o + i] = 0.5 * v * erfc(-v * Math.SQRT1_2);
      }
    }
  } else {
    for (let r = 0, o = 0; r < rows; r++, o += n) {
      for (let i = 0; i < n; i++) {
        const v = x[o + i]! + bias[i]!;
        const u2 = 2 * SQRT_2_OVER_PI * (v + 0.044715 * v * v * v);
        x[o + i] = v / (1 + Math.exp(-u2));
      }
    }
  }
}

/**
 * Causal attention of `rows` new queries at positions past … past+rows−1 over a head-major cache.
 * q: rows × C (row r at qOff + r·qStride, head h at + h·hs), already biased; kc, vc: the layer's
 * keys and values, [nHead, blockSize, hs] from kOff / vOff, holding positions 0 … past+rows−1;
 * y: rows × C. Query r sees positions ≤ past + r.
 */
export function attendRows(
  q: Float32Array,
  qOff: number,
  qStride: number,
  cache: Float32Array,
  kOff: number,
  vOff: number,
  y: Float32Array,
  rows: number,
  past: number,
  nHead: number,
  hs: number,
  block: number,
  scratch: Float64Array,
): void {
  const scale = 1 / Math.sqrt(hs);
  const C = nHead * hs;
  const hs4 = hs & ~3;
  // (the loops are unrolled by four with separate sums: about twice as fast in V8)
  for (let r = 0; r < rows; r++) {
    const len = past + r + 1;
    for (let h = 0; h < nHead; h++) {
      const qo = qOff + r * qStride + h * hs;
      const kb = kOff + h * block * hs;
      const vb = vOff + h * block * hs;
      // scores q·k_j / √hs and their max
      let max = -Infinity;
      for (let j = 0, ko = kb; j < len; j++, ko += hs) {
        let s0 = 0;
        let s1 = 0;
        let s2 = 0;
        let s3 = 0;
        let d = 0;
        for (; d < hs4; d += 4) {
          s0 += q[qo + d]! * cache[ko + d]!;
          s1 += q[qo + d + 1]! * cache[ko + d + 1]!;
          s2 += q[qo + d + 2]! * cache[ko + d + 2]!;
          s3 += q[qo + d + 3]! * cache[ko + d + 3]!;
        }
        for (; d < hs; d++) s0 += q[qo + d]! * cache[ko + d]!;
        const s = (s0 + s1 + (s2 + s3)) * scale;
        scratch[j] = s;
        if (s > max) max = s;
      }
      // softmax numerators
      let sum = 0;
      for (let j = 0; j < len; j++) {
        const e = Math.exp(scratch[j]! - max);
        scratch[j] = e;
        sum += e;
      }
      // y = Σ_j p_j v_j, four output dimensions at a time
      const inv = 1 / sum;
      const yo = r * C + h * hs;
      let d = 0;
      for (; d < hs4; d += 4) {
        let a0 = 0;
        let a1 = 0;
        let a2 = 0;
        let a3 = 0;
        for (let j = 0, vo = vb + d; j < len; j++, vo += hs) {
          const p = scratch[j]!;
          a0 += p * cache[vo]!;
          a1 += p * cache[vo + 1]!;
          a2 += p * cache[vo + 2]!;
          a3 += p * cache[vo + 3]!;
        }
        y[yo + d] = a0 * inv;
        y[yo + d + 1] = a1 * inv;
        y[yo + d + 2] = a2 * inv;
        y[yo + d + 3] = a3 * inv;
      }
      for (; d < hs; d++) {
        let a0 = 0;
        for (let j = 0, vo = vb + d; j < len; j++, vo += hs) a0 += scratch[j]! * cache[vo]!;
        y[yo + d] = a0 * inv;
      }
    }
  }
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
  private params: Params | null = null;
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

  private readParams(heap: ArrayBuffer): Params {
    const vec = (name: string): Float32Array => {
      const t = this.model.p(name);
      const d = this.be.dataIdMap.get(t.dataId);
      if (!d) throw new Error(`WasmDecoder: parameter ${name} is not on the wasm heap`);
      return new Float32Array(heap, d.memoryOffset, t.size);
    };
    const id = (name: string): number => {
      const d = this.be.dataIdMap.get(this.model.p(name).dataId);
      if (!d) throw new Error(`WasmDecoder: parameter ${name} is not on the wasm heap`);
      return d.id;
    };
    const blocks: BlockParams[] = [];
    for (let i = 0; i < this.model.config.nLayer; i++) {
      const p = `h.${i}.`;
      blocks.push({
        wqkv: id(p + 'attn.c_attn.weight'),
        wo: id(p + 'attn.c_proj.weight'),
        wfc: id(p + 'mlp.c_fc.weight'),
        wproj: id(p + 'mlp.c_proj.weight'),
        ln1g: vec(p + 'ln_1.weight'),
        ln1b: vec(p + 'ln_1.bias'),
        bqkv: vec(p + 'attn.c_attn.bias'),
        bo: vec(p + 'attn.c_proj.bias'),
        ln2g: vec(p + 'ln_2.weight'),
        ln2b: vec(p + 'ln_2.bias'),
        bfc: vec(p + 'mlp.c_fc.bias'),
        bproj: vec(p + 'mlp.c_proj.bias'),
      });
    }
    return {
      wte: vec('wte.weight'),
      wpe: vec('wpe.weight'),
      lnfg: vec('ln_f.weight'),
      lnfb: vec('ln_f.bias'),
      blocks,
    };
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
    let p = this.params!;

    // x = W_e[ids] + W_p[positions]
    for (let r = 0; r < M; r++) {
      const to = ids[r]! * C;
      const po = (past + r) * C;
      for (let i = 0; i < C; i++) v.x[r * C + i] = p.wte[to + i]! + p.wpe[po + i]!;
    }
    for (let l = 0; l < nLayer; l++) {
      // qkv = LN_1(x) W_qkv + b_qkv
      layerNormRows(v.x, v.h, M, C, p.blocks[l]!.ln1g, p.blocks[l]!.ln1b, eps);
      this.matmul(this.h, M, C, p.blocks[l]!.wqkv, 3 * C, this.qkv);
      v = this.views!;
      p = this.params!;
      const { qkv, kv } = v;
      const bqkv = p.blocks[l]!.bqkv;
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
      this.matmul(this.y, M, C, p.blocks[l]!.wo, C, this.a);
      v = this.views!;
      p = this.params!;
      addRows(v.x, v.a, p.blocks[l]!.bo, M, C);
      layerNormRows(v.x, v.h, M, C, p.blocks[l]!.ln2g, p.blocks[l]!.ln2b, eps);
      // x += GELU(h W_fc + b_fc) W_proj + b_proj
      this.matmul(this.h, M, C, p.blocks[l]!.wfc, 4 * C, this.f);
      v = this.views!;
      p = this.params!;
      biasGeluRows(v.f, M, 4 * C, p.blocks[l]!.bfc, cfg.activation);
      this.matmul(this.f, M, 4 * C, p.blocks[l]!.wproj, C, this.a);
      v = this.views!;
      p = this.params!;
      addRows(v.x, v.a, p.blocks[l]!.bproj, M, C);
    }
    this.length = past + M;
    // logits = LN_f(x) W_eᵀ, for the last row only
    layerNormRows(v.x, v.h, 1, C, p.lnfg, p.lnfb, eps, (M - 1) * C, 0);
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

/** x[r] += a[r] + bias for `rows` rows of n. */
function addRows(x: Float32Array, a: Float32Array, bias: Float32Array, rows: number, n: number) {
  for (let r = 0, o = 0; r < rows; r++, o += n) {
    for (let i = 0; i < n; i++) x[o + i] = x[o + i]! + (a[o + i]! + bias[i]!);
  }
}
