/**
 * The GPT-2 decoder: token + position embedding, n pre-LayerNorm blocks of causal self-attention
 * and a 4× GELU MLP, a final LayerNorm, and the LM head tied to the token embedding,
 * P(u) = softmax(h W_eᵀ).
 *
 * Parameters use Hugging Face GPT-2 names and layouts (Conv1D weights are [in, out]), so a
 * checkpoint is a plain `model.safetensors` that transformers loads.
 */
import * as tf from '../tf';
import type { GPTConfig } from '../checkpoint/config';
import { getBackendReport } from '../backend';
import { Rng } from '../util/rng';
import {
  bmm,
  causalAttention,
  crossEntropy,
  embedding,
  geluErf,
  geluNew,
  layerNorm,
  linear,
  tiedLmHead,
  type BmmStrategy,
} from './ops';

type T2 = tf.Tensor2D;
type T3 = tf.Tensor3D;

export type { GPTConfig };

/** HF GPT-2 parameter names and shapes, in a fixed order. */
export function paramShapes(cfg: GPTConfig): Map<string, number[]> {
  const { vocabSize: V, blockSize: T, nEmbd: C, nLayer: L } = cfg;
  const m = new Map<string, number[]>([
    ['wte.weight', [V, C]],
    ['wpe.weight', [T, C]],
  ]);
  for (let i = 0; i < L; i++) {
    const p = `h.${i}.`;
    m.set(p + 'ln_1.weight', [C]);
    m.set(p + 'ln_1.bias', [C]);
    m.set(p + 'attn.c_attn.weight', [C, 3 * C]);
    m.set(p + 'attn.c_attn.bias', [3 * C]);
    m.set(p + 'attn.c_proj.weight', [C, C]);
    m.set(p + 'attn.c_proj.bias', [C]);
    m.set(p + 'ln_2.weight', [C]);
    m.set(p + 'ln_2.bias', [C]);
    m.set(p + 'mlp.c_fc.weight', [C, 4 * C]);
    m.set(p + 'mlp.c_fc.bias', [4 * C]);
    m.set(p + 'mlp.c_proj.weight', [4 * C, C]);
    m.set(p + 'mlp.c_proj.bias', [C]);
  }
  m.set('ln_f.weight', [C]);
  m.set('ln_f.bias', [C]);
  return m;
}

export function countParams(cfg: GPTConfig): number {
  let n = 0;
  for (const s of paramShapes(cfg).values()) n += s.reduce((a, b) => a * b, 1);
  return n;
}

/** GPT-2 initialization: N(0, 0.02); residual projections N(0, 0.02/√(2L)); LN 1 and 0; biases 0. */
export function initParams(cfg: GPTConfig, seed: number): Map<string, Float32Array> {
  const rng = new Rng(seed);
  const out = new Map<string, Float32Array>();
  const residStd = 0.02 / Math.sqrt(2 * cfg.nLayer);
  for (const [name, shape] of paramShapes(cfg)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (name.endsWith('ln_1.weight') || name.endsWith('ln_2.weight') || name === 'ln_f.weight') {
      data.fill(1);
    } else if (shape.length === 2) {
      const std = name.endsWith('c_proj.weight') ? residStd : 0.02;
      for (let i = 0; i < data.length; i++) data[i] = rng.normal() * std;
    }
    out.set(name, data);
  }
  return out;
}

/** Keys and values of the tokens seen so far, per layer: [nHead·B, t, headSize]. */
export interface KVCache {
  k: T3[];
  v: T3[];
  length: number;
  batch: number;
}

export function disposeCache(cache: KVCache | null | undefined): void {
  if (!cache) return;
  tf.dispose([...cache.k, ...cache.v]);
}

export interface ForwardOptions {
  /** Enables dropout. */
  train?: boolean;
  /** Seed for this forward's dropout masks. */
  seed?: number;
}

/**
 * Refuses a tensor larger than the backend can bind (webgpu: the adapter's storage-buffer limit,
 * 128 MiB on some adapters), where it would otherwise compute garbage without an error.
 */
export function checkTensorSize(shape: number[], what: string): void {
  const limit = getBackendReport()?.maxTensorBytes;
  if (!limit) return;
  const bytes = shape.reduce((a, b) => a * b, 4);
  if (bytes > limit) {
    throw new Error(
      `${what} [${shape.join(', ')}] need ${(bytes / 2 ** 20).toFixed(0)} MiB, too large for the ` +
        `${getBackendReport()?.name} backend's largest tensor (${(limit / 2 ** 20).toFixed(0)} MiB). ` +
        `Use a smaller --batch-size or --block-size.`,
    );
  }
}

let modelCounter = 0;

export class GPT {
  readonly config: GPTConfig;
  /** Prefix that keeps this model's tf variable names unique in the process. */
  readonly scope = `gpt${modelCounter++}/`;
  readonly params: Map<string, tf.Variable>;
  bmm: BmmStrategy;

  constructor(config: GPTConfig, weights: Map<string, Float32Array>) {
    if (config.nEmbd % config.nHead !== 0) {
      throw new Error(`n_embd (${config.nEmbd}) must be divisible by n_head (${config.nHead})`);
    }
    this.config = config;
    this.params = new Map();
    for (const [name, shape] of paramShapes(config)) {
      const w = weights.get(name);
      if (!w) throw new Error(`missing parameter ${name}`);
      const size = shape.reduce((a, b) => a * b, 1);
      if (w.length !== size) {
        throw new Error(
          `parameter ${name}: expected ${size} values for [${shape}], got ${w.length}`,
        );
      }
      this.params.set(name, tf.variable(tf.tensor(w, shape), true, this.scope + name));
    }
    this.bmm = tf.getBackend() === 'wasm' ? 'unrolled' : 'batched';
  }

  static init(config: GPTConfig, seed: number): GPT {
    return new GPT(config, initParams(config, seed));
  }

  p<R extends tf.Rank = tf.Rank>(name: string): tf.Tensor<R> {
    const v = this.params.get(name);
    if (!v) throw new Error(`unknown parameter ${name}`);
    return v as unknown as tf.Tensor<R>;
  }

  get variables(): tf.Variable[] {
    return [...this.params.values()];
  }

  /** Re-keys a variableGrads() result by parameter name. */
  gradsByParam(grads: tf.NamedTensorMap): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [name, v] of this.params) {
      const g = grads[v.name];
      if (g) out.set(name, g);
    }
    return out;
  }

  numParams(): number {
    return countParams(this.config);
  }

  /** Reads every parameter back to the host (async: webgpu allows no sync reads). */
  async weights(): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    for (const [name, v] of this.params) out.set(name, (await v.data()) as Float32Array);
    return out;
  }

  async setWeights(weights: Map<string, Float32Array>): Promise<void> {
    for (const [name, v] of this.params) {
      const w = weights.get(name);
      if (!w) throw new Error(`missing parameter ${name}`);
      tf.tidy(() => v.assign(tf.tensor(w, v.shape)));
    }
  }

  dispose(): void {
    tf.dispose(this.variables);
  }

  private act<X extends tf.Tensor>(x: X): X {
    return this.config.activation === 'gelu' ? geluErf(x) : geluNew(x);
  }

  private dropout(x: T2, opts: ForwardOptions, salt: number): T2 {
    const rate = this.config.dropout;
    if (!opts.train || rate <= 0) return x;
    return tf.dropout(x, rate, undefined, ((opts.seed ?? 0) * 131 + salt) >>> 1) as T2;
  }

  /** Splits qkv [B·T, 3C] into q, k, v [nHead·B, T, hs]. */
  private heads(qkv: T2, batch: number, tLen: number): [T3, T3, T3] {
    const { nHead, nEmbd } = this.config;
    const hs = nEmbd / nHead;
    const g = nHead * batch;
    const x = tf.transpose(tf.reshape(qkv, [batch, tLen, 3 * nHead, hs]), [2, 0, 1, 3]);
    const [q, k, v] = tf.split(tf.reshape(x, [3 * g, tLen, hs]), 3, 0) as T3[];
    return [q!, k!, v!];
  }

  /** Inverse of heads(): y [nHead·B, T, hs] → [B·T, C]. */
  private mergeHeads(y: T3, batch: number, tLen: number): T2 {
    const { nHead, nEmbd } = this.config;
    const y4 = tf.reshape(y, [nHead, batch, tLen, nEmbd / nHead]);
    return tf.reshape(tf.transpose(y4, [1, 2, 0, 3]), [batch * tLen, nEmbd]);
  }

  private mlp(x: T2, pre: string): T2 {
    const h = this.act(linear(x, this.p(pre + 'mlp.c_fc.weight'), this.p(pre + 'mlp.c_fc.bias')));
    return linear(h, this.p(pre + 'mlp.c_proj.weight'), this.p(pre + 'mlp.c_proj.bias'));
  }

  private ln(x: T2, name: string): T2 {
    return layerNorm(
      x,
      this.p(name + '.weight'),
      this.p(name + '.bias'),
      this.config.layerNormEpsilon,
    );
  }

  /** Token + position embedding for ids [B, T] starting at position `past`. */
  private embed(idx: T2, past: number): T2 {
    const [batch, tLen] = idx.shape;
    const { nEmbd: C, blockSize } = this.config;
    if (past + tLen > blockSize) {
      throw new Error(`sequence of ${past + tLen} tokens exceeds the context of ${blockSize}`);
    }
    const tok = embedding(this.p('wte.weight'), tf.reshape(idx, [batch * tLen]));
    const pos = tf.slice(this.p<tf.Rank.R2>('wpe.weight'), [past, 0], [tLen, C]);
    return tf.reshape(tf.add(tf.reshape(tok, [batch, tLen, C]), pos), [batch * tLen, C]);
  }

  /** The top hidden states h_L [B·T, C] (after the final LayerNorm) for ids [B, T]. */
  hidden(idx: T2, opts: ForwardOptions = {}): T2 {
    const [batch, tLen] = idx.shape;
    const { nLayer } = this.config;
    const attnDrop = opts.train ? this.config.dropout : 0;
    let x = this.dropout(this.embed(idx, 0), opts, 1);
    for (let i = 0; i < nLayer; i++) {
      const pre = `h.${i}.`;
      const qkv = linear(
        this.ln(x, pre + 'ln_1'),
        this.p(pre + 'attn.c_attn.weight'),
        this.p(pre + 'attn.c_attn.bias'),
      );
      const [q, k, v] = this.heads(qkv, batch, tLen);
      if (i === 0) checkTensorSize([q.shape[0], tLen, tLen], 'the attention scores');
      const y = causalAttention(q, k, v, {
        strategy: this.bmm,
        dropout: attnDrop,
        seed: ((opts.seed ?? 0) * 131 + 7 + i * 3) >>> 1,
      });
      const a = linear(
        this.mergeHeads(y, batch, tLen),
        this.p(pre + 'attn.c_proj.weight'),
        this.p(pre + 'attn.c_proj.bias'),
      );
      x = tf.add(x, this.dropout(a, opts, 8 + i * 3));
      x = tf.add(x, this.dropout(this.mlp(this.ln(x, pre + 'ln_2'), pre), opts, 9 + i * 3));
    }
    return this.ln(x, 'ln_f');
  }

  /** softmax(h W_eᵀ) logits [N, V]. */
  lmHead(h: T2): T2 {
    checkTensorSize([h.shape[0], this.config.vocabSize], 'the logits');
    return tiedLmHead(h, this.p('wte.weight'));
  }

  /** GPT-1's L1 as a mean per token: cross-entropy of next-token predictions. */
  loss(idx: T2, targets: T2, opts: ForwardOptions = {}): tf.Scalar {
    const [batch, tLen] = targets.shape;
    return crossEntropy(
      this.lmHead(this.hidden(idx, opts)),
      tf.reshape(targets, [batch * tLen]) as tf.Tensor1D,
    );
  }

  /**
   * Inference with a KV cache: runs ids [B, Tn] after the cached tokens and returns the logits of
   * every new position [B·Tn, V] (or only the last one per row, [B, V]) and the grown cache.
   * With cache = null this is the plain no-cache forward.
   */
  forwardCached(idx: T2, cache: KVCache | null, lastOnly: boolean): { logits: T2; cache: KVCache } {
    const [batch, tLen] = idx.shape;
    const past = cache?.length ?? 0;
    const { nLayer, nEmbd: C } = this.config;
    return tf.tidy(() => {
      let x = this.embed(idx, past);
      const ks: T3[] = [];
      const vs: T3[] = [];
      for (let i = 0; i < nLayer; i++) {
        const pre = `h.${i}.`;
        const qkv = linear(
          this.ln(x, pre + 'ln_1'),
          this.p(pre + 'attn.c_attn.weight'),
          this.p(pre + 'attn.c_attn.bias'),
        );
        const [q, kNew, vNew] = this.heads(qkv, batch, tLen);
        const k = cache ? (tf.concat([cache.k[i]!, kNew], 1) as T3) : kNew;
        const v = cache ? (tf.concat([cache.v[i]!, vNew], 1) as T3) : vNew;
        ks.push(k);
        vs.push(v);
        const y = this.attendCached(q, k, v, past);
        const a = linear(
          this.mergeHeads(y, batch, tLen),
          this.p(pre + 'attn.c_proj.weight'),
          this.p(pre + 'attn.c_proj.bias'),
        );
        x = tf.add(x, a);
        x = tf.add(x, this.mlp(this.ln(x, pre + 'ln_2'), pre));
      }
      if (lastOnly && tLen > 1) {
        x = tf.reshape(tf.slice(tf.reshape(x, [batch, tLen, C]), [0, tLen - 1, 0], [batch, 1, C]), [
          batch,
          C,
        ]);
      }
      const logits = this.lmHead(this.ln(x, 'ln_f'));
      return { logits, cache: { k: ks, v: vs, length: past + tLen, batch } };
    });
  }

  /** Attention of new queries q [G, Tn, hs] over all keys k, v [G, past+Tn, hs]. */
  private attendCached(q: T3, k: T3, v: T3, past: number): T3 {
    const [g, tn, hs] = q.shape;
    const tk = k.shape[1];
    const scale = 1 / Math.sqrt(hs);
    if (tn === 1) {
      // one new token: q·k and p·v as broadcast products, no matmul dispatch
      const att = tf.mul(tf.sum(tf.mul(q, k), -1), scale); // [G, Tk]
      const p = tf.softmax(att);
      return tf.reshape(tf.sum(tf.mul(tf.expandDims(p, 2), v), 1), [g, 1, hs]);
    }
    const mask = new Float32Array(tn * tk);
    for (let i = 0; i < tn; i++) for (let j = past + i + 1; j < tk; j++) mask[i * tk + j] = -1e9;
    const att = tf.add(
      tf.mul(bmm(q, k, this.bmm, false, true), scale),
      tf.tensor2d(mask, [tn, tk]),
    );
    return bmm(tf.softmax(att) as T3, v, this.bmm);
  }
}
