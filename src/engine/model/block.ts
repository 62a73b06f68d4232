/**
 * The transformer block, GPT-2's pre-LayerNorm form:
 *
 *   x ← x + Dropout(c_proj(Attention(LN_1(x) W_qkv + b_qkv)))
 *   x ← x + Dropout(c_proj(GELU(LN_2(x) W_fc + b_fc)))
 *
 * or GPT-1's post-LayerNorm form (config.layout 'gpt1'):
 *
 *   x ← LN_1(x + Dropout(c_proj(Attention(x W_qkv + b_qkv))))
 *   x ← LN_2(x + Dropout(c_proj(GELU(x W_fc + b_fc))))
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
import { isPostLn, type GPTConfig } from './config';
import { SALT, dropout, type Dropout } from './dropout';
import {
  geluBackward,
  geluForward,
  layerNormBackward,
  layerNormForward,
  linear,
  linearBackward,
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
  /** The block's input x: GPT-1's layout only (its attention reads x itself), else null. */
  input: T2 | null;
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

/** The attention branch on its input h: a = Dropout(c_proj(Attention(h W_qkv + b_qkv))). */
function attentionBranch<A>(h: T2, p: BlockParams<tf.Tensor>, c: BlockContext, attend: Attend<A>) {
  const qkv = splitQkv(linear(h, p.attn.c_attn), c.config.nHead, c.batch, c.tLen);
  const att = attend(qkv, c.layer);
  const y = mergeHeads(att.y, c.config.nHead, c.batch, c.tLen);
  const a = dropout(linear(y, p.attn.c_proj), c.dropout, SALT.attnOut(c.layer));
  return { qkv, att, y, a };
}

/** The MLP branch on its input h: m = Dropout(c_proj(GELU(h W_fc + b_fc))). */
function mlpBranch(h: T2, p: BlockParams<tf.Tensor>, c: BlockContext) {
  const f = linear(h, p.mlp.c_fc);
  const g = geluForward(f, c.config.activation);
  const m = dropout(linear(g.y, p.mlp.c_proj), c.dropout, SALT.mlpOut(c.layer));
  return { f, g, m };
}

/**
 * One block on the residual stream x [B·T, C]: the stream after it, and what its backward needs.
 * `attend` is the attention's core (./attention.ts: causal within the sequence, or over a KV cache).
 * GPT-2's layout normalises each branch's input (pre-LayerNorm); GPT-1's normalises the stream
 * after each residual add (post-LayerNorm): x ← LN_1(x + attn(x)); x ← LN_2(x + mlp(x)).
 */
export function block<A>(
  x: T2,
  p: BlockParams<tf.Tensor>,
  c: BlockContext,
  attend: Attend<A>,
): { out: T2; saved: BlockSaved<A> } {
  const eps = c.config.layerNormEpsilon;
  const post = isPostLn(c.config);
  const ln = (t: T2, l: BlockParams<tf.Tensor>['ln_1']) =>
    layerNormForward(t, l.weight, l.bias, eps);
  let ln1, ln2, A, M, out: T2;
  if (post) {
    A = attentionBranch(x, p, c, attend);
    ln1 = ln(tf.add(x, A.a.y) as T2, p.ln_1);
    M = mlpBranch(ln1.y, p, c);
    ln2 = ln(tf.add(ln1.y, M.m.y) as T2, p.ln_2);
    out = ln2.y;
  } else {
    ln1 = ln(x, p.ln_1);
    A = attentionBranch(ln1.y, p, c, attend);
    const x2 = tf.add(x, A.a.y) as T2;
    ln2 = ln(x2, p.ln_2);
    M = mlpBranch(ln2.y, p, c);
    out = tf.add(x2, M.m.y) as T2;
  }
  const saved: BlockSaved<A> = {
    input: post ? (tf.clone(x) as T2) : null,
    xhat1: ln1.xhat,
    rstd1: ln1.rstd,
    qkv: A.qkv,
    att: A.att.saved,
    y: A.y,
    keepA: A.a.keep,
    xhat2: ln2.xhat,
    rstd2: ln2.rstd,
    f: M.f,
    s: M.g.s,
    keepM: M.m.keep,
  };
  return { out, saved };
}

/** Every tensor a block's forward saved. */
export function savedTensors(s: BlockSaved<AttentionSaved>): tf.Tensor[] {
  const { input, xhat1, rstd1, qkv, att, y, keepA, xhat2, rstd2, f, keepM } = s;
  const all = [input, xhat1, rstd1, qkv, att.p, att.pd, att.keep, y, keepA, xhat2, rstd2, f, s.s];
  return [...all, keepM].filter((t): t is tf.Tensor => t !== null);
}

/**
 * The MLP branch's gradient from its output's, dm: ∂L/∂(its input h) and its parameters' (the
 * GELU's output recomputed from what was saved).
 */
function mlpBackward(
  dout: T2,
  h: T2,
  c: BlockSaved<AttentionSaved>,
  p: BlockParams<tf.Tensor>,
  activation: GPTConfig['activation'],
) {
  const w = (t: tf.Tensor) => t as T2;
  const dm = c.keepM ? (tf.mul(dout, c.keepM) as T2) : dout;
  const g = tf.mul(c.f, c.s) as T2;
  const [dg, dWpr, dbpr] = linearBackward(dm, g, w(p.mlp.c_proj.weight));
  const df = geluBackward(dg, c.f, c.s, activation);
  const [dh, dWfc, dbfc] = linearBackward(df, h, w(p.mlp.c_fc.weight));
  return { dh, c_fc: { weight: dWfc, bias: dbfc }, c_proj: { weight: dWpr, bias: dbpr } };
}

/** The attention branch's gradient from its output's: ∂L/∂(its input h) and its parameters'. */
function attentionBackwardBranch(
  dout: T2,
  h: T2,
  c: BlockSaved<AttentionSaved>,
  p: BlockParams<tf.Tensor>,
  ctx: BlockContext,
) {
  const { nHead } = ctx.config;
  const { batch: B, tLen: T } = ctx;
  const w = (t: tf.Tensor) => t as T2;
  const da = c.keepA ? (tf.mul(dout, c.keepA) as T2) : dout;
  const [dy, dWo, dbo] = linearBackward(da, c.y, w(p.attn.c_proj.weight));
  const { p: probs, pd, keep } = c.att;
  const dqkv = attentionBackward(splitHeads(dy, nHead, B, T), c.qkv, probs, pd, keep);
  const [dh, dWqkv, dbqkv] = linearBackward(
    mergeQkv(dqkv, nHead, B, T),
    h,
    w(p.attn.c_attn.weight),
  );
  return { dh, c_attn: { weight: dWqkv, bias: dbqkv }, c_proj: { weight: dWo, bias: dbo } };
}

/**
 * The block's gradient from its output's, dout: ∂L/∂x and ∂L/∂(each parameter). The LayerNorms'
 * outputs and the GELU's are recomputed from what was saved.
 */
export function blockBackward(
  dout: T2,
  c: BlockSaved<AttentionSaved>,
  p: BlockParams<tf.Tensor>,
  ctx: BlockContext,
): { dx: T2; grads: BlockParams<tf.Tensor> } {
  const { activation } = ctx.config;
  const lnOut = (xhat: T2, l: BlockParams<tf.Tensor>['ln_1']) =>
    tf.add(tf.mul(xhat, l.weight), l.bias) as T2;
  let dx: T2, mlp, attn, dg1, db1, dg2, db2;
  if (c.input) {
    // GPT-1: out = LN2(n + mlp(n)), n = LN1(x + attn(x))
    const [dx2, g2, b2] = layerNormBackward(dout, c.xhat2, c.rstd2, p.ln_2.weight);
    const n = lnOut(c.xhat1, p.ln_1);
    mlp = mlpBackward(dx2, n, c, p, activation);
    const dn = tf.add(dx2, mlp.dh) as T2;
    const [dx1, g1, b1] = layerNormBackward(dn, c.xhat1, c.rstd1, p.ln_1.weight);
    attn = attentionBackwardBranch(dx1, c.input, c, p, ctx);
    dx = tf.add(dx1, attn.dh) as T2;
    [dg1, db1, dg2, db2] = [g1, b1, g2, b2];
  } else {
    // GPT-2: x2 = x + attn(LN1(x)), out = x2 + mlp(LN2(x2))
    mlp = mlpBackward(dout, lnOut(c.xhat2, p.ln_2), c, p, activation);
    const [dln2, g2, b2] = layerNormBackward(mlp.dh, c.xhat2, c.rstd2, p.ln_2.weight);
    const dx2 = tf.add(dout, dln2) as T2;
    attn = attentionBackwardBranch(dx2, lnOut(c.xhat1, p.ln_1), c, p, ctx);
    const [dln1, g1, b1] = layerNormBackward(attn.dh, c.xhat1, c.rstd1, p.ln_1.weight);
    dx = tf.add(dx2, dln1) as T2;
    [dg1, db1, dg2, db2] = [g1, b1, g2, b2];
  }
  const grads: BlockParams<tf.Tensor> = {
    ln_1: { weight: dg1, bias: db1 },
    attn: { c_attn: attn.c_attn, c_proj: attn.c_proj },
    ln_2: { weight: dg2, bias: db2 },
    mlp: { c_fc: mlp.c_fc, c_proj: mlp.c_proj },
  };
  return { dx, grads };
}
