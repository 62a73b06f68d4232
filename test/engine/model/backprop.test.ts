/**
 * The training path's explicit backward pass (GPT.lossAndGrads) against tfjs autodiff of the same
 * model through its differentiable ops (GPT.loss under variableGrads, itself checked against a
 * standard-op reference and finite differences in gradients.test.ts).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../../src/engine/tf';
import { initBackend } from '../../../src/engine/backend';
import { GPT } from '../../../src/engine/model/gpt';
import type { BmmStrategy } from '../../../src/engine/model/ops';
import { randomIds, randomWeights, relError, tinyConfig } from '../helpers';

beforeAll(async () => {
  await initBackend('wasm');
});

const cases: Array<{
  strategy: BmmStrategy;
  dropout: number;
  T: number;
  activation: 'gelu_new' | 'gelu';
}> = [
  { strategy: 'unrolled', dropout: 0, T: 16, activation: 'gelu_new' },
  { strategy: 'batched', dropout: 0, T: 16, activation: 'gelu' },
  { strategy: 'unrolled', dropout: 0.2, T: 12, activation: 'gelu_new' },
  { strategy: 'batched', dropout: 0.2, T: 9, activation: 'gelu_new' },
];

describe('GPT.lossAndGrads', () => {
  it('a stop between blocks frees everything it held', async () => {
    const cfg = tinyConfig({ nLayer: 3 });
    const model = new GPT(cfg, randomWeights(cfg, 3));
    const x = tf.tensor2d(randomIds(32, cfg.vocabSize, 1), [2, 16], 'int32');
    const y = tf.tensor2d(randomIds(32, cfg.vocabSize, 2), [2, 16], 'int32');
    try {
      await model.lossAndGrads(x, y); // warm the caches (ones, masks)
      for (const stopAt of [1, 2, 4, 6]) {
        const before = tf.memory().numTensors;
        let calls = 0;
        const between = async () => {
          if (++calls === stopAt) throw new Error('stop');
        };
        await expect(model.lossAndGrads(x, y, { between })).rejects.toThrow('stop');
        expect(tf.memory().numTensors, `stopped at call ${stopAt}`).toBe(before);
      }
    } finally {
      tf.dispose([x, y]);
      model.dispose();
    }
  });

  for (const c of cases) {
    it(`equals autodiff of GPT.loss (${c.strategy}, dropout ${c.dropout}, T ${c.T}, ${c.activation})`, async () => {
      const cfg = tinyConfig({ dropout: c.dropout, activation: c.activation });
      const model = new GPT(cfg, randomWeights(cfg, 7));
      model.bmm = c.strategy;
      const B = 3;
      const x = tf.tensor2d(randomIds(B * c.T, cfg.vocabSize, 1), [B, c.T], 'int32');
      const y = tf.tensor2d(randomIds(B * c.T, cfg.vocabSize, 2), [B, c.T], 'int32');
      const opts = { train: c.dropout > 0, seed: 99 };
      try {
        const ref = tf.variableGrads(() => model.loss(x, y, opts), model.variables);
        const refGrads = model.gradsByParam(ref.grads);
        const before = tf.memory().numTensors;
        const got = await model.lossAndGrads(x, y, opts);
        // only the loss and one gradient per parameter remain
        expect(tf.memory().numTensors - before).toBe(1 + model.params.size);
        expect(Math.abs((await got.loss.data())[0]! - (await ref.value.data())[0]!)).toBeLessThan(
          1e-5,
        );
        expect([...got.grads.keys()].sort()).toEqual([...model.params.keys()].sort());
        for (const [name, g] of got.grads) {
          const r = refGrads.get(name)!;
          expect(g.shape, name).toEqual(r.shape);
          expect(relError(await g.data(), await r.data()), name).toBeLessThan(1e-4);
        }
        tf.dispose([got.loss, ...got.grads.values(), ref.value, ...Object.values(ref.grads)]);
      } finally {
        tf.dispose([x, y]);
        model.dispose();
      }
    });
  }
});
