/**
 * The optimizer and one training step: memorizing a fixed batch, AdamW's decoupled weight decay
 * (2-D weights only), global-norm clipping, gradient accumulation, and the LR schedule.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../../src/engine/tf';
import { initBackend } from '../../../src/engine/backend';
import { GPT } from '../../../src/engine/model/gpt';
import { initParams } from '../../../src/engine/model/params';
import { sampleBatch } from '../../../src/engine/train/data';
import { AdamW, type AdamWOptions } from '../../../src/engine/train/optimizer';
import { trainStep } from '../../../src/engine/train/pretrain';
import { learningRate } from '../../../src/engine/train/schedule';
import { Rng } from '../../../src/engine/util/rng';
import { maxAbsDiff, randomFloats, randomIds, relError, tinyConfig } from '../helpers';

beforeAll(async () => {
  await initBackend('wasm');
});

const ADAM: AdamWOptions = { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0, gradClip: 0 };

async function read(v: tf.Tensor): Promise<Float32Array> {
  return (await v.data()) as Float32Array;
}

function flatM(state: { m: Map<string, Float32Array> }, names: string[]): Float32Array {
  const parts = names.map((n) => state.m.get(n)!);
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function norm(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! ** 2;
  return Math.sqrt(s);
}

describe('overfitting one batch', () => {
  it('drives the loss of a fixed batch of random tokens below 0.1', async () => {
    const cfg = tinyConfig({ vocabSize: 32, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 32 });
    const model = GPT.init(cfg, 7);
    const opt = new AdamW(model.params, { ...ADAM, gradClip: 1 });
    const data = Int32Array.from(randomIds(400, cfg.vocabSize, 1));
    const t = { batchSize: 4, gradAccum: 1, seed: 1 };
    const losses: number[] = [];
    try {
      for (let step = 0; step < 300; step++) {
        // a fresh Rng with the same seed each step: trainStep samples the same 4 windows
        const r = await trainStep(model, opt, data, new Rng(99), t, step, 3e-3);
        losses.push(r.loss);
        if (r.loss < 0.1) break;
      }
    } finally {
      model.dispose();
      opt.dispose();
    }
    expect(losses[0]).toBeGreaterThan(Math.log(cfg.vocabSize) - 0.2); // random tokens: ≈ ln V
    expect(losses.at(-1)).toBeLessThan(0.1);
    expect(losses.length).toBeLessThan(300);
  });
});

describe('AdamW', () => {
  /** Two parameters, a 2-D weight and a 1-D bias, and a fixed flat gradient. */
  function setup(opts: Partial<AdamWOptions>) {
    const w = tf.variable(tf.tensor2d(randomFloats(12, 1), [3, 4]), true);
    const b = tf.variable(tf.tensor1d(randomFloats(4, 2)), true);
    const vars = new Map<string, tf.Variable>([
      ['w', w],
      ['b', b],
    ]);
    const opt = new AdamW(vars, { ...ADAM, ...opts });
    return { w, b, opt };
  }

  /** The gradient map for setup()'s parameters from a flat [w (12), b (4)] vector. */
  function gradMap(g: Float32Array): Map<string, tf.Tensor> {
    return new Map<string, tf.Tensor>([
      ['w', tf.tensor2d(g.subarray(0, 12), [3, 4])],
      ['b', tf.tensor1d(g.subarray(12, 16))],
    ]);
  }

  it('takes a bias-corrected first step of lr·sign(g)', async () => {
    const s = setup({});
    const g = randomFloats(16, 3);
    const w0 = await read(s.w);
    const b0 = await read(s.b);
    const gT = gradMap(g);
    const n = AdamW.norm(gT);
    s.opt.step(gT, n, 0.01);
    const w1 = await read(s.w);
    const b1 = await read(s.b);
    const p0 = [...w0, ...b0];
    const p1 = [...w1, ...b1];
    p0.forEach((v, i) => expect(p1[i]! - v).toBeCloseTo(-0.01 * Math.sign(g[i]!), 6));
    expect(s.opt.t).toBe(1);
    tf.dispose([...gT.values(), n]);
    s.opt.dispose();
    tf.dispose([s.w, s.b]);
  });

  it('decays only 2-D weights: p ← p − lr·λ·p on the weight, biases untouched', async () => {
    const lr = 0.05;
    const wd = 0.5;
    const a = setup({ weightDecay: 0 });
    const d = setup({ weightDecay: wd });
    const w0 = await read(a.w);
    const g = randomFloats(16, 4);
    for (const s of [a, d]) {
      const gT = gradMap(g);
      const n = AdamW.norm(gT);
      s.opt.step(gT, n, lr);
      tf.dispose([...gT.values(), n]);
    }
    const [wa, wd_, ba, bd] = await Promise.all([a.w, d.w, a.b, d.b].map(read));
    // biases: bit-identical with and without weight decay
    expect(Array.from(bd!)).toEqual(Array.from(ba!));
    // weights: the decayed one moved by exactly −lr·λ·p₀ more
    w0.forEach((p, i) => expect(wd_![i]! - wa![i]!).toBeCloseTo(-lr * wd * p, 6));
    expect(maxAbsDiff(wd_!, wa!)).toBeGreaterThan(1e-3);
    for (const s of [a, d]) {
      s.opt.dispose();
      tf.dispose([s.w, s.b]);
    }
  });

  it('on a GPT, decays wte/wpe and the Conv1D weights, never LayerNorm params or biases', async () => {
    const cfg = tinyConfig({ nLayer: 1 });
    const run = async (weightDecay: number) => {
      const model = new GPT(cfg, initParams(cfg, 3));
      const opt = new AdamW(model.params, { ...ADAM, weightDecay });
      const data = Int32Array.from(randomIds(100, cfg.vocabSize, 2));
      await trainStep(
        model,
        opt,
        data,
        new Rng(1),
        { batchSize: 2, gradAccum: 1, seed: 1 },
        0,
        0.01,
      );
      const w = await model.weights();
      model.dispose();
      opt.dispose();
      return w;
    };
    const plain = await run(0);
    const decayed = await run(0.5);
    for (const [name, p] of plain) {
      const q = decayed.get(name)!;
      if (name.endsWith('.weight') && !/ln_(1|2|f)\./.test(name)) {
        expect(maxAbsDiff(p, q), `${name} is decayed`).toBeGreaterThan(1e-7);
      } else {
        expect(Buffer.from(q.buffer).equals(Buffer.from(p.buffer)), `${name} is not decayed`).toBe(
          true,
        );
      }
    }
  });

  it('clips the global gradient norm before the moments (m = (1−β₁)·g·c/‖g‖)', async () => {
    const g = randomFloats(16, 5, 300);
    const gNorm = norm(g);
    expect(gNorm).toBeGreaterThan(100);
    for (const gradClip of [0, 1]) {
      const s = setup({ gradClip });
      const gT = gradMap(g);
      const n = AdamW.norm(gT);
      expect((await read(n))[0]).toBeCloseTo(gNorm, 2);
      s.opt.step(gT, n, 0.01);
      const m = flatM(await s.opt.state(), ['w', 'b']);
      const scale = gradClip > 0 ? gradClip / gNorm : 1;
      const want = Float32Array.from(g, (v) => 0.1 * v * scale);
      expect(relError(m, want)).toBeLessThan(1e-5);
      expect(norm(m)).toBeCloseTo(0.1 * (gradClip > 0 ? gradClip : gNorm), 3);
      tf.dispose([...gT.values(), n]);
      s.opt.dispose();
      tf.dispose([s.w, s.b]);
    }
  });

  it('trainStep reports the pre-clip norm and clips what reaches the optimizer', async () => {
    const cfg = tinyConfig({ nLayer: 1 });
    const data = Int32Array.from(randomIds(100, cfg.vocabSize, 6));
    const init = initParams(cfg, 4);
    const gradClip = 1e-3; // far below the real norm
    const model = new GPT(cfg, init);
    const opt = new AdamW(model.params, { ...ADAM, gradClip });
    // the true gradient norm of the same batch, computed directly
    const { x, y } = sampleBatch(data, 2, cfg.blockSize, new Rng(8));
    const { loss, grads } = await model.lossAndGrads(x, model.lmLoss(y), { train: true });
    let sq = 0;
    for (const g of grads.values()) for (const v of await read(g)) sq += v * v;
    tf.dispose([x, y, loss, ...grads.values()]);

    const r = await trainStep(
      model,
      opt,
      data,
      new Rng(8),
      { batchSize: 2, gradAccum: 1, seed: 1 },
      0,
      0.01,
    );
    expect(r.gradNorm / Math.sqrt(sq)).toBeCloseTo(1, 5);
    expect(r.gradNorm).toBeGreaterThan(100 * gradClip);
    const m = flatM(await opt.state(), opt.names);
    expect(norm(m) / (0.1 * gradClip)).toBeCloseTo(1, 4);
    model.dispose();
    opt.dispose();
  });
});

describe('gradient accumulation', () => {
  it('2 micro-batches of B/2 give the gradient of one batch of B (same windows)', async () => {
    const cfg = tinyConfig({ nLayer: 2 });
    const data = Int32Array.from(randomIds(300, cfg.vocabSize, 9));
    const init = initParams(cfg, 5);
    const run = async (batchSize: number, gradAccum: number) => {
      const model = new GPT(cfg, init);
      const opt = new AdamW(model.params, ADAM);
      // sampleBatch draws windows in order from the Rng: 4 at once = 2 then 2
      const r = await trainStep(
        model,
        opt,
        data,
        new Rng(77),
        { batchSize, gradAccum, seed: 1 },
        0,
        1e-3,
      );
      const m = flatM(await opt.state(), opt.names); // = (1 − β₁)·g after one step
      model.dispose();
      opt.dispose();
      return { ...r, m };
    };
    const whole = await run(4, 1);
    const accum = await run(2, 2);
    const other = await run(2, 1); // a different batch: guards against a vacuous comparison
    expect(Math.abs(accum.loss - whole.loss)).toBeLessThan(1e-6);
    expect(Math.abs(accum.gradNorm - whole.gradNorm) / whole.gradNorm).toBeLessThan(1e-5);
    expect(relError(accum.m, whole.m)).toBeLessThan(1e-5);
    expect(relError(other.m, whole.m)).toBeGreaterThan(1e-2);
  });
});

describe('learning-rate schedule', () => {
  const o = { lr: 1e-3, minLr: 1e-4, warmup: 10, steps: 110 };

  it('warms up linearly to lr over `warmup` steps', () => {
    for (let s = 0; s < o.warmup; s++) {
      expect(learningRate(s, o)).toBeCloseTo((o.lr * (s + 1)) / o.warmup, 12);
    }
    expect(learningRate(o.warmup - 1, o)).toBeCloseTo(o.lr, 12);
    expect(learningRate(o.warmup, o)).toBeCloseTo(o.lr, 12);
  });

  it('decays along a cosine to minLr at the end', () => {
    const mid = o.warmup + (o.steps - o.warmup) / 2;
    expect(learningRate(mid, o)).toBeCloseTo((o.lr + o.minLr) / 2, 12);
    const quarter = o.warmup + (o.steps - o.warmup) / 4;
    expect(learningRate(quarter, o)).toBeCloseTo(
      o.minLr + 0.5 * (1 + Math.cos(Math.PI / 4)) * (o.lr - o.minLr),
      12,
    );
    expect(learningRate(o.steps, o)).toBe(o.minLr);
    expect(learningRate(o.steps + 50, o)).toBe(o.minLr);
    // the last step taken (steps − 1) is within 0.1% of the way to minLr
    expect(learningRate(o.steps - 1, o) - o.minLr).toBeLessThan(1e-3 * (o.lr - o.minLr));
    for (let s = o.warmup; s < o.steps; s++) {
      expect(learningRate(s + 1, o)).toBeLessThanOrEqual(learningRate(s, o));
    }
  });

  it('with no warmup starts at lr; with minLr = lr it is constant', () => {
    expect(learningRate(0, { ...o, warmup: 0 })).toBeCloseTo(o.lr, 12);
    for (const s of [0, 5, 50, 109]) {
      expect(learningRate(s, { ...o, warmup: 0, minLr: o.lr })).toBeCloseTo(o.lr, 12);
    }
  });
});
