/**
 * The hand-written gradients of src/engine/model/ops.ts and of the whole GPT, checked two ways:
 *
 *  (a) against tfjs autodiff of a plain composition of standard ops (tf.matMul, tf.moments,
 *      tf.gather, tf.logSoftmax, tf.tanh, tf.erf …). The engine's ops run on **wasm** (the backend
 *      they are written for); the reference runs on the **cpu** backend, whose standard gradients
 *      (UnsortedSegmentSum for gather, transposed matmuls) all exist. Both read back in float32 and
 *      are compared as ‖a − b‖ / ‖b‖ < 1e-4.
 *  (b) against central finite differences (in float64, in JS) of the whole GPT loss as the
 *      engine computes it in float32 on wasm, for the largest-gradient coordinate of several
 *      parameters.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../../src/engine/tf';
import { initBackend } from '../../../src/engine/backend';
import type { GPTConfig } from '../../../src/engine/checkpoint/config';
import { GPT, paramShapes } from '../../../src/engine/model/gpt';
import {
  causalAttention,
  crossEntropy,
  embedding,
  geluErf,
  geluNew,
  layerNorm,
  linear,
  tiedLmHead,
  type BmmStrategy,
} from '../../../src/engine/model/ops';
import {
  allClose,
  maxAbs,
  randomFloats,
  randomIds,
  randomWeights,
  relError,
  tinyConfig,
} from '../helpers';

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
 * value and d(Σ f(xs) ⊙ cot)/dxs on `backend`; with cot undefined, f must return a scalar and the
 * gradient is of f itself. Switches back to wasm afterwards.
 */
async function gradsOn(
  backend: 'wasm' | 'cpu',
  f: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: Input[],
  cot?: Float32Array,
): Promise<GradResult> {
  await initBackend(backend);
  try {
    expect(tf.getBackend()).toBe(backend);
    const xs = inputs.map((i) => tf.tensor(i.data, i.shape));
    const objective = (...a: tf.Tensor[]): tf.Scalar => {
      const y = f(...a);
      return (cot ? tf.sum(tf.mul(y, tf.tensor(cot, y.shape))) : y) as tf.Scalar;
    };
    const { value, grads } = tf.valueAndGrads(objective)(xs);
    const out = {
      value: (await value.data()) as Float32Array,
      grads: await Promise.all(grads.map(async (g) => (await g.data()) as Float32Array)),
    };
    tf.dispose([...xs, value, ...grads]);
    return out;
  } finally {
    await initBackend('wasm');
  }
}

/** Hand-written op on wasm vs reference composition on cpu: value and every gradient. */
async function checkOp(
  name: string,
  engineOp: (...xs: tf.Tensor[]) => tf.Tensor,
  referenceOp: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: Input[],
  outSize: number | null,
  tol = 1e-4,
): Promise<void> {
  const cot = outSize === null ? undefined : randomFloats(outSize, 999);
  const ours = await gradsOn('wasm', engineOp, inputs, cot);
  const ref = await gradsOn('cpu', referenceOp, inputs, cot);
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
      (x, w, b) => linear(x as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D),
      (x, w, b) => tf.add(tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D), b!),
      [input([N, I], 1), input([I, O], 2), input([O], 3)],
      N * O,
    );
  });

  it('tiedLmHead: logits = h Wᵀ', async () => {
    await checkOp(
      'tiedLmHead',
      (h, w) => tiedLmHead(h as tf.Tensor2D, w as tf.Tensor2D),
      (h, w) => tf.matMul(h as tf.Tensor2D, w as tf.Tensor2D, false, true),
      [input([6, 8], 4), input([11, 8], 5)],
      6 * 11,
    );
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
      (xi, g, b) => layerNorm(xi as tf.Tensor2D, g as tf.Tensor1D, b as tf.Tensor1D, eps),
      (xi, g, b) => reference(xi!, g!, b!),
      [x, input([12], 7), input([12], 8)],
      7 * 12,
    );
  });

  it('geluNew (tanh approximation, computed via a sigmoid)', async () => {
    const c = Math.sqrt(2 / Math.PI);
    await checkOp(
      'geluNew',
      (x) => geluNew(x!),
      (x) =>
        tf.mul(
          tf.mul(x!, 0.5),
          tf.add(1, tf.tanh(tf.mul(c, tf.add(x!, tf.mul(0.044715, tf.pow(x!, 3)))))),
        ),
      [input([5, 9], 9, 2.5)],
      45,
    );
  });

  it('geluErf (exact GELU)', async () => {
    await checkOp(
      'geluErf',
      (x) => geluErf(x!),
      (x) => tf.mul(tf.mul(x!, 0.5), tf.add(1, tf.erf(tf.div(x!, Math.SQRT2)))),
      [input([5, 9], 10, 2.5)],
      45,
    );
  });

  it('embedding with repeated ids scatters-adds every occurrence', async () => {
    const ids = [3, 1, 3, 0, 3, 5, 1, 1, 6];
    // The ids tensor must outlive the forward pass (see the it.fails below), as GPT.embed's does.
    let idsT: tf.Tensor1D | undefined;
    const engine = (w: tf.Tensor) => {
      idsT ??= tf.keep(tf.tensor1d(ids, 'int32'));
      return embedding(w as tf.Tensor2D, idsT);
    };
    try {
      await checkOp(
        'embedding',
        engine,
        (w) => tf.gather(w!, tf.tensor1d(ids, 'int32')),
        [input([8, 4], 11)],
        ids.length * 4,
      );
      // rows never used (2, 4, 7) get exactly zero gradient; row 3 gets the sum of three dy rows
      const cot = randomFloats(ids.length * 4, 999);
      const r = await gradsOn('wasm', engine, [input([8, 4], 11)], cot);
      const g = r.grads[0]!;
      for (const row of [2, 4, 7]) {
        expect(Array.from(g.subarray(row * 4, row * 4 + 4))).toEqual([0, 0, 0, 0]);
      }
      for (let c = 0; c < 4; c++) {
        expect(g[3 * 4 + c]).toBeCloseTo(cot[0 * 4 + c]! + cot[2 * 4 + c]! + cot[4 * 4 + c]!, 5);
      }
    } finally {
      idsT?.dispose();
    }
  });

  // The gradient saves the ids, so ids created inside the differentiated function (freed by the
  // forward pass's tidy) still reach the backward pass.
  it('embedding backward with ids created inside the differentiated function', async () => {
    const r = await gradsOn(
      'wasm',
      (w) => embedding(w as tf.Tensor2D, tf.tensor1d([1, 1, 2], 'int32')),
      [input([4, 3], 19)],
      randomFloats(9, 998),
    );
    expect(r.grads[0]!.some((v) => v !== 0)).toBe(true);
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
    const engine = (logits: tf.Tensor) =>
      crossEntropy(logits as tf.Tensor2D, tf.tensor1d(targets, 'int32'));
    const logits = input([N, V], 12, 3);
    await checkOp('crossEntropy', engine, reference, [logits], null);

    // ignored rows get exactly zero gradient, whatever their logits
    const r = await gradsOn('wasm', engine, [logits]);
    for (const row of [1, 4]) {
      expect(Array.from(r.grads[0]!.subarray(row * V, row * V + V))).toEqual(new Array(V).fill(0));
    }
    // all targets ignored: loss 0, no NaN
    const none = await gradsOn(
      'wasm',
      (l) => crossEntropy(l as tf.Tensor2D, tf.tensor1d(new Array(N).fill(-1), 'int32')),
      [logits],
    );
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

  for (const strategy of ['batched', 'unrolled'] as BmmStrategy[]) {
    it(`causalAttention, strategy '${strategy}'`, async () => {
      const G = 3;
      const T = 6;
      const hs = 4;
      await checkOp(
        `causalAttention/${strategy}`,
        (q, k, v) =>
          causalAttention(tf.concat([q!, k!, v!]) as tf.Tensor3D, { strategy, dropout: 0 }),
        (q, k, v) => referenceAttention(q!, k!, v!),
        [input([G, T, hs], 13), input([G, T, hs], 14), input([G, T, hs], 15)],
        G * T * hs,
      );
    });
  }

  it('causalAttention with attention dropout (same seeded keep-mask in the reference)', async () => {
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
      'causalAttention/dropout',
      (q, k, v) =>
        causalAttention(tf.concat([q!, k!, v!]) as tf.Tensor3D, {
          strategy: 'batched',
          dropout: rate,
          seed,
        }),
      (q, k, v) => referenceAttention(q!, k!, v!, keep([G, T, T])),
      [input([G, T, hs], 16), input([G, T, hs], 17), input([G, T, hs], 18)],
      G * T * hs,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// The whole model

/** GPT-2's loss written with standard ops only (tf.gather, tf.moments, tf.logSoftmax, …). */
function referenceLoss(
  cfg: GPTConfig,
  P: Map<string, tf.Tensor>,
  ids: number[][],
  targets: number[][],
): tf.Scalar {
  const B = ids.length;
  const T = ids[0]!.length;
  const { nEmbd: C, nHead: H, vocabSize: V } = cfg;
  const hs = C / H;
  const p = (n: string) => P.get(n)!;
  const ln = (x: tf.Tensor, name: string) => {
    const { mean, variance } = tf.moments(x, -1, true);
    const xhat = tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, cfg.layerNormEpsilon)));
    return tf.add(tf.mul(xhat, p(name + '.weight')), p(name + '.bias'));
  };
  const conv1d = (x: tf.Tensor, name: string) =>
    tf.add(
      tf.matMul(tf.reshape(x, [-1, x.shape.at(-1)!]), p(name + '.weight') as tf.Tensor2D),
      p(name + '.bias'),
    );
  const act = (x: tf.Tensor) =>
    cfg.activation === 'gelu'
      ? tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.div(x, Math.SQRT2))))
      : tf.mul(
          tf.mul(x, 0.5),
          tf.add(
            1,
            tf.tanh(tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))))),
          ),
        );
  const lower = tf.linalg.bandPart(tf.ones([T, T]), -1, 0);
  const negMask = tf.mul(tf.sub(1, lower), -1e9);

  let x: tf.Tensor = tf.add(
    tf.gather(p('wte.weight'), tf.tensor2d(ids, [B, T], 'int32')),
    tf.slice(p('wpe.weight'), [0, 0], [T, C]),
  ); // [B, T, C]
  for (let i = 0; i < cfg.nLayer; i++) {
    const pre = `h.${i}.`;
    const qkv = tf.reshape(conv1d(ln(x, pre + 'ln_1'), pre + 'attn.c_attn'), [B, T, 3, H, hs]);
    const part = (j: number) =>
      tf.transpose(tf.squeeze(tf.slice(qkv, [0, 0, j, 0, 0], [B, T, 1, H, hs]), [2]), [0, 2, 1, 3]);
    const [q, k, v] = [part(0), part(1), part(2)] as tf.Tensor4D[];
    const att = tf.add(tf.div(tf.matMul(q!, k!, false, true), Math.sqrt(hs)), negMask);
    const y = tf.reshape(tf.transpose(tf.matMul(tf.softmax(att), v!), [0, 2, 1, 3]), [B, T, C]);
    x = tf.add(x, tf.reshape(conv1d(y, pre + 'attn.c_proj'), [B, T, C]));
    const m = conv1d(act(conv1d(ln(x, pre + 'ln_2'), pre + 'mlp.c_fc')), pre + 'mlp.c_proj');
    x = tf.add(x, tf.reshape(m, [B, T, C]));
  }
  const h = tf.reshape(ln(x, 'ln_f'), [B * T, C]);
  const logits = tf.matMul(h, p('wte.weight') as tf.Tensor2D, false, true);
  const flat = targets.flat();
  const onehot = new Float32Array(B * T * V);
  flat.forEach((t, i) => {
    if (t >= 0) onehot[i * V + t] = 1;
  });
  const count = flat.filter((t) => t >= 0).length;
  return tf.div(
    tf.neg(tf.sum(tf.mul(tf.logSoftmax(logits), tf.tensor2d(onehot, [B * T, V])))),
    count,
  ) as tf.Scalar;
}

/** The engine's loss and gradients per parameter (on the current backend). */
async function engineGrads(
  model: GPT,
  ids: number[][],
  targets: number[][],
): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
  const x = tf.tensor2d(ids, undefined, 'int32');
  const y = tf.tensor2d(targets, undefined, 'int32');
  const { value, grads } = tf.variableGrads(() => model.loss(x, y), model.variables);
  const out = new Map<string, Float32Array>();
  for (const [name, g] of model.gradsByParam(grads))
    out.set(name, (await g.data()) as Float32Array);
  const loss = (await value.data())[0]!;
  tf.dispose([x, y, value, ...Object.values(grads)]);
  return { loss, grads: out };
}

async function referenceGrads(
  cfg: GPTConfig,
  weights: Map<string, Float32Array>,
  ids: number[][],
  targets: number[][],
): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
  await initBackend('cpu');
  try {
    const names = [...weights.keys()];
    const shapes = paramShapes(cfg);
    const vars = names.map((n) => tf.variable(tf.tensor(weights.get(n)!, shapes.get(n)!), true));
    const P = new Map(names.map((n, i) => [n, vars[i]! as tf.Tensor]));
    const { value, grads } = tf.variableGrads(() => referenceLoss(cfg, P, ids, targets), vars);
    const out = new Map<string, Float32Array>();
    for (const [i, n] of names.entries()) {
      out.set(n, (await grads[vars[i]!.name]!.data()) as Float32Array);
    }
    const loss = (await value.data())[0]!;
    tf.dispose([value, ...vars, ...Object.values(grads)]);
    return { loss, grads: out };
  } finally {
    await initBackend('wasm');
  }
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
    it(`matches autodiff of a standard-op GPT-2 (${activation}, both attention strategies)`, async () => {
      const c = { ...cfg, activation };
      const ref = await referenceGrads(c, weights, ids, targets);
      const model = new GPT(c, weights);
      try {
        for (const strategy of ['batched', 'unrolled'] as BmmStrategy[]) {
          model.bmm = strategy;
          const ours = await engineGrads(model, ids, targets);
          expect(Math.abs(ours.loss - ref.loss) / ref.loss, `${strategy}: loss`).toBeLessThan(1e-5);
          expect([...ours.grads.keys()].sort()).toEqual([...ref.grads.keys()].sort());
          for (const [name, g] of ref.grads) {
            expect(maxAbs(g), `${name}: reference gradient is non-trivial`).toBeGreaterThan(1e-5);
            expect(relError(ours.grads.get(name)!, g), `${strategy}: ${name}`).toBeLessThan(1e-4);
          }
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
      const { value, grads } = tf.variableGrads(() => model.loss(x, y), model.variables);
      const analytic = new Map<string, Float32Array>();
      for (const [n, g] of model.gradsByParam(grads))
        analytic.set(n, (await g.data()) as Float32Array);
      tf.dispose([value, ...Object.values(grads)]);

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
