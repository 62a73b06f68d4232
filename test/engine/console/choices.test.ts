/**
 * Multiple-choice scoring agrees with a direct log-probability computation: one full forward of
 * context + candidate, a log-softmax of its logits taken here in float64, summed over the
 * candidate's tokens; the normalized score subtracts the same after the neutral prompt.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../../src/engine/backend';
import { rankChoices, scoreChoices } from '../../../src/engine/console/choices';
import { GPT } from '../../../src/engine/model/gpt';
import { scoreBatch, scoreTargets } from '../../../src/engine/score';
import * as tf from '../../../src/engine/tf';
import type { CharTokenizer } from '../../../src/engine/tokenizer';
import { charTokenizer, logSoftmax64, randomWeights, tinyConfig } from '../helpers';

let tok: CharTokenizer;
let model: GPT;

beforeAll(async () => {
  await initBackend('wasm');
  tok = charTokenizer('abcdefghijklmnopqrstuvwxyz :.?');
  const cfg = tinyConfig({ vocabSize: tok.vocabSize, blockSize: 64, nEmbd: 16 });
  model = new GPT(cfg, randomWeights(cfg, 11, 0.3));
});
afterAll(() => model.dispose());

/** Σ log P(target_t | context, target_<t) from the full forward's logits, in float64. */
async function direct(context: number[], target: number[]): Promise<number> {
  const seq = [...context, ...target];
  const x = tf.tensor2d([seq], undefined, 'int32');
  const out = model.forwardCached(x, null, false);
  const logits = (await out.logits.data()) as Float32Array;
  tf.dispose([x, out.logits, ...out.cache.k, ...out.cache.v]);
  const V = model.config.vocabSize;
  let sum = 0;
  for (let t = context.length - 1; t < seq.length - 1; t++) {
    sum += logSoftmax64(logits.subarray(t * V, (t + 1) * V))[seq[t + 1]!]!;
  }
  return sum;
}

describe('scoreChoices', () => {
  const context = 'q: is the sky blue? a:';
  const candidates = [' yes', ' no', ' it is not blue at all', ' maybe'];

  it('sum, mean and normalized equal the direct log-softmax', async () => {
    const scores = await scoreChoices(model, tok, context, candidates, 'answer:');
    expect(scores).toHaveLength(candidates.length);
    for (const [i, s] of scores.entries()) {
      const target = tok.encode(candidates[i]!);
      const want = await direct(tok.encode(context), target);
      expect(s.tokens).toEqual(target);
      expect(Math.abs(s.sum - want), candidates[i]).toBeLessThan(1e-4);
      expect(s.mean).toBeCloseTo(s.sum / target.length, 6);
      expect(s.logprobs.reduce((a, b) => a + b, 0)).toBeCloseTo(s.sum, 6);
    }
  });

  it('normalized = log P(c | context) − log P(c | neutral prompt)', async () => {
    const neutralText = 'answer:';
    const scores = await scoreChoices(model, tok, context, candidates, neutralText);
    for (const [i, s] of scores.entries()) {
      const target = tok.encode(candidates[i]!);
      const n = await direct(tok.encode(neutralText), target);
      expect(Math.abs(s.neutralSum - n)).toBeLessThan(1e-4);
      expect(s.normalized).toBeCloseTo(s.sum - n, 5);
    }
  });

  it('ranks by each metric, best first; the long answer is worst by sum', async () => {
    const scores = await scoreChoices(model, tok, context, candidates, 'answer:');
    for (const metric of ['sum', 'mean', 'normalized'] as const) {
      const order = rankChoices(scores, metric);
      expect([...order].sort()).toEqual([0, 1, 2, 3]);
      for (let i = 1; i < order.length; i++) {
        expect(scores[order[i - 1]!]![metric]).toBeGreaterThanOrEqual(scores[order[i]!]![metric]);
      }
    }
    // 22 tokens of log-probabilities below zero add up to less than 3 or 4
    expect(rankChoices(scores, 'sum').at(-1)).toBe(2);
  });

  it('an empty context conditions on end-of-text; an empty candidate is refused', async () => {
    const [s] = await scoreChoices(model, tok, '', [' yes'], 'answer:');
    const want = await direct([tok.eosId!], tok.encode(' yes'));
    expect(Math.abs(s!.sum - want)).toBeLessThan(1e-4);
    await expect(scoreChoices(model, tok, 'x', ['ok', ''], 'answer:')).rejects.toThrow(
      'candidates.1: empty',
    );
  });
});

describe('scoreTargets', () => {
  it('gives the same numbers as scoreBatch, long items and empty targets included', async () => {
    const items = [
      { context: tok.encode('q: is it'), target: tok.encode(' yes') },
      { context: tok.encode('a'), target: tok.encode('bcd efg hij') },
      { context: tok.encode('no target'), target: [] },
      // longer than the 64-token block: scored through windows
      {
        context: tok.encode('the sky is blue. '.repeat(4)),
        target: tok.encode(' it is not at all'),
      },
    ];
    const want = await scoreBatch(model, items, 3);
    const got = await scoreTargets(model, items, 3);
    expect(got.map((r) => r.tokens)).toEqual(want.map((r) => r.tokens));
    got.forEach((r, i) => {
      expect(r.logprobs).toHaveLength(want[i]!.logprobs.length);
      r.logprobs.forEach((lp, t) =>
        expect(Math.abs(lp - want[i]!.logprobs[t]!)).toBeLessThan(1e-5),
      );
      expect(r.sum).toBeCloseTo(want[i]!.sum, 4);
    });
    expect(got[2]).toEqual({ tokens: [], logprobs: [], sum: 0, mean: 0 });
  });
});
