/**
 * Fast single-sequence decoding (inference only, batch 1).
 *
 * Through tfjs ops one cached token of a small GPT dispatches ~200 kernels, and at these sizes
 * the dispatch, not the math, is the cost. Here a token runs as one matmul per linear layer (4 per
 * block, plus the LM head) and everything else — embedding, LayerNorm, biases, GELU, attention
 * over the cache, residual adds — as plain loops (./rowKernels.ts) over Float32Array views of the
 * memory the decoder's buffers live in. That memory and the matmuls come from a DecoderMemory
 * (./decoderMemory.ts): float32 weights run on tfjs-wasm's heap through XNNPACK
 * (./xnnpackMemory.ts, the wasm backend only); f16/q8 weights (a model with a WeightStore) run
 * in the store's own wasm memory through its SIMD kernels, on any backend, and no float32 copy
 * of a weight matrix is ever made.
 *
 * The KV cache is one buffer [nLayer, 2 (k, v), nHead, blockSize, headSize] allocated when the
 * decoder is made and written in place, a row per token: no Concat, nothing quadratic. Results
 * are copies; views are taken again whenever the memory grows (a matmul may grow it) or the
 * weights change (a training step assigns new buffers).
 *
 * A short prompt runs in chunks of rows through the same code (causal attention within a chunk);
 * with float32 weights a long one goes through the generic GPT.forwardCached, where XNNPACK's
 * batched ops win, and its keys and values are copied into the cache.
 *
 * The math is the block's (./block.ts), specialised to one sequence, in either layout (GPT-2's
 * pre-LayerNorm with ln_f, GPT-1's post-LayerNorm without); the parameters are the model's, named
 * as in ./params.ts.
 */
import * as tf from '../tf';
import { StoreMemory, type DecoderBuf, type DecoderMemory } from './decoderMemory';
import { isPostLn } from './config';
import type { GPT } from './gpt';
import { addRows, attendRows, biasGeluRows, layerNormRows } from './rowKernels';
import { activeWasmBackend, XnnpackMemory } from './xnnpackMemory';

export interface WasmDecoderOptions {
  /** Rows per prompt chunk (default min(64, blockSize)). */
  chunkRows?: number;
  /**
   * With float32 weights, a prompt of n tokens runs through the generic forward
   * (GPT.forwardCached) instead of the JS loops when nLayer·nEmbd·n·(n+1), about its attention's
   * multiply-adds, exceeds this (default 2^23). Measured here: the loops win for short prompts,
   * where tfjs's per-op dispatch dominates (A: 32 tokens 7 ms vs 11 ms), XNNPACK's batched ops
   * for long ones (B: 128 tokens 187 ms vs 138 ms).
   */
  jsAttentionLimit?: number;
}

type BufName = 'kv' | 'x' | 'h' | 'qkv' | 'y' | 'a' | 'f' | 'logits';

/** One block's small parameters, as views. */
interface LayerViews {
  ln1g: Float32Array;
  ln1b: Float32Array;
  bqkv: Float32Array;
  bo: Float32Array;
  ln2g: Float32Array;
  ln2b: Float32Array;
  bfc: Float32Array;
  bproj: Float32Array;
}

/**
 * KV-cache decoding of one sequence. Make one per generation, feed it a prompt with prefill(),
 * then one token at a time with step(); dispose() frees its buffers.
 */
export class WasmDecoder {
  /** Tokens in the cache. */
  length = 0;
  private readonly bufs: Record<BufName, DecoderBuf>;
  /** Logits of every row of a chunk [rowsMax, V], made by the first logprobs(). */
  private allLogits: DecoderBuf | null = null;
  private readonly rowsMax: number;
  private readonly jsAttentionLimit: number;
  private readonly scratch: Float64Array;
  /** The memory the views below were made on. */
  private heap: ArrayBuffer | null = null;
  private views: Record<BufName, Float32Array> | null = null;
  private layers: LayerViews[] = [];
  private disposed = false;

  /**
   * A decoder for `model`, or null when it cannot run here: float32 weights and the active
   * backend is not wasm (or not the tfjs-wasm this was written against), or the parameters are
   * not on its heap. A model with a weight store always has one.
   */
  static create(model: GPT, opts: WasmDecoderOptions = {}): WasmDecoder | null {
    if (model.store) return new WasmDecoder(model, new StoreMemory(model, model.store), opts);
    const be = activeWasmBackend();
    if (!be) return null;
    if (model.variables.some((v) => v.isDisposed || !be.dataIdMap.get(v.dataId))) return null;
    return new WasmDecoder(model, new XnnpackMemory(model, be), opts);
  }

  private constructor(
    private readonly model: GPT,
    private readonly mem: DecoderMemory,
    opts: WasmDecoderOptions,
  ) {
    const { nLayer, nEmbd: C, blockSize: T, vocabSize: V } = model.config;
    this.rowsMax = Math.max(1, Math.min(opts.chunkRows ?? 64, T));
    this.jsAttentionLimit =
      mem instanceof XnnpackMemory ? (opts.jsAttentionLimit ?? 2 ** 23) : Infinity;
    const R = this.rowsMax;
    this.bufs = {
      kv: mem.alloc(nLayer * 2 * T * C),
      x: mem.alloc(R * C),
      h: mem.alloc(R * C),
      qkv: mem.alloc(R * 3 * C),
      y: mem.alloc(R * C),
      a: mem.alloc(R * C),
      f: mem.alloc(R * 4 * C),
      logits: mem.alloc(V),
    };
    mem.reserve(R, 4 * C);
    this.scratch = new Float64Array(T);
  }

  /**
   * Views of the buffers and the parameters, remade after memory growth or (checked when
   * `weights` is set: at the start of a run) new weights.
   */
  private sync(weights = false): Record<BufName, Float32Array> {
    if (this.disposed) throw new Error('WasmDecoder: used after dispose()');
    const changed = weights && this.mem.paramsChanged();
    const heap = this.mem.buffer();
    if (!changed && heap === this.heap) return this.views!;
    this.heap = heap;
    const view = (b: DecoderBuf) => new Float32Array(heap, b.off, b.size);
    const b = this.bufs;
    this.views = {
      kv: view(b.kv),
      x: view(b.x),
      h: view(b.h),
      qkv: view(b.qkv),
      y: view(b.y),
      a: view(b.a),
      f: view(b.f),
      logits: view(b.logits),
    };
    const p = (name: string) => this.mem.param(name);
    this.layers = Array.from({ length: this.model.config.nLayer }, (_, l) => ({
      ln1g: p(`h.${l}.ln_1.weight`),
      ln1b: p(`h.${l}.ln_1.bias`),
      bqkv: p(`h.${l}.attn.c_attn.bias`),
      bo: p(`h.${l}.attn.c_proj.bias`),
      ln2g: p(`h.${l}.ln_2.weight`),
      ln2b: p(`h.${l}.ln_2.bias`),
      bfc: p(`h.${l}.mlp.c_fc.bias`),
      bproj: p(`h.${l}.mlp.c_proj.bias`),
    }));
    return this.views;
  }

  /**
   * Resets the cache to `ids` (positions 0 … n−1, n ≤ blockSize) and returns the logits [V] of
   * the next token after them.
   */
  prefill(ids: readonly number[]): Float32Array {
    const { nLayer, nEmbd: C } = this.model.config;
    this.checkPrompt(ids);
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

  /**
   * Resets the cache to `ids` and returns log P(ids[t+1] | ids[0…t]) for t = 0 … n−2, every
   * row's logits through the same kernels as step() (how the numerics of stored weights are
   * measured against float32).
   */
  logprobs(ids: readonly number[]): Float64Array {
    this.checkPrompt(ids);
    const V = this.model.config.vocabSize;
    this.allLogits ??= this.mem.alloc(this.rowsMax * V);
    this.length = 0;
    const out = new Float64Array(ids.length - 1);
    for (let s = 0; s < ids.length; s += this.rowsMax) {
      const chunk = ids.slice(s, Math.min(ids.length, s + this.rowsMax));
      this.run(chunk, this.allLogits);
      const logits = new Float32Array(this.mem.buffer(), this.allLogits.off, chunk.length * V);
      for (let r = 0; r < chunk.length && s + r + 1 < ids.length; r++) {
        const row = logits.subarray(r * V, (r + 1) * V);
        let max = -Infinity;
        for (const v of row) if (v > max) max = v;
        let sum = 0;
        for (const v of row) sum += Math.exp(v - max);
        out[s + r] = row[ids[s + r + 1]!]! - max - Math.log(sum);
      }
    }
    return out;
  }

  private checkPrompt(ids: readonly number[]): void {
    this.checkIds(ids);
    if (ids.length === 0) throw new Error('WasmDecoder.prefill: no tokens');
    const T = this.model.config.blockSize;
    if (ids.length > T) {
      throw new Error(`sequence of ${ids.length} tokens exceeds the context of ${T}`);
    }
  }

  private checkIds(ids: readonly number[]): void {
    if (this.disposed) throw new Error('WasmDecoder: used after dispose()');
    const V = this.model.config.vocabSize;
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= V)
        throw new Error(`token id ${id} out of range`);
    }
  }

  /**
   * Runs `ids` at positions length … length+n−1 (n ≤ rowsMax); the last row's logits, or with
   * `all` every row's, written there.
   */
  private run(ids: readonly number[], all?: DecoderBuf): Float32Array {
    const cfg = this.model.config;
    const { nEmbd: C, nHead, blockSize: T, nLayer, layerNormEpsilon: eps } = cfg;
    const hs = C / nHead;
    // GPT-1's post-LayerNorm layout: the branches read the stream x itself, LN after each add
    const post = isPostLn(cfg);
    const input: BufName = post ? 'x' : 'h';
    const M = ids.length;
    const past = this.length;
    if (past + M > T) throw new Error(`sequence of ${past + M} tokens exceeds the context of ${T}`);
    const mem = this.mem;
    const B = this.bufs;
    // the views are taken again after each matmul, which may grow the memory
    let v = this.sync(true);

    // x = W_e[ids] + W_p[positions]
    for (let r = 0; r < M; r++) mem.embedding(ids[r]!, v.x, r * C);
    const wpe = mem.param('wpe.weight');
    for (let r = 0; r < M; r++) {
      const po = (past + r) * C;
      for (let i = 0; i < C; i++) v.x[r * C + i] = v.x[r * C + i]! + wpe[po + i]!;
    }
    for (let l = 0; l < nLayer; l++) {
      const w = (name: string) => `h.${l}.${name}.weight`;
      // qkv = LN_1(x) W_qkv + b_qkv (GPT-1: x W_qkv + b_qkv)
      let p = this.layers[l]!;
      if (!post) layerNormRows(v.x, v.h, M, C, p.ln1g, p.ln1b, eps);
      mem.linear(B[input], M, C, w('attn.c_attn'), 3 * C, B.qkv);
      v = this.sync();
      p = this.layers[l]!;
      const { qkv, kv } = v;
      // the new keys and values into the cache, head-major: [l][k|v][head][position][hs]
      const kOff = l * 2 * T * C;
      const vOff = kOff + T * C;
      for (let r = 0; r < M; r++) {
        const ro = r * 3 * C;
        for (let i = 0; i < 3 * C; i++) qkv[ro + i] = qkv[ro + i]! + p.bqkv[i]!;
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
      // x += attn(q, cache) W_o + b_o; h = LN_2(x) (GPT-1: x = LN_1(x))
      attendRows(qkv, 0, 3 * C, kv, kOff, vOff, v.y, M, past, nHead, hs, T, this.scratch);
      mem.linear(B.y, M, C, w('attn.c_proj'), C, B.a);
      v = this.sync();
      p = this.layers[l]!;
      addRows(v.x, v.a, p.bo, M, C);
      if (post) layerNormRows(v.x, v.x, M, C, p.ln1g, p.ln1b, eps);
      else layerNormRows(v.x, v.h, M, C, p.ln2g, p.ln2b, eps);
      // x += GELU(h W_fc + b_fc) W_proj + b_proj (GPT-1: x = LN_2(x + GELU(x W_fc + b_fc) …))
      mem.linear(B[input], M, C, w('mlp.c_fc'), 4 * C, B.f);
      v = this.sync();
      p = this.layers[l]!;
      biasGeluRows(v.f, M, 4 * C, p.bfc, cfg.activation);
      mem.linear(B.f, M, 4 * C, w('mlp.c_proj'), C, B.a);
      v = this.sync();
      p = this.layers[l]!;
      addRows(v.x, v.a, p.bproj, M, C);
      if (post) layerNormRows(v.x, v.x, M, C, p.ln2g, p.ln2b, eps);
    }
    this.length = past + M;
    if (post) return this.logitsOf(v, M, all);
    // logits = LN_f(x) W_eᵀ, for the last row (or every row)
    const g = mem.param('ln_f.weight');
    const b = mem.param('ln_f.bias');
    if (all) {
      layerNormRows(v.x, v.h, M, C, g, b, eps);
      mem.logits(B.h, M, all);
      return new Float32Array(0);
    }
    layerNormRows(v.x, v.h, 1, C, g, b, eps, (M - 1) * C, 0);
    mem.logits(B.h, 1, B.logits);
    return this.sync().logits.slice();
  }

  /** GPT-1's logits, with no final LayerNorm: x W_eᵀ for the last row (or every row). */
  private logitsOf(v: Record<BufName, Float32Array>, M: number, all?: DecoderBuf): Float32Array {
    const C = this.model.config.nEmbd;
    if (all) {
      this.mem.logits(this.bufs.x, M, all);
      return new Float32Array(0);
    }
    v.h.set(v.x.subarray((M - 1) * C, M * C));
    this.mem.logits(this.bufs.h, 1, this.bufs.logits);
    return this.sync().logits.slice();
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
      const kv = this.sync(true).kv;
      const read = (t: tf.Tensor) => (this.mem as XnnpackMemory).read(t);
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
    this.mem.dispose();
    this.views = null;
    this.layers = [];
  }
}
