/**
 * The GPT-2 decoder: token + position embedding, n pre-LayerNorm blocks of causal self-attention
 * and a 4× GELU MLP (./block.ts), a final LayerNorm, and the LM head tied to the token embedding,
 * P(u) = softmax(h W_eᵀ). With config.layout 'gpt1', GPT-1's: post-LayerNorm blocks and no final
 * LayerNorm.
 *
 * Parameters use Hugging Face GPT-2 names and layouts (Conv1D weights are [in, out]), so a
 * checkpoint is a plain `model.safetensors` that transformers loads.
 */
import * as tf from '../tf';
import { checkTensorSize } from '../backend';
import {
  cachedSelfAttention,
  captureAttention,
  causalSelfAttention,
  paddingMask,
  type AttentionSaved,
  type KVCache,
} from './attention';
import { block, blockBackward, savedTensors, type BlockContext, type BlockSaved } from './block';
import { isMaskedLm, type GPTConfig } from './config';
import { Dropout, SALT, dropout } from './dropout';
import { lmHead, lmLogits, type Head } from './head';
import { crossEntropy, layerNormBackward, layerNormForward, variableOf } from './ops';
import {
  blockLayers,
  countParams,
  initParams,
  paramTree,
  type BlockParams,
  type GPTParams,
} from './params';
import type { WeightStore } from '../weights/store';

type T2 = tf.Tensor2D;

/**
 * What `hidden` hands out on the way, for looking inside a forward (the console's inspection).
 * Every tensor is tf.keep'd: the caller disposes them.
 */
export interface ForwardCapture {
  /** Each block's attention probabilities [nHead·B, T, T] (head-major: h·B + b), by layer. */
  attention: tf.Tensor3D[];
  /** The residual stream [B·T, C]: after the embedding, then after each block (nLayer + 1). */
  residual: T2[];
}

export interface ForwardOptions {
  /** Enables dropout. */
  train?: boolean;
  /** Seed for this forward's dropout masks. */
  seed?: number;
  /**
   * The real tokens of each row of a right-padded batch. A masked-LM's attention then leaves the
   * padding out (a GPT's causal attention never sees what follows a position anyway).
   */
  lengths?: readonly number[];
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
  /**
   * Inference weights: W_e and the blocks' linear maps held as f16 or q8 (../weights/store.ts),
   * with no tf variable (and no float32 copy) of their own. Null: every parameter is a float32
   * variable, as training needs.
   */
  readonly store: WeightStore | null;
  /** The parameters as GPT-2's tree; a leaf held in the store is null. */
  private readonly tree: GPTParams<tf.Variable | null>;
  /** The tf variables by their Hugging Face names, in GPT-2's order (the store's not among them). */
  readonly params = new Map<string, tf.Variable>();

  /**
   * A model on `weights` (float32, by Hugging Face name). With `store`, the parameters it holds
   * are read from it and need not be in `weights`: the model is for inference only.
   */
  constructor(
    config: GPTConfig,
    weights: Map<string, Float32Array>,
    store: WeightStore | null = null,
  ) {
    if (config.nEmbd % config.nHead !== 0) {
      throw new Error(`n_embd (${config.nEmbd}) must be divisible by n_head (${config.nHead})`);
    }
    this.config = config;
    this.store = store;
    this.tree = paramTree(config, (name, shape) => {
      if (store?.matrices.has(name)) return null;
      const w = weights.get(name);
      if (!w) throw new Error(`missing parameter ${name}`);
      const size = shape.reduce((a, b) => a * b, 1);
      if (w.length !== size) {
        throw new Error(
          `parameter ${name}: expected ${size} values for [${shape}], got ${w.length}`,
        );
      }
      const v = variableOf(tf.tensor(w, shape), true, this.scope + name);
      this.params.set(name, v);
      return v;
    });
  }

  static init(config: GPTConfig, seed: number): GPT {
    return new GPT(config, initParams(config, seed));
  }

  /** The parameters as GPT-2's tree of tf variables: `transformer.h[i].attn.c_attn.weight` … */
  get transformer(): GPTParams<tf.Variable> {
    this.requireFloat32();
    return this.tree as GPTParams<tf.Variable>;
  }

  private requireFloat32(): void {
    if (this.store) {
      throw new Error(
        `this model's weights are held as ${this.store.format} for inference; training and ` +
          'reading its weights back need it loaded as f32',
      );
    }
  }

  /** Bytes its weights take: float32 variables, or the store's (its matrices and the rest). */
  weightBytes(): number {
    if (this.store) return this.store.bytes;
    let n = 0;
    for (const v of this.params.values()) n += v.size * 4;
    return n;
  }

  /**
   * Block i's parameters as tensors: the variables, or with a store its matrices dequantised to
   * float32 [in, out] on the fly (call inside tf.tidy: they are freed with the block's work).
   */
  private blockParams(i: number): BlockParams<tf.Tensor> {
    const b = this.tree.h[i]!;
    if (!this.store) return b as BlockParams<tf.Tensor>;
    const linear = (name: string, l: { weight: tf.Variable | null; bias: tf.Variable | null }) => ({
      weight: l.weight ?? this.storedConv1D(`h.${i}.${name}.weight`),
      bias: l.bias!,
    });
    return {
      ln_1: b.ln_1 as BlockParams<tf.Tensor>['ln_1'],
      attn: {
        c_attn: linear('attn.c_attn', b.attn.c_attn),
        c_proj: linear('attn.c_proj', b.attn.c_proj),
      },
      ln_2: b.ln_2 as BlockParams<tf.Tensor>['ln_2'],
      mlp: { c_fc: linear('mlp.c_fc', b.mlp.c_fc), c_proj: linear('mlp.c_proj', b.mlp.c_proj) },
    };
  }

  /** A stored linear weight as the Conv1D [in, out] float32 tensor the ops take. */
  private storedConv1D(name: string): tf.Tensor2D {
    const m = this.store!.matrix(name);
    return tf.transpose(tf.tensor2d(this.store!.dequantize(name), [m.n, m.k]));
  }

  p<R extends tf.Rank = tf.Rank>(name: string): tf.Tensor<R> {
    const v = this.params.get(name);
    if (!v && this.store?.matrices.has(name)) {
      throw new Error(`parameter ${name} is held as ${this.store.format}, not as a tf variable`);
    }
    if (!v) throw new Error(`unknown parameter ${name}`);
    return v as unknown as tf.Tensor<R>;
  }

  get variables(): tf.Variable[] {
    return [...this.params.values()];
  }

  numParams(): number {
    return countParams(this.config);
  }

  /** Reads every parameter back to the host (async: webgpu allows no sync reads). */
  async weights(): Promise<Map<string, Float32Array>> {
    this.requireFloat32();
    const out = new Map<string, Float32Array>();
    for (const [name, v] of this.params) out.set(name, (await v.data()) as Float32Array);
    return out;
  }

  async setWeights(weights: Map<string, Float32Array>): Promise<void> {
    this.requireFloat32();
    for (const [name, v] of this.params) {
      const w = weights.get(name);
      if (!w) throw new Error(`missing parameter ${name}`);
      tf.tidy(() => v.assign(tf.tensor(w, v.shape)));
    }
  }

  dispose(): void {
    tf.dispose(this.variables);
    this.store?.dispose();
  }

  /** W_e [V, C] (with a store: dequantised, to be freed by the caller's tf.tidy). */
  private get wte(): T2 {
    const v = this.tree.wte.weight;
    if (v) return v as tf.Tensor as T2;
    const { vocabSize: V, nEmbd: C } = this.config;
    return tf.tensor2d(this.store!.dequantize('wte.weight'), [V, C]);
  }

  private context(layer: number, batch: number, tLen: number, d: Dropout | null): BlockContext {
    return { config: this.config, layer, batch, tLen, dropout: d };
  }

  /** The final LayerNorm on x (GPT-2's layout), or null in GPT-1's, which has none. */
  private lnF(x: T2) {
    if (!this.tree.ln_f) return null;
    const { weight, bias } = this.tree.ln_f;
    return layerNormForward(x, weight!, bias!, this.config.layerNormEpsilon);
  }

  /** h_L from the last block's output x: LN_f(x), or x itself in GPT-1's post-LayerNorm layout. */
  private top(x: T2): T2 {
    return this.lnF(x)?.y ?? x;
  }

  /** Token + position embedding [B·T, C] for ids [B, T] starting at position `past`. */
  private embed(idx: T2, past: number): T2 {
    const [batch, tLen] = idx.shape;
    const { nEmbd: C, blockSize } = this.config;
    if (past + tLen > blockSize) {
      throw new Error(`sequence of ${past + tLen} tokens exceeds the context of ${blockSize}`);
    }
    const tok = this.tokenRows(tf.reshape(idx, [batch * tLen]) as tf.Tensor1D);
    const pos = tf.slice(this.tree.wpe.weight as tf.Tensor as T2, [past, 0], [tLen, C]);
    return tf.reshape(tf.add(tf.reshape(tok, [batch, tLen, C]), pos), [batch * tLen, C]);
  }

  /** W_e's rows for ids [N]: gathered, or with a store dequantised row by row. */
  private tokenRows(ids: tf.Tensor1D): T2 {
    if (!this.store) return tf.gather(this.wte, ids);
    const C = this.config.nEmbd;
    const list = ids.dataSync();
    const heap = this.store.heap;
    const out = new Float32Array(list.length * C);
    const at = heap.alloc(C * 4);
    try {
      list.forEach((id, r) => {
        this.store!.dequantizeRows('wte.weight', id, 1, at);
        out.set(heap.f32(at, C), r * C);
      });
    } finally {
      heap.release(at);
    }
    return tf.tensor2d(out, [list.length, C]);
  }

  /**
   * A masked-LM's padding mask for a batch of `tLen` columns (null: causal, or no padding); the
   * caller disposes it.
   */
  private padMask(tLen: number, opts: ForwardOptions): tf.Tensor3D | null {
    if (!isMaskedLm(this.config) || !opts.lengths?.some((n) => n < tLen)) return null;
    return paddingMask(opts.lengths, tLen, this.config.nHead);
  }

  /** The attention of training and scoring: causal for a GPT, both ways for a masked-LM. */
  private attention(d: Dropout | null, padMask: tf.Tensor3D | null) {
    return causalSelfAttention(d, { causal: !isMaskedLm(this.config), padMask });
  }

  /** The top hidden states h_L [B·T, C] (after the final LayerNorm) for ids [B, T]. */
  hidden(idx: T2, opts: ForwardOptions & { capture?: ForwardCapture } = {}): T2 {
    const [batch, tLen] = idx.shape;
    const { nLayer, nHead } = this.config;
    const d = Dropout.of(this.config.dropout, opts);
    if (nLayer > 0) checkTensorSize([nHead * batch, tLen, tLen], 'the attention scores');
    const mask = this.padMask(tLen, opts);
    try {
      const attend = captureAttention(this.attention(d, mask), opts.capture?.attention);
      let x = tf.tidy(() => dropout(this.embed(idx, 0), d, SALT.embedding).y);
      opts.capture?.residual.push(tf.keep(x));
      for (let i = 0; i < nLayer; i++) {
        // what the block computes on the way is freed with it (a stored model's weights too)
        const ctx = this.context(i, batch, tLen, d);
        x = tf.tidy(() => block(x, this.blockParams(i), ctx, attend).out);
        opts.capture?.residual.push(tf.keep(x));
      }
      return this.top(x);
    } finally {
      mask?.dispose();
    }
  }

  /**
   * What the model does to its last block's output before the LM head (LN_f; nothing in GPT-1's
   * layout), applied to any residual stream x [N, C]: the logit lens reads each layer's through it.
   */
  finalNorm(x: T2): T2 {
    return this.top(x);
  }

  /** W_e [V, C] read back to the host, row-major (with a store: dequantised). */
  async tokenEmbedding(): Promise<Float32Array> {
    const v = this.tree.wte.weight;
    if (!v) return this.store!.dequantize('wte.weight');
    return (await v.data()) as Float32Array;
  }

  /** softmax(h W_eᵀ) logits [N, V]. */
  lmHead(h: T2): T2 {
    checkTensorSize([h.shape[0], this.config.vocabSize], 'the logits');
    return lmLogits(h, this.wte);
  }

  /** GPT-1's L1 as a mean per token: cross-entropy of next-token predictions. */
  loss(idx: T2, targets: T2, opts: ForwardOptions = {}): tf.Scalar {
    const [batch, tLen] = targets.shape;
    return crossEntropy(
      this.lmHead(this.hidden(idx, opts)),
      tf.reshape(targets, [batch * tLen]) as tf.Tensor1D,
    );
  }

  /** The LM head's L1 against next-token targets [B, T] (−1: none), as lossAndGrads' head. */
  lmLoss(targets: T2, scale = 1): Head {
    const [batch, tLen] = targets.shape;
    return (h) => lmHead(this.wte, tf.reshape(targets, [batch * tLen]) as tf.Tensor1D, scale)(h);
  }

  /**
   * The loss of `head` on the top hidden states of ids [B, T], and its gradient for every
   * parameter (the head's own included), by an explicit backward pass block by block: the
   * training path of pretraining (head = lmLoss) and fine-tuning. tfjs's tape would keep every
   * intermediate of the forward alive until the end and copy each saved tensor; here a block
   * keeps only what its backward needs (x̂ and 1/σ of its LayerNorms, qkv, the attention
   * probabilities, the MLP's pre-activation) and frees it as soon as its backward has run.
   */
  async lossAndGrads(
    idx: T2,
    head: Head,
    opts: ForwardOptions & {
      /** Awaited between blocks, forward and backward: a caller yields there, and may throw to stop. */
      between?: () => Promise<void>;
    } = {},
  ): Promise<{
    loss: tf.Scalar;
    grads: Map<string, tf.Tensor>;
    report: Record<string, tf.Scalar>;
  }> {
    const [B, T] = idx.shape;
    const { nEmbd: C, nLayer, vocabSize: V, blockSize } = this.config;
    if (T > blockSize)
      throw new Error(`sequence of ${T} tokens exceeds the context of ${blockSize}`);
    checkTensorSize([B * T, V], 'the logits');
    checkTensorSize([this.config.nHead * B, T, T], 'the attention scores');
    const d = Dropout.of(this.config.dropout, opts);
    const mask = this.padMask(T, opts);
    const attend = this.attention(d, mask);
    const grads = new Map<string, tf.Tensor>();
    const ids = tf.reshape(idx, [B * T]) as tf.Tensor1D;

    // forward: embeddings, then each block keeps what its backward needs
    const emb = scope(() => dropout(this.embed(idx, 0), d, SALT.embedding));
    let x: T2 = emb.y;
    const saved: Array<BlockSaved<AttentionSaved> | null> = [];
    // everything still held, for cleanup when `between` throws (a stop mid-step)
    const held = (): tf.Tensor[] => [
      ids,
      ...(mask ? [mask] : []),
      emb.y,
      ...(emb.keep ? [emb.keep] : []),
      ...(x !== emb.y && !x.isDisposed ? [x] : []),
      ...saved.flatMap((s) => (s ? savedTensors(s) : [])),
      ...grads.values(),
    ];
    try {
      for (let i = 0; i < nLayer; i++) {
        await opts.between?.();
        const ctx = this.context(i, B, T, d);
        const r = scope(() => block(x, this.transformer.h[i]!, ctx, attend));
        if (i > 0) x.dispose();
        x = r.out;
        saved.push(r.saved);
      }
    } catch (err) {
      tf.dispose(held());
      throw err;
    }

    // the head on h = LN_f(x), and back through LN_f (GPT-1's layout: on x itself)
    const top = scope(() => {
      const lnf = this.lnF(x);
      const out = head(lnf?.y ?? x);
      if (!lnf) return { loss: out.loss, grads: out.grads, report: out.report ?? {}, dx: out.dh };
      const g = this.transformer.ln_f!.weight;
      const [dx, dg, db] = layerNormBackward(out.dh, lnf.xhat, lnf.rstd, g);
      return { loss: out.loss, grads: out.grads, report: out.report ?? {}, dx, dg, db };
    });
    const topTensors = () => [top.loss, ...Object.values(top.grads), ...Object.values(top.report)];
    if (nLayer > 0) x.dispose();
    if (top.dg && top.db) {
      grads.set('ln_f.weight', top.dg);
      grads.set('ln_f.bias', top.db);
    }

    // backward through the blocks, freeing what each saved once used
    let dx: T2 = top.dx;
    try {
      for (let i = nLayer - 1; i >= 0; i--) {
        await opts.between?.();
        const s = saved[i]!;
        const p = this.transformer.h[i]!;
        const r = scope(() => blockBackward(dx, s, p, this.context(i, B, T, d)));
        dx.dispose();
        tf.dispose(savedTensors(s));
        saved[i] = null;
        dx = r.dx;
        // in the order they were computed: the last layer first
        for (const [name, l] of blockLayers(r.grads).reverse()) {
          grads.set(`h.${i}.${name}.weight`, l.weight);
          grads.set(`h.${i}.${name}.bias`, l.bias);
        }
      }
    } catch (err) {
      tf.dispose([...held(), dx, ...topTensors()]);
      throw err;
    }

    // embeddings: W_e gets the scattered token rows, plus the head's gradient when it reads W_e
    const { 'wte.weight': headWte, ...headOwn } = top.grads;
    const embGrads = scope(() => {
      const dEmb = emb.keep ? (tf.mul(dx, emb.keep) as T2) : dx;
      const scattered = tf.scatterND(tf.expandDims(ids, 1), dEmb, [V, C]);
      const dwte = headWte ? tf.add(headWte, scattered) : scattered;
      // Σ over the batch as ones[1, B] · d[B, T·C] (a reduction over axis 0 is slow on wasm)
      const sum = tf.matMul(tf.ones([1, B]), tf.reshape(dEmb, [B, T * C]));
      let dwpe = tf.reshape(sum, [T, C]) as T2;
      if (T < blockSize) dwpe = tf.concat([dwpe, tf.zeros([blockSize - T, C])]) as T2;
      return { dwte, dwpe };
    });
    tf.dispose([dx, emb.y, ids, ...(mask ? [mask] : []), ...(headWte ? [headWte] : [])]);
    if (emb.keep) emb.keep.dispose();
    grads.set('wte.weight', embGrads.dwte);
    grads.set('wpe.weight', embGrads.dwpe);
    for (const [name, g] of Object.entries(headOwn)) grads.set(name, g);
    return { loss: top.loss, grads, report: top.report };
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
      const attend = cachedSelfAttention(cache);
      let x = this.embed(idx, past);
      const k: tf.Tensor3D[] = [];
      const v: tf.Tensor3D[] = [];
      for (let i = 0; i < nLayer; i++) {
        const ctx = this.context(i, batch, tLen, null);
        const r = scope(() => {
          const { out, saved } = block(x, this.blockParams(i), ctx, attend);
          return { out, k: saved.att.k, v: saved.att.v };
        });
        x = r.out;
        k.push(r.k);
        v.push(r.v);
      }
      if (lastOnly && tLen > 1) {
        const last = tf.slice(tf.reshape(x, [batch, tLen, C]), [0, tLen - 1, 0], [batch, 1, C]);
        x = tf.reshape(last, [batch, C]);
      }
      const logits = this.lmHead(this.top(x));
      return { logits, cache: { k, v, length: past + tLen, batch } };
    });
  }
}
