/**
 * The hand-written gradients of src/engine/model (ops.ts, attention.ts, head.ts) and of the whole
 * GPT's training path (GPT.lossAndGrads), checked two ways:
 *
 *  (a) against tfjs autodiff of a plain composition of standard ops (tf.matMul, tf.moments,
 *      tf.gather, tf.logSoftmax, tf.tanh, tf.erf …). The engine's forward and backward run on
 *      **wasm** (the backend they are written for); the reference runs on the **cpu** backend,
 *      whose standard gradients (UnsortedSegmentSum for gather, transposed matmuls) all exist.
 *      Both read back in float32 and are compared as ‖a − b‖ / ‖b‖ < 1e-4.
 *  (b) against central finite differences (in float64, in JS) of the whole GPT loss as the
 *      engine computes it in float32 on wasm, for the largest-gradient coordinate of several
 *      parameters.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import '@tensorflow/tfjs'; // tfjs's gradient definitions, for the autodiff references
import * as tf from '../../../src/engine/tf';
import { initBackend } from '../../../src/engine/backend';
import { attentionBackward, attentionForward } from '../../../src/engine/model/attention';
import { GPT } from '../../../src/engine/model/gpt';
import { lmHead } from '../../../src/engine/model/head';
import * as ops from '../../../src/engine/model/ops';
import { paramShapes } from '../../../src/engine/model/params';
import {
  allClose,
  maxAbs,
  randomFloats,
  randomIds,
  randomWeights,
  relError,
  tinyConfig,
} from '../helpers';
import { referenceGrads, referenceHidden, referenceLmLoss } from './standardGpt';

beforeAll(async () => {
  await initBackend('wasm');
});

interface Input {
  shape: number[];
  data: Float32Array;
}
const input = (shape: number[], seed: number, scale = 1): Input => ({
  shape,
  data: randomFloats(
    shape.reduce((a, b) => a * b, 1),
    seed,
    scale,
  ),
});

interface GradResult {
  value: Float32Array;
  grads: Float32Array[];
}

/**
 * Reference: value and d(Σ f(xs) ⊙ cot)/dxs by autodiff on the cpu backend; with cot undefined,
 * f must return a scalar and the gradient is of f itself. Switches back to wasm afterwards.
 */
async function autodiff(
  f: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: Input[],
  cot?: Float32Array,
): Promise<GradResult> {
  await initBackend('cpu');
  try {
    const xs = inputs.map((i) => tf.tensor(i.data, i.shape));
    const objective = (...a: tf.Tensor[]): tf.Scalar => {
      const y = f(...a);
      return (cot ? tf.sum(tf.mul(y, tf.tensor(cot, y.shape))) : y) as tf.Scalar;
    };
    const { value, grads } = tf.valueAndGrads(objective)(xs);
    const out = await read(value, grads);
    tf.dispose([...xs, value, ...grads]);
    return out;
  } finally {
    await initBackend('wasm');
  }
}

async function read(value: tf.Tensor, grads: tf.Tensor[]): Promise<GradResult> {
  return {
    value: (await value.data()) as Float32Array,
    grads: await Promise.all(grads.map(async (g) => (await g.data()) as Float32Array)),
  };
}

/**
 * An engine forward and its hand-written backward, on wasm: the output for the inputs, and the
 * backward from the output's cotangent (for a scalar output none: its gradient is 1).
 */
type EngineOp = (xs: tf.Tensor[]) => {
  value: tf.Tensor;
  backward: (dy: tf.Tensor | null) => tf.Tensor[];
};

async function engine(f: EngineOp, inputs: Input[], cot?: Float32Array): Promise<GradResult> {
  expect(tf.getBackend()).toBe('wasm');
  const xs = inputs.map((i) => tf.tensor(i.data, i.shape));
  const r = tf.tidy(() => {
    const out = f(xs);
    const dy = cot ? tf.tensor(cot, out.value.shape) : null;
    // the same objective as the reference's: Σ f(xs) ⊙ cot
    const value = dy ? tf.sum(tf.mul(out.value, dy)) : out.value;
    return [value, ...out.backward(dy)];
  });
  const got = await read(r[0]!, r.slice(1));
  tf.dispose([...xs, ...r]);
  return got;
}

/** Hand-written forward/backward on wasm vs reference composition on cpu: value and every gradient. */
async function checkOp(
  name: string,
  engineOp: EngineOp,
  referenceOp: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: Input[],
  outSize: number | null,
  tol = 1e-4,
): Promise<void> {
  const cot = outSize === null ? undefined : randomFloats(outSize, 999);
  const ours = await engine(engineOp, inputs, cot);
  const ref = await autodiff(referenceOp, inputs, cot);
  expect(relError(ours.value, ref.value), `${name}: value`).toBeLessThan(tol);
  expect(ours.grads).toHaveLength(inputs.length);
  ref.grads.forEach((g, i) => {
    expect(maxAbs(g), `${name}: reference gradient ${i} is not all zeros`).toBeGreaterThan(1e-6);
    const err = relError(ours.grads[i]!, g);
    expect(err, `${name}: gradient of input ${i}`).toBeLessThan(tol);
    // element-wise too, so one wrong entry among many cannot hide in the norm
    expect(allClose(ours.grads[i]!, g, 1e-3, 1e-5 * maxAbs(g)), `${name}: grad ${i} elements`).toBe(
      true,
    );
  });
}

describe('hand-written op gradients vs autodiff of standard ops (engine on wasm, reference on cpu)', () => {
  it('linear: y = xW + b', async () => {
    const N = 6;
    const I = 5;
    const O = 7;
    await checkOp(
      'linear',
      ([x, w, b]) => ({
        value: ops.linear(x as tf.Tensor2D, { weight: w!, bias: b! }),
        backward: (dy) => ops.linearBackward(dy as tf.Tensor2D, x as tf.Tensor2D, w as tf.Tensor2D),
      }),
      (x, w, b) => tf.add(tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D), b!),
      [input([N, I], 1), input([I, O], 2), input([O], 3)],
      N * O,
    );
  });

  it('the tied LM head: L1 of logits = h W_eᵀ, its ∂/∂h and ∂/∂W_e, scaled by λ', async () => {
    const targets = [3, -1, 10, 0, 7, 7];
    const [N, V] = [targets.length, 11];
    const onehot = new Float32Array(N * V);
    targets.forEach((t, i) => {
      if (t >= 0) onehot[i * V + t] = 1;
    });
    const reference = (h: tf.Tensor, w: tf.Tensor) => {
      const logits = tf.matMul(h as tf.Tensor2D, w as tf.Tensor2D, false, true);
      return tf.div(tf.neg(tf.sum(tf.mul(tf.logSoftmax(logits), tf.tensor2d(onehot, [N, V])))), 5);
    };
    for (const scale of [1, 0.25]) {
      await checkOp(
        `lmHead × ${scale}`,
        ([h, w]) => {
          const ids = tf.tensor1d(targets, 'int32');
          const out = lmHead(w as tf.Tensor2D, ids, scale)(h as tf.Tensor2D);
          // the loss is L1; the gradients are scale·L1's
          const unscale = (g: tf.Tensor) => tf.div(g, scale);
          return {
            value: out.loss,
            backward: () => [unscale(out.dh), unscale(out.grads['wte.weight']!)],
          };
        },
        reference,
        [input([N, 8], 4), input([V, 8], 5)],
        null,
      );
    }
  });

  it('layerNorm over the last axis (x, gain and bias)', async () => {
    const eps = 1e-5;
    const reference = (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
      const { mean, variance } = tf.moments(x, -1, true);
      return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, eps))), g), b);
    };
    // a non-zero mean and a large spread in x, gains away from 1
    const x = input([7, 12], 6, 2);
    x.data.forEach((v, i) => (x.data[i] = v + 0.5 * (i % 12)));
    await checkOp(
      'layerNorm',
      ([xi, g, b]) => {
        const f = ops.layerNormForward(xi as tf.Tensor2D, g!, b!, eps);
        return {
          value: f.y,
          backward: (dy) => ops.layerNormBackward(dy as tf.Tensor2D, f.xhat, f.rstd, g!),
        };
      },
      (xi, g, b) => reference(xi!, g!, b!),
      [x, input([12], 7), input([12], 8)],
      7 * 12,
    );
  });

  it('gelu_new (tanh approximation, computed via a sigmoid)', async () => {
    const c = Math.sqrt(2 / Math.PI);
    await checkOp(
      'gelu_new',
      ([x]) => {
        const f = ops.geluForward(x!, 'gelu_new');
        return { value: f.y, backward: (dy) => [ops.geluBackward(dy!, x!, f.s, 'gelu_new')] };
      },
      (x) =>
        tf.mul(
          tf.mul(x!, 0.5),
          tf.add(1, tf.tanh(tf.mul(c, tf.add(x!, tf.mul(0.044715, tf.pow(x!, 3)))))),
        ),
      [input([5, 9], 9, 2.5)],
      45,
    );
  });

  it('gelu (exact GELU)', async () => {
    await checkOp(
      'gelu',
      ([x]) => {
        const f = ops.geluForward(x!, 'gelu');
        return { value: f.y, backward: (dy) => [ops.geluBackward(dy!, x!, f.s, 'gelu')] };
      },
      (x) => tf.mul(tf.mul(x!, 0.5), tf.add(1, tf.erf(tf.div(x!, Math.SQRT2)))),
      [input([5, 9], 10, 2.5)],
      45,
    );
  });

  it('crossEntropy with ignored targets (−1) averages over the valid ones only', async () => {
    const N = 8;
    const V = 10;
    const targets = [2, -1, 9, 0, -1, 4, 4, 7];
    const valid = targets.filter((t) => t >= 0).length;
    const onehot = new Float32Array(N * V);
    targets.forEach((t, i) => {
      if (t >= 0) onehot[i * V + t] = 1;
    });
    const reference = (logits: tf.Tensor) =>
      tf.div(tf.neg(tf.sum(tf.mul(tf.logSoftmax(logits), tf.tensor2d(onehot, [N, V])))), valid);
    const ce =
      (t: number[]): EngineOp =>
      ([logits]) => {
        const r = ops.crossEntropyWithGrad(logits as tf.Tensor2D, tf.tensor1d(t, 'int32'));
        return { value: r.loss, backward: () => [r.dlogits] };
      };
    const logits = input([N, V], 12, 3);
    await checkOp('crossEntropy', ce(targets), reference, [logits], null);

    // ignored rows get exactly zero gradient, whatever their logits
    const r = await engine(ce(targets), [logits]);
    for (const row of [1, 4]) {
      expect(Array.from(r.grads[0]!.subarray(row * V, row * V + V))).toEqual(new Array(V).fill(0));
    }
    // all targets ignored: loss 0, no NaN
    const none = await engine(ce(new Array(N).fill(-1)), [logits]);
    expect(none.value[0]).toBe(0);
    expect(none.grads[0]!.every((v) => v === 0)).toBe(true);
  });

  /** softmax(q kᵀ/√hs + causal mask) v as standard ops, with an optional dropout keep-mask. */
  function referenceAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, keep?: tf.Tensor) {
    const [, T, hs] = q.shape as [number, number, number];
    const lower = tf.linalg.bandPart(tf.ones([T, T]), -1, 0);
    const att = tf.add(
      tf.div(tf.matMul(q as tf.Tensor3D, k as tf.Tensor3D, false, true), Math.sqrt(hs)),
      tf.mul(tf.sub(1, lower), -1e9),
    );
    const p = tf.softmax(att);
    return tf.matMul(keep ? tf.mul(p, keep) : p, v as tf.Tensor3D);
  }

  /** attentionForward and attentionBackward on q, k, v stacked as qkv [3G, T, hs]. */
  const attention =
    (dropout = 0, seed?: number): EngineOp =>
    ([q, k, v]) => {
      const qkv = tf.concat([q!, k!, v!]) as tf.Tensor3D;
      const f = attentionForward(qkv, { dropout, seed });
      const backward = (dy: tf.Tensor | null) =>
        tf.split(attentionBackward(dy as tf.Tensor3D, qkv, f.p, f.pd, f.keep), 3, 0);
      return { value: f.y, backward };
    };

  it('causal attention', async () => {
    const G = 3;
    const T = 6;
    const hs = 4;
    await checkOp(
      'attention',
      attention(),
      (q, k, v) => referenceAttention(q!, k!, v!),
      [input([G, T, hs], 13), input([G, T, hs], 14), input([G, T, hs], 15)],
      G * T * hs,
    );
  });

  it('causal attention with attention dropout (same seeded keep-mask in the reference)', async () => {
    const G = 2;
    const T = 5;
    const hs = 4;
    const rate = 0.3;
    const seed = 4242;
    // tf.randomUniform is seeded in JS, so both backends draw the same numbers
    const keep = (shape: number[]) =>
      tf.div(
        tf.cast(tf.greaterEqual(tf.randomUniform(shape, 0, 1, 'float32', seed), rate), 'float32'),
        1 - rate,
      );
    await checkOp(
      'attention/dropout',
      attention(rate, seed),
      (q, k, v) => referenceAttention(q!, k!, v!, keep([G, T, T])),
      [input([G, T, hs], 16), input([G, T, hs], 17), input([G, T, hs], 18)],
      G * T * hs,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// The whole model

/** The engine's loss and gradients per parameter: GPT.lossAndGrads with the LM head. */
async function engineGrads(
  model: GPT,
  ids: number[][],
  targets: number[][],
): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
  const x = tf.tensor2d(ids, undefined, 'int32');
  const y = tf.tensor2d(targets, undefined, 'int32');
  const r = await model.lossAndGrads(x, model.lmLoss(y));
  const out = new Map<string, Float32Array>();
  for (const [name, g] of r.grads) out.set(name, (await g.data()) as Float32Array);
  const loss = (await r.loss.data())[0]!;
  tf.dispose([x, y, r.loss, ...r.grads.values()]);
  return { loss, grads: out };
}

describe('whole-model gradient', () => {
  const cfg = tinyConfig({ vocabSize: 23, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 16 });
  const weights = randomWeights(cfg, 7, 0.3);
  const B = 3;
  const T = 8;
  const seq = randomIds(B * (T + 1), cfg.vocabSize, 3);
  const ids = Array.from({ length: B }, (_, b) => seq.slice(b * (T + 1), b * (T + 1) + T));
  const targets = Array.from({ length: B }, (_, b) =>
    seq.slice(b * (T + 1) + 1, (b + 1) * (T + 1)),
  );
  targets[1]![2] = -1; // padding positions are ignored
  targets[2]![7] = -1;

  for (const activation of ['gelu_new', 'gelu'] as const) {
    it(`matches autodiff of a standard-op GPT-2 (${activation})`, async () => {
      const c = { ...cfg, activation };
      const shapes = paramShapes(c);
      const named = new Map(
        [...weights].map(([n, data]) => [n, { data, shape: shapes.get(n)! }] as const),
      );
      const ref = await referenceGrads(
        named,
        (P) => referenceLmLoss(P, referenceHidden(c, P, ids), targets),
        initBackend,
      );
      const model = new GPT(c, weights);
      try {
        const ours = await engineGrads(model, ids, targets);
        expect(Math.abs(ours.loss - ref.loss) / ref.loss, 'loss').toBeLessThan(1e-5);
        expect([...ours.grads.keys()].sort()).toEqual([...ref.grads.keys()].sort());
        for (const [name, g] of ref.grads) {
          expect(maxAbs(g), `${name}: reference gradient is non-trivial`).toBeGreaterThan(1e-5);
          expect(relError(ours.grads.get(name)!, g), name).toBeLessThan(1e-4);
        }
      } finally {
        model.dispose();
      }
    });
  }

  it('matches central finite differences of the float32 loss (eps 1e-2, rel. error < 5e-3)', async () => {
    const small = tinyConfig({ vocabSize: 20, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 8 });
    const w = randomWeights(small, 11, 0.3);
    const model = new GPT(small, w);
    const x = tf.tensor2d(
      ids.map((r) => r.map((t) => t % 20)),
      undefined,
      'int32',
    );
    const y = tf.tensor2d(
      targets.map((r) => r.map((t) => (t < 0 ? t : t % 20))),
      undefined,
      'int32',
    );
    const lossAt = async (): Promise<number> => {
      const l = tf.tidy(() => model.loss(x, y));
      const v = (await l.data())[0]!;
      l.dispose();
      return v;
    };
    try {
      const r = await model.lossAndGrads(x, model.lmLoss(y));
      const analytic = new Map<string, Float32Array>();
      for (const [n, g] of r.grads) analytic.set(n, (await g.data()) as Float32Array);
      tf.dispose([r.loss, ...r.grads.values()]);

      const checked: string[] = [];
      const names = [
        'wte.weight',
        'wpe.weight',
        'h.0.ln_1.weight',
        'h.0.ln_1.bias',
        'h.0.attn.c_attn.weight',
        'h.0.attn.c_attn.bias',
        'h.0.attn.c_proj.weight',
        'h.0.ln_2.weight',
        'h.0.mlp.c_fc.weight',
        'h.0.mlp.c_proj.bias',
        'ln_f.weight',
        'ln_f.bias',
      ];
      for (const name of names) {
        const g = analytic.get(name)!;
        // the coordinate with the largest gradient: its finite difference is well above roundoff
        let at = 0;
        for (let i = 1; i < g.length; i++) if (Math.abs(g[i]!) > Math.abs(g[at]!)) at = i;
        const v = model.params.get(name)!;
        const base = w.get(name)!;
        const eps = 1e-2;
        const f = async (delta: number) => {
          const d = Float32Array.from(base);
          d[at] = d[at]! + delta;
          v.assign(tf.tensor(d, v.shape));
          return { loss: await lossAt(), h: d[at]! };
        };
        const plus = await f(eps);
        const minus = await f(-eps);
        v.assign(tf.tensor(base, v.shape));
        const fd = (plus.loss - minus.loss) / (plus.h - minus.h);
        const an = g[at]!;
        expect(Math.abs(an), `${name}[${at}] gradient big enough to check`).toBeGreaterThan(1e-3);
        const rel = Math.abs(fd - an) / Math.max(Math.abs(an), Math.abs(fd));
        // observed ≤ 6e-4 (float32 roundoff / 2eps and O(eps²) truncation); 5e-3 leaves margin
        expect(rel, `${name}[${at}]: finite difference ${fd} vs analytic ${an}`).toBeLessThan(5e-3);
        checked.push(name);
      }
      expect(checked).toHaveLength(names.length);
    } finally {
      tf.dispose([x, y]);
      model.dispose();
    }
  });
});
