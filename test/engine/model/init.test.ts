/**
 * Initialization and sizing: the loss of a fresh model, parameter counts of the presets, GPT-2's
 * init statistics, and the training-memory check.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../../src/engine/tf';
import { initBackend } from '../../../src/engine/backend';
import type { GPTConfig } from '../../../src/engine/model/config';
import { GPT } from '../../../src/engine/model/gpt';
import { countParams, initParams, paramShapes } from '../../../src/engine/model/params';
import {
  checkMemory,
  estimateTrainingMemory,
  PRESETS,
  presetConfig,
} from '../../../src/engine/model/presets';
import { randomIds, tinyConfig } from '../helpers';

beforeAll(async () => {
  await initBackend('wasm');
});

/** GPT-2's parameter count: embeddings, L blocks of 12C² + 13C, the final LayerNorm. */
function formula(cfg: GPTConfig): number {
  const { vocabSize: V, blockSize: T, nEmbd: C, nLayer: L } = cfg;
  // GPT-1's post-LayerNorm layout has no final LayerNorm (ln_f, 2C)
  const lnF = cfg.layout === 'gpt1' ? 0 : 2 * C;
  return V * C + T * C + L * (12 * C * C + 13 * C) + lnF;
}

function stats(a: Float32Array): { mean: number; std: number } {
  let s = 0;
  for (const v of a) s += v;
  const mean = s / a.length;
  let q = 0;
  for (const v of a) q += (v - mean) ** 2;
  return { mean, std: Math.sqrt(q / a.length) };
}

describe('loss at initialization', () => {
  for (const vocabSize of [20, 65]) {
    it(`is ≈ ln(${vocabSize}) within 0.1 (uniform predictions from N(0, 0.02) weights)`, async () => {
      const cfg = tinyConfig({ vocabSize, blockSize: 32, nEmbd: 32, nHead: 4, nLayer: 2 });
      const model = GPT.init(cfg, 1234);
      try {
        const B = 4;
        const seq = randomIds(B * 33, vocabSize, 5);
        const rows = Array.from({ length: B }, (_, b) => seq.slice(b * 33, b * 33 + 33));
        const x = tf.tensor2d(
          rows.map((r) => r.slice(0, 32)),
          undefined,
          'int32',
        );
        const y = tf.tensor2d(
          rows.map((r) => r.slice(1)),
          undefined,
          'int32',
        );
        const l = tf.tidy(() => model.loss(x, y));
        const loss = (await l.data())[0]!;
        tf.dispose([x, y, l]);
        expect(Math.abs(loss - Math.log(vocabSize))).toBeLessThan(0.1);
      } finally {
        model.dispose();
      }
    });
  }
});

describe('parameter counts', () => {
  it('countParams = the GPT-2 formula = the model’s variables, for any shape', () => {
    for (const cfg of [
      tinyConfig(),
      tinyConfig({ nLayer: 0 }),
      tinyConfig({ vocabSize: 7, blockSize: 3, nLayer: 5, nEmbd: 12, nHead: 3 }),
    ]) {
      expect(countParams(cfg)).toBe(formula(cfg));
    }
    const cfg = tinyConfig();
    const model = GPT.init(cfg, 1);
    try {
      expect(model.numParams()).toBe(model.variables.reduce((n, v) => n + v.size, 0));
      expect(model.numParams()).toBe(formula(cfg));
    } finally {
      model.dispose();
    }
  });

  it('tiny ≈ 1M and small ≈ 10M with a 65-character vocabulary', () => {
    const tiny = countParams(presetConfig('tiny', 65));
    const small = countParams(presetConfig('small', 65));
    expect(tiny).toBe(formula(presetConfig('tiny', 65)));
    expect(small).toBe(formula(presetConfig('small', 65)));
    expect(tiny).toBeGreaterThan(0.7e6);
    expect(tiny).toBeLessThan(1.3e6);
    expect(small).toBeGreaterThan(9e6);
    expect(small).toBeLessThan(12e6);
  });

  it("gpt1 has GPT-1's 117M parameters (vocab 40478, context 512, 12×768, 12 heads, no ln_f)", () => {
    const cfg = presetConfig('gpt1', 40478);
    expect(cfg).toMatchObject({
      blockSize: 512,
      nLayer: 12,
      nHead: 12,
      nEmbd: 768,
      layout: 'gpt1',
    });
    const n = countParams(cfg);
    expect(n).toBe(formula(cfg));
    expect(n).toBe(116_534_784);
    expect(Math.abs(n - 117e6) / 117e6).toBeLessThan(0.01);
  });

  it('presets are GPT-2 shaped (head size integral, blocks as documented)', () => {
    for (const [name, p] of Object.entries(PRESETS)) {
      expect(p.nEmbd % p.nHead, name).toBe(0);
      const cfg = presetConfig(name as keyof typeof PRESETS, 100);
      expect(cfg).toMatchObject({ activation: 'gelu_new', layerNormEpsilon: 1e-5, dropout: 0 });
    }
  });
});

describe('GPT-2 initialization', () => {
  const cfg = tinyConfig({ vocabSize: 300, blockSize: 64, nEmbd: 64, nHead: 4, nLayer: 3 });
  const params = initParams(cfg, 42);

  it('gives every parameter its shape', () => {
    for (const [name, shape] of paramShapes(cfg)) {
      expect(params.get(name)?.length, name).toBe(shape.reduce((a, b) => a * b, 1));
    }
    expect(params.size).toBe(paramShapes(cfg).size);
  });

  it('N(0, 0.02) weights, N(0, 0.02/√(2L)) residual projections, LN 1/0, zero biases', () => {
    const resid = 0.02 / Math.sqrt(2 * cfg.nLayer);
    for (const [name, data] of params) {
      if (/ln_(1|2|f)\.weight$/.test(name)) {
        expect(
          data.every((v) => v === 1),
          name,
        ).toBe(true);
      } else if (name.endsWith('.bias')) {
        expect(
          data.every((v) => v === 0),
          name,
        ).toBe(true);
      } else {
        const want = /(attn|mlp)\.c_proj\.weight$/.test(name) ? resid : 0.02;
        const { mean, std } = stats(data);
        // n ≥ 4096 samples: the std estimate is within ~2% at 2σ, the mean within ~0.04 std
        expect(Math.abs(std / want - 1), `${name} std ${std} vs ${want}`).toBeLessThan(0.05);
        expect(Math.abs(mean), `${name} mean`).toBeLessThan(0.1 * want);
      }
    }
  });

  it('is seeded: same seed, same weights; another seed, other weights', () => {
    const again = initParams(cfg, 42);
    const other = initParams(cfg, 43);
    const same = (a: Float32Array, b: Float32Array) =>
      Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
        Buffer.from(b.buffer, b.byteOffset, b.byteLength),
      );
    for (const [name, data] of params) expect(same(again.get(name)!, data), name).toBe(true);
    expect(same(other.get('wte.weight')!, params.get('wte.weight')!)).toBe(false);
  });
});

describe('checkMemory', () => {
  const GiB = 2 ** 30;
  const gpt1 = presetConfig('gpt1', 40478);

  /** Applies the flags a refusal suggests and re-checks them. */
  function suggestion(message: string) {
    const b = /--batch-size (\d+)/.exec(message);
    const a = /--grad-accum (\d+)/.exec(message);
    const t = /--block-size (\d+)/.exec(message);
    expect(b, message).not.toBeNull();
    expect(a, message).not.toBeNull();
    return {
      batch: Number(b![1]),
      accum: Number(a![1]),
      blockSize: t ? Number(t[1]) : undefined,
    };
  }

  function refusal(cfg: GPTConfig, batch: number, accum: number, limit: number): string {
    try {
      checkMemory(cfg, batch, accum, limit, 'wasm');
    } catch (err) {
      return (err as Error).message;
    }
    throw new Error('checkMemory accepted the run');
  }

  it('refuses the small preset with batch 64 on a 4 GiB wasm heap and names a config that fits', () => {
    const small = presetConfig('small', 2048);
    const msg = refusal(small, 64, 1, 4 * GiB);
    expect(msg).toMatch(/needs about [\d.]+ GiB but the wasm backend has 4\.00 GiB/);
    const s = suggestion(msg);
    const fixed = { ...small, ...(s.blockSize ? { blockSize: s.blockSize } : {}) };
    expect(() => checkMemory(fixed, s.batch, s.accum, 4 * GiB, 'wasm')).not.toThrow();
    expect(estimateTrainingMemory(fixed, s.batch, s.accum).totalBytes).toBeLessThanOrEqual(4 * GiB);
    // the suggestion keeps the effective batch of 64 sequences
    expect(s.batch * s.accum).toBeGreaterThanOrEqual(64);
  });

  it('refuses gpt1 on a 4 GiB wasm heap even with a batch of 1: AdamW over its 117M parameters needs more', () => {
    const msg = refusal(gpt1, 64, 1, 4 * GiB);
    expect(msg).toMatch(/even with a batch of 1 \(--batch-size 1 needs about [\d.]+ GiB/);
    expect(estimateTrainingMemory(gpt1, 1).peak).toBe('optimizer');
    expect(estimateTrainingMemory(gpt1, 2).peak).toBe('forward/backward');
  });

  it('suggests a smaller micro-batch with more accumulation when that is enough', () => {
    const msg = refusal(gpt1, 64, 2, 16 * GiB);
    const s = suggestion(msg);
    expect(s.blockSize).toBeUndefined();
    expect(s.batch).toBeLessThan(64);
    expect(s.batch * s.accum).toBe(128);
    expect(() => checkMemory(gpt1, s.batch, s.accum, 16 * GiB, 'wasm')).not.toThrow();
    // and it is the largest power-of-two halving that fits
    expect(() => checkMemory(gpt1, s.batch * 2, s.accum / 2, 16 * GiB, 'wasm')).toThrow();
  });

  it('says to choose a smaller preset when nothing fits', () => {
    expect(refusal(gpt1, 8, 1, 1 * GiB)).toMatch(/even with a batch of 1.*smaller preset/);
  });

  it('accepts the tiny preset with the default batch', () => {
    expect(() => checkMemory(presetConfig('tiny', 65), 16, 1, 4 * GiB, 'wasm')).not.toThrow();
  });
});
