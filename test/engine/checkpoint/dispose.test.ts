/**
 * Loading a model leaks nothing: after load, score and dispose, tf.memory() is back to its
 * baseline (tensors and bytes), over 100 cycles of the bundled sample model. A leak of one
 * model's weights per load (52 tensors, 5.3 MB for austen-tiny) used to exhaust the wasm heap
 * after a few hundred requests.
 */
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../../src/engine/tf';
import { initBackend } from '../../../src/engine/backend';
import { loadModelDir } from '../../../src/engine/checkpoint/modelDir';
import { GPT } from '../../../src/engine/model/gpt';
import { scoreText } from '../../../src/engine/score';
import { ClassifierHead } from '../../../src/engine/finetune/head';
import { AdamW } from '../../../src/engine/train/optimizer';
import { randomWeights, tinyConfig } from '../helpers';

const SAMPLE = fileURLToPath(new URL('../../../resources/models/austen-tiny', import.meta.url));
const TEXT = 'It is a truth universally acknowledged, that a single man in possession of a fortune';

beforeAll(async () => {
  await initBackend('wasm');
});

const usage = () => {
  const m = tf.memory();
  return { numTensors: m.numTensors, numBytes: m.numBytes };
};

describe('model dispose', () => {
  it('a model built and disposed leaves no tensor behind', () => {
    const cfg = tinyConfig();
    const before = usage();
    const model = new GPT(cfg, randomWeights(cfg, 1));
    expect(usage().numTensors).toBe(before.numTensors + model.params.size);
    model.dispose();
    expect(usage()).toEqual(before);
  });

  it("the optimizer's moments and a classifier head free all they hold", () => {
    const cfg = tinyConfig();
    const before = usage();
    const model = new GPT(cfg, randomWeights(cfg, 1));
    const opt = new AdamW(model.params, {
      beta1: 0.9,
      beta2: 0.95,
      eps: 1e-8,
      weightDecay: 0.1,
      gradClip: 1,
    });
    const head = new ClassifierHead(cfg.nEmbd, 3, { seed: 1 });
    const loaded = new ClassifierHead(cfg.nEmbd, 2, {
      weight: new Float32Array(cfg.nEmbd * 2),
      bias: new Float32Array(2),
    });
    expect(usage().numTensors).toBe(before.numTensors + 3 * model.params.size + 4);
    opt.dispose();
    head.dispose();
    loaded.dispose();
    model.dispose();
    expect(usage()).toEqual(before);
  });

  it('the sample model: a load and dispose is back to the baseline', async () => {
    const before = usage();
    const loaded = await loadModelDir(SAMPLE);
    expect(loaded.model.params.size).toBe(52);
    loaded.model.dispose();
    expect(usage()).toEqual(before);
  });

  it('100 load/score/dispose cycles of the sample model: tf.memory() back to its baseline', async () => {
    // one cycle first: the ops' shape caches (a causal mask per length) fill once, then stay
    const warm = await loadModelDir(SAMPLE);
    const expected = await scoreText(warm.model, warm.tokenizer, TEXT);
    warm.model.dispose();
    const baseline = usage();
    for (let i = 0; i < 100; i++) {
      const loaded = await loadModelDir(SAMPLE);
      const r = await scoreText(loaded.model, loaded.tokenizer, TEXT);
      loaded.model.dispose();
      if (i === 0 || i === 99) expect(r.sum).toBeCloseTo(expected.sum, 4);
      expect(usage()).toEqual(baseline);
    }
  }, 120_000);
});
