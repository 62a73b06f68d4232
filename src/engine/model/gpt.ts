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
  attentionBackward,
  attentionForward,
  bmm,
  causalAttention,
  crossEntropyWithGrad,
  dropoutMask,
  geluBackward,
  geluForward,
  layerNormBackward,
  layerNormForward,
  linearBackward,
  outerGrad,
  t2,
  crossEntropy,
  embedding,
  geluErf,
  geluNew,
  layerNorm,
  linear,
  tiedLmHead,
  type BmmStrategy,
  variableOf,
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

/** What a block's backward needs from its forward. */
interface BlockCache {
  xhat1: tf.Tensor2D;
  rstd1: tf.Tensor2D;
  qkv: tf.Tensor3D;
  p: tf.Tensor3D;
  pd: tf.Tensor3D;
  keepAttn: tf.Tensor | null;
  y: tf.Tensor2D;
  keepA: tf.Tensor | null;
  xhat2: tf.Tensor2D;
  rstd2: tf.Tensor2D;
  f: tf.Tensor2D;
  s: tf.Tensor2D;
  keepM: tf.Tensor | null;
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

function cacheTensors(c: BlockCache): tf.Tensor[] {
  return Object.values(c).filter((t): t is tf.Tensor => t instanceof tf.Tensor);
}

/** tf.tidy for a function returning an object of tensors (nulls allowed), typed. */
function scope<R>(f: () => R): R {
  return tf.tidy(f as never) as R;
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
      this.params.set(name, variableOf(tf.tensor(w, shape), true, this.scope + name));
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

  /** The dropout keep-mask for one site of this forward (null when dropout is off). */
  private mask(shape: number[], opts: ForwardOptions, salt: number): tf.Tensor | null {
    const rate = this.config.dropout;
    if (!opts.train || rate <= 0) return null;
    return dropoutMask(shape, rate, ((opts.seed ?? 0) * 131 + salt) >>> 1);
  }

  private dropout(x: T2, opts: ForwardOptions, salt: number): T2 {
    const m = this.mask(x.shape, opts, salt);
    return m ? (tf.mul(x, m) as T2) : x;
  }

  private attnSeed(opts: ForwardOptions, layer: number): number {
    return ((opts.seed ?? 0) * 131 + 7 + layer * 3) >>> 1;
  }

  /** qkv [B·T, 3C] → [3·nHead·B, T, hs]: q's heads, then k's, then v's. */
  private heads3(qkv: T2, batch: number, tLen: number): T3 {
    const { nHead, nEmbd } = this.config;
    const hs = nEmbd / nHead;
    const x = tf.transpose(tf.reshape(qkv, [batch, tLen, 3 * nHead, hs]), [2, 0, 1, 3]);
    return tf.reshape(x, [3 * nHead * batch, tLen, hs]) as T3;
  }

  /** Inverse of heads3(). */
  private unheads3(x: T3, batch: number, tLen: number): T2 {
    const { nHead, nEmbd } = this.config;
    const x4 = tf.reshape(x, [3 * nHead, batch, tLen, nEmbd / nHead]);
    return tf.reshape(tf.transpose(x4, [1, 2, 0, 3]), [batch * tLen, 3 * nEmbd]) as T2;
  }

  /** Splits qkv [B·T, 3C] into q, k, v [nHead·B, T, hs]. */
  private heads(qkv: T2, batch: number, tLen: number): [T3, T3, T3] {
    const [q, k, v] = tf.split(this.heads3(qkv, batch, tLen), 3, 0) as T3[];
    return [q!, k!, v!];
  }

  /** Inverse of mergeHeads(): y [B·T, C] → [nHead·B, T, hs]. */
  private splitHeads(y: T2, batch: number, tLen: number): T3 {
    const { nHead, nEmbd } = this.config;
    const y4 = tf.reshape(y, [batch, tLen, nHead, nEmbd / nHead]);
    return tf.reshape(tf.transpose(y4, [2, 0, 1, 3]), [nHead * batch, tLen, nEmbd / nHead]) as T3;
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
      if (i === 0) checkTensorSize([this.config.nHead * batch, tLen, tLen], 'the attention scores');
      const y = causalAttention(this.heads3(qkv, batch, tLen), {
        strategy: this.bmm,
        dropout: attnDrop,
        seed: this.attnSeed(opts, i),
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
   * L1 and its gradient for every parameter, by an explicit backward pass block by block (the
   * training path). tfjs's tape would keep every intermediate of the forward alive until the end
   * and copy each saved tensor; here a block keeps only what its backward needs (x̂ and 1/σ of its
   * LayerNorms, qkv, the attention probabilities, the MLP's pre-activation) and frees it as soon as
   * its backward has run. Cheap values (the LayerNorm outputs, the GELU output) are recomputed.
   */
  async lossAndGrads(
    idx: T2,
    targets: T2,
    opts: ForwardOptions & {
      /** Awaited between blocks, forward and backward: a caller yields there, and may throw to stop. */
      between?: () => Promise<void>;
    } = {},
  ): Promise<{ loss: tf.Scalar; grads: Map<string, tf.Tensor> }> {
    const [B, T] = idx.shape;
    const { nEmbd: C, nLayer, vocabSize: V, blockSize, layerNormEpsilon: eps } = this.config;
    if (T > blockSize)
      throw new Error(`sequence of ${T} tokens exceeds the context of ${blockSize}`);
    checkTensorSize([B * T, V], 'the logits');
    checkTensorSize([this.config.nHead * B, T, T], 'the attention scores');
    const grads = new Map<string, tf.Tensor>();
    const ids = tf.reshape(idx, [B * T]) as tf.Tensor1D;

    // forward: embeddings, then each block keeps its cache
    const emb = scope(() => {
      const tok = tf.gather(this.p<tf.Rank.R2>('wte.weight'), ids);
      const pos = tf.slice(this.p<tf.Rank.R2>('wpe.weight'), [0, 0], [T, C]);
      const x = tf.reshape(tf.add(tf.reshape(tok, [B, T, C]), pos), [B * T, C]) as T2;
      const keep = this.mask(x.shape, opts, 1);
      return { x: keep ? (tf.mul(x, keep) as T2) : x, keep };
    });
    let x: T2 = emb.x;
    const caches: Array<BlockCache | null> = [];
    // everything still held, for cleanup when `between` throws (a stop mid-step)
    const held = (): tf.Tensor[] => [
      ids,
      emb.x,
      ...(emb.keep ? [emb.keep] : []),
      ...(x !== emb.x && !x.isDisposed ? [x] : []),
      ...caches.flatMap((c) => (c ? cacheTensors(c) : [])),
      ...grads.values(),
    ];
    try {
      for (let i = 0; i < nLayer; i++) {
        await opts.between?.();
        const { out, cache } = this.blockForward(x, i, B, T, opts);
        if (i > 0) x.dispose();
        x = out;
        caches.push(cache);
      }
    } catch (err) {
      tf.dispose(held());
      throw err;
    }

    // head: logits = LN_f(x) W_eᵀ, loss and dlogits together
    const head = scope(() => {
      const lnf = layerNormForward(x, this.p('ln_f.weight'), this.p('ln_f.bias'), eps);
      const wte = this.p<tf.Rank.R2>('wte.weight');
      const logits = tf.matMul(lnf.y, t2(wte)) as T2;
      const { loss, dlogits } = crossEntropyWithGrad(
        logits,
        tf.reshape(targets, [B * T]) as tf.Tensor1D,
      );
      const dh = tf.matMul(dlogits, wte) as T2;
      const [dx, dg, db] = layerNormBackward(dh, lnf.xhat, lnf.rstd, this.p('ln_f.weight'));
      return { loss, dx, dg, db, dwte: outerGrad(dlogits, lnf.y) };
    });
    if (nLayer > 0) x.dispose();
    grads.set('ln_f.weight', head.dg);
    grads.set('ln_f.bias', head.db);

    // backward through the blocks, freeing each cache once used
    let dx: T2 = head.dx;
    try {
      for (let i = nLayer - 1; i >= 0; i--) {
        await opts.between?.();
        const cache = caches[i]!;
        const r = this.blockBackward(dx, cache, i, B, T);
        dx.dispose();
        tf.dispose(cacheTensors(cache));
        caches[i] = null;
        dx = r.dx;
        for (const [k, g] of r.grads) grads.set(k, g);
      }
    } catch (err) {
      tf.dispose([...held(), dx, head.dwte, head.loss]);
      throw err;
    }

    // embeddings: W_e gets the head's gradient plus the scattered token rows
    const embGrads = scope(() => {
      const d = emb.keep ? (tf.mul(dx, emb.keep) as T2) : dx;
      const dwte = tf.add(head.dwte, tf.scatterND(tf.expandDims(ids, 1), d, [V, C]));
      // Σ over the batch as ones[1, B] · d[B, T·C] (a reduction over axis 0 is slow on wasm)
      let dwpe = tf.reshape(tf.matMul(tf.ones([1, B]), tf.reshape(d, [B, T * C])), [T, C]) as T2;
      if (T < blockSize) dwpe = tf.concat([dwpe, tf.zeros([blockSize - T, C])]) as T2;
      return { dwte, dwpe };
    });
    tf.dispose([dx, head.dwte, emb.x, ids]);
    if (emb.keep) emb.keep.dispose();
    grads.set('wte.weight', embGrads.dwte);
    grads.set('wpe.weight', embGrads.dwpe);
    return { loss: head.loss, grads };
  }

  private blockForward(
    x: T2,
    i: number,
    B: number,
    T: number,
    opts: ForwardOptions,
  ): { out: T2; cache: BlockCache } {
    const pre = `h.${i}.`;
    const eps = this.config.layerNormEpsilon;
    return scope(() => {
      const ln1 = layerNormForward(x, this.p(pre + 'ln_1.weight'), this.p(pre + 'ln_1.bias'), eps);
      const qkvFlat = tf.add(
        tf.matMul(ln1.y, this.p(pre + 'attn.c_attn.weight')),
        this.p(pre + 'attn.c_attn.bias'),
      ) as T2;
      const qkv = this.heads3(qkvFlat, B, T) as T3;
      const att = attentionForward(qkv, {
        strategy: this.bmm,
        dropout: opts.train ? this.config.dropout : 0,
        seed: this.attnSeed(opts, i),
      });
      const y = this.mergeHeads(att.y, B, T);
      let a = tf.add(
        tf.matMul(y, this.p(pre + 'attn.c_proj.weight')),
        this.p(pre + 'attn.c_proj.bias'),
      ) as T2;
      const keepA = this.mask(a.shape, opts, 8 + i * 3);
      if (keepA) a = tf.mul(a, keepA) as T2;
      const x2 = tf.add(x, a) as T2;
      const ln2 = layerNormForward(x2, this.p(pre + 'ln_2.weight'), this.p(pre + 'ln_2.bias'), eps);
      const f = tf.add(
        tf.matMul(ln2.y, this.p(pre + 'mlp.c_fc.weight')),
        this.p(pre + 'mlp.c_fc.bias'),
      ) as T2;
      const ge = geluForward(f, this.config.activation);
      let m = tf.add(
        tf.matMul(ge.y, this.p(pre + 'mlp.c_proj.weight')),
        this.p(pre + 'mlp.c_proj.bias'),
      ) as T2;
      const keepM = this.mask(m.shape, opts, 9 + i * 3);
      if (keepM) m = tf.mul(m, keepM) as T2;
      const cache: BlockCache = {
        xhat1: ln1.xhat,
        rstd1: ln1.rstd,
        qkv,
        p: att.p,
        pd: att.pd,
        keepAttn: att.keep,
        y,
        keepA,
        xhat2: ln2.xhat,
        rstd2: ln2.rstd,
        f,
        s: ge.s,
        keepM,
      };
      return { out: tf.add(x2, m) as T2, cache };
    });
  }

  private blockBackward(
    dout: T2,
    c: BlockCache,
    i: number,
    B: number,
    T: number,
  ): { dx: T2; grads: Map<string, tf.Tensor> } {
    const pre = `h.${i}.`;
    const w = (n: string) => this.p<tf.Rank.R2>(pre + n);
    const v = (n: string) => this.p<tf.Rank.R1>(pre + n);
    const grads = new Map<string, tf.Tensor>();
    const dx = tf.tidy(() => {
      // MLP branch: m = gelu(LN2(x2) W_fc + b_fc) W_proj + b_proj
      const dm = c.keepM ? (tf.mul(dout, c.keepM) as T2) : dout;
      const g = tf.mul(c.f, c.s) as T2;
      const [dg, dWpr, dbpr] = linearBackward(dm, g, w('mlp.c_proj.weight'));
      const df = geluBackward(dg, c.f, c.s, this.config.activation);
      const h2 = tf.add(tf.mul(c.xhat2, v('ln_2.weight')), v('ln_2.bias')) as T2;
      const [dh2, dWfc, dbfc] = linearBackward(df, h2, w('mlp.c_fc.weight'));
      const [dln2, dg2, db2] = layerNormBackward(dh2, c.xhat2, c.rstd2, v('ln_2.weight'));
      const dx2 = tf.add(dout, dln2) as T2;
      // attention branch: a = attn(LN1(x) W_qkv + b_qkv) W_o + b_o
      const da = c.keepA ? (tf.mul(dx2, c.keepA) as T2) : dx2;
      const [dy, dWo, dbo] = linearBackward(da, c.y, w('attn.c_proj.weight'));
      const dqkv = attentionBackward(
        this.splitHeads(dy, B, T),
        c.qkv,
        c.p,
        c.pd,
        c.keepAttn,
        this.bmm,
      );
      const h1 = tf.add(tf.mul(c.xhat1, v('ln_1.weight')), v('ln_1.bias')) as T2;
      const [dh1, dWqkv, dbqkv] = linearBackward(
        this.unheads3(dqkv, B, T),
        h1,
        w('attn.c_attn.weight'),
      );
      const [dln1, dg1, db1] = layerNormBackward(dh1, c.xhat1, c.rstd1, v('ln_1.weight'));
      const out: Record<string, tf.Tensor> = {
        'mlp.c_proj.weight': dWpr,
        'mlp.c_proj.bias': dbpr,
        'mlp.c_fc.weight': dWfc,
        'mlp.c_fc.bias': dbfc,
        'ln_2.weight': dg2,
        'ln_2.bias': db2,
        'attn.c_proj.weight': dWo,
        'attn.c_proj.bias': dbo,
        'attn.c_attn.weight': dWqkv,
        'attn.c_attn.bias': dbqkv,
        'ln_1.weight': dg1,
        'ln_1.bias': db1,
      };
      for (const [k, t] of Object.entries(out)) grads.set(pre + k, tf.keep(t));
      return tf.add(dx2, dln1) as T2;
    });
    return { dx, grads };
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
