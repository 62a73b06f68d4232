/**
 * The training path's explicit backward pass (GPT.lossAndGrads), with dropout, against tfjs
 * autodiff (on cpu) of the standard-op GPT-2 of ./standardGpt.ts drawing the same dropout masks:
 * the masks' seeds, the loss and every gradient; and its clean-up when stopped between blocks.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../../src/engine/tf';
import { initBackend } from '../../../src/engine/backend';
import { GPT } from '../../../src/engine/model/gpt';
import { paramShapes } from '../../../src/engine/model/params';
import { randomIds, randomWeights, relError, tinyConfig } from '../helpers';
import { referenceGrads, referenceHidden, referenceLmLoss } from './standardGpt';

beforeAll(async () => {
  await initBackend('wasm');
});

const cases: Array<{
  dropout: number;
  T: number;
  activation: 'gelu_new' | 'gelu';
  layout?: 'gpt1';
}> = [
  { dropout: 0, T: 16, activation: 'gelu_new' },
  { dropout: 0, T: 16, activation: 'gelu' },
  { dropout: 0.2, T: 12, activation: 'gelu_new' },
  { dropout: 0.2, T: 9, activation: 'gelu_new' },
  // GPT-1's post-LayerNorm layout, no final LayerNorm
  { dropout: 0.2, T: 12, activation: 'gelu_new', layout: 'gpt1' },
];

describe('GPT.lossAndGrads', () => {
  it('a stop between blocks frees everything it held', async () => {
    const cfg = tinyConfig({ nLayer: 3 });
    const model = new GPT(cfg, randomWeights(cfg, 3));
    const x = tf.tensor2d(randomIds(32, cfg.vocabSize, 1), [2, 16], 'int32');
    const y = tf.tensor2d(randomIds(32, cfg.vocabSize, 2), [2, 16], 'int32');
    try {
      const head = model.lmLoss(y);
      const warm = await model.lossAndGrads(x, head); // warm the caches (ones, masks)
      tf.dispose([warm.loss, ...warm.grads.values()]);
      for (const stopAt of [1, 2, 4, 6]) {
        const before = tf.memory().numTensors;
        let calls = 0;
        const between = async () => {
          if (++calls === stopAt) throw new Error('stop');
        };
        await expect(model.lossAndGrads(x, head, { between })).rejects.toThrow('stop');
        expect(tf.memory().numTensors, `stopped at call ${stopAt}`).toBe(before);
      }
    } finally {
      tf.dispose([x, y]);
      model.dispose();
    }
  });

  for (const c of cases) {
    it(`equals autodiff of a standard-op GPT-2 with the same masks (dropout ${c.dropout}, T ${c.T}, ${c.activation}${c.layout ? `, ${c.layout} layout` : ''})`, async () => {
      const cfg = tinyConfig({
        dropout: c.dropout,
        activation: c.activation,
        ...(c.layout ? { layout: c.layout } : {}),
      });
      const weights = randomWeights(cfg, 7);
      const B = 3;
      const ids = randomIds(B * c.T, cfg.vocabSize, 1);
      const tgt = randomIds(B * c.T, cfg.vocabSize, 2);
      const rows = (a: number[]) =>
        Array.from({ length: B }, (_, b) => a.slice(b * c.T, (b + 1) * c.T));
      const opts = { train: c.dropout > 0, seed: 99 };
      const shapes = paramShapes(cfg);
      const ref = await referenceGrads(
        new Map([...weights].map(([n, data]) => [n, { data, shape: shapes.get(n)! }] as const)),
        (P) => {
          const drop = opts.train ? { rate: c.dropout, seed: opts.seed } : undefined;
          return referenceLmLoss(P, referenceHidden(cfg, P, rows(ids), drop), rows(tgt));
        },
        initBackend,
      );
      const model = new GPT(cfg, weights);
      const x = tf.tensor2d(ids, [B, c.T], 'int32');
      const y = tf.tensor2d(tgt, [B, c.T], 'int32');
      try {
        const warm = await model.lossAndGrads(x, model.lmLoss(y), opts); // the causal mask's cache
        tf.dispose([warm.loss, ...warm.grads.values()]);
        const before = tf.memory().numTensors;
        const got = await model.lossAndGrads(x, model.lmLoss(y), opts);
        // only the loss and one gradient per parameter remain
        expect(tf.memory().numTensors - before).toBe(1 + model.params.size);
        expect(Math.abs((await got.loss.data())[0]! - ref.loss)).toBeLessThan(1e-5);
        expect([...got.grads.keys()].sort()).toEqual([...model.params.keys()].sort());
        for (const [name, g] of got.grads) {
          expect(g.shape, name).toEqual(shapes.get(name));
          expect(relError(await g.data(), ref.grads.get(name)!), name).toBeLessThan(1e-4);
        }
        tf.dispose([got.loss, ...got.grads.values()]);
      } finally {
        tf.dispose([x, y]);
        model.dispose();
      }
    });
  }
});
