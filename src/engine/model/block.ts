/**
 * The transformer block, GPT-2's pre-LayerNorm form:
 *
 *   x ← x + Dropout(c_proj(Attention(LN_1(x) W_qkv + b_qkv)))
 *   x ← x + Dropout(c_proj(GELU(LN_2(x) W_fc + b_fc)))
 *
 * One forward, `block`, serves training, scoring and cached inference (they differ only in the
 * attention they pass in), and `blockBackward` is its gradient.
 */
import * as tf from '../tf';
import {
  attentionBackward,
  mergeHeads,
  mergeQkv,
  splitHeads,
  splitQkv,
  type Attend,
  type AttentionSaved,
} from './attention';
import type { GPTConfig } from './config';
import { SALT, dropout, type Dropout } from './dropout';
import {
  geluBackward,
  geluForward,
  layerNormBackward,
  layerNormForward,
  linear,
  linearBackward,
  type BmmStrategy,
} from './ops';
import type { BlockParams } from './params';

type T2 = tf.Tensor2D;
type T3 = tf.Tensor3D;

/** Where a block runs: its layer, the batch's shape, and the forward's dropout (null: none). */
export interface BlockContext {
  config: GPTConfig;
  layer: number;
  batch: number;
  tLen: number;
  dropout: Dropout | null;
}

/** What a block's forward leaves for its backward (`att`: whatever the attention kept). */
export interface BlockSaved<A> {
  /** LN_1's x̂ and 1/σ. */
  xhat1: T2;
  rstd1: T2;
  /** q, k, v by head [3·nHead·B, T, hs]. */
  qkv: T3;
  att: A;
  /** The attention's output, heads merged [B·T, C]. */
  y: T2;
  keepA: tf.Tensor | null;
  xhat2: T2;
  rstd2: T2;
  /** The MLP's pre-activation and GELU's saved factor. */
  f: T2;
  s: T2;
  keepM: tf.Tensor | null;
}

/**
 * One block on the residual stream x [B·T, C]: the stream after it, and what its backward needs.
 * `attend` is the attention's core (./attention.ts: causal within the sequence, or over a KV cache).
 */
export function block<A>(
  x: T2,
  p: BlockParams<tf.Tensor>,
  c: BlockContext,
  attend: Attend<A>,
): { out: T2; saved: BlockSaved<A> } {
  const { nHead, layerNormEpsilon: eps, activation } = c.config;
  // attention
  const ln1 = layerNormForward(x, p.ln_1.weight, p.ln_1.bias, eps);
  const qkv = splitQkv(linear(ln1.y, p.attn.c_attn), nHead, c.batch, c.tLen);
  const att = attend(qkv, c.layer);
  const y = mergeHeads(att.y, nHead, c.batch, c.tLen);
  const a = dropout(linear(y, p.attn.c_proj), c.dropout, SALT.attnOut(c.layer));
  const x2 = tf.add(x, a.y) as T2;
  // MLP
  const ln2 = layerNormForward(x2, p.ln_2.weight, p.ln_2.bias, eps);
  const f = linear(ln2.y, p.mlp.c_fc);
  const g = geluForward(f, activation);
  const m = dropout(linear(g.y, p.mlp.c_proj), c.dropout, SALT.mlpOut(c.layer));
  const saved: BlockSaved<A> = {
    xhat1: ln1.xhat,
    rstd1: ln1.rstd,
    qkv,
    att: att.saved,
    y,
    keepA: a.keep,
    xhat2: ln2.xhat,
    rstd2: ln2.rstd,
    f,
    s: g.s,
    keepM: m.keep,
  };
  return { out: tf.add(x2, m.y) as T2, saved };
}

/** Every tensor a block's forward saved. */
export function savedTensors(s: BlockSaved<AttentionSaved>): tf.Tensor[] {
  const { xhat1, rstd1, qkv, att, y, keepA, xhat2, rstd2, f, keepM } = s;
  const all = [xhat1, rstd1, qkv, att.p, att.pd, att.keep, y, keepA, xhat2, rstd2, f, s.s];
  return [...all, keepM].filter((t): t is tf.Tensor => t !== null);
}

/**
 * The block's gradient from its output's, dout: ∂L/∂x and ∂L/∂(each parameter). LN_1's and
 * LN_2's outputs and the GELU's are recomputed from what was saved.
 */
export function blockBackward(
  dout: T2,
  c: BlockSaved<AttentionSaved>,
  p: BlockParams<tf.Tensor>,
  ctx: BlockContext,
  strategy: BmmStrategy,
): { dx: T2; grads: BlockParams<tf.Tensor> } {
  const { nHead, activation } = ctx.config;
  const { batch: B, tLen: T } = ctx;
  const w = (t: tf.Tensor) => t as T2;
  // MLP branch: m = gelu(LN2(x2) W_fc + b_fc) W_proj + b_proj
  const dm = c.keepM ? (tf.mul(dout, c.keepM) as T2) : dout;
  const g = tf.mul(c.f, c.s) as T2;
  const [dg, dWpr, dbpr] = linearBackward(dm, g, w(p.mlp.c_proj.weight));
  const df = geluBackward(dg, c.f, c.s, activation);
  const h2 = tf.add(tf.mul(c.xhat2, p.ln_2.weight), p.ln_2.bias) as T2;
  const [dh2, dWfc, dbfc] = linearBackward(df, h2, w(p.mlp.c_fc.weight));
  const [dln2, dg2, db2] = layerNormBackward(dh2, c.xhat2, c.rstd2, p.ln_2.weight);
  const dx2 = tf.add(dout, dln2) as T2;
  // attention branch: a = attn(LN1(x) W_qkv + b_qkv) W_o + b_o
  const da = c.keepA ? (tf.mul(dx2, c.keepA) as T2) : dx2;
  const [dy, dWo, dbo] = linearBackward(da, c.y, w(p.attn.c_proj.weight));
  const { p: probs, pd, keep } = c.att;
  const dqkv = attentionBackward(splitHeads(dy, nHead, B, T), c.qkv, probs, pd, keep, strategy);
  const h1 = tf.add(tf.mul(c.xhat1, p.ln_1.weight), p.ln_1.bias) as T2;
  const [dh1, dWqkv, dbqkv] = linearBackward(
    mergeQkv(dqkv, nHead, B, T),
    h1,
    w(p.attn.c_attn.weight),
  );
  const [dln1, dg1, db1] = layerNormBackward(dh1, c.xhat1, c.rstd1, p.ln_1.weight);
  const grads: BlockParams<tf.Tensor> = {
    ln_1: { weight: dg1, bias: db1 },
    attn: { c_attn: { weight: dWqkv, bias: dbqkv }, c_proj: { weight: dWo, bias: dbo } },
    ln_2: { weight: dg2, bias: db2 },
    mlp: { c_fc: { weight: dWfc, bias: dbfc }, c_proj: { weight: dWpr, bias: dbpr } },
  };
  return { dx: tf.add(dx2, dln1) as T2, grads };
}
