/**
 * One training step of pretraining (sample a batch, the explicit forward and backward of
 * GPT.lossAndGrads with the LM head, the gradient norm, clip, AdamW), the validation loss, and
 * whether a step fits the backend's memory.
 */
import * as tf from '../tf';
import type { TrainConfig } from '../../common/defaults';
import { getBackendReport } from '../backend';
import type { GPTConfig } from '../model/config';
import type { GPT } from '../model/gpt';
import { checkMemory, memoryAdvice } from '../model/presets';
import { Rng } from '../util/rng';
import { sampleLmBatch, type MaskSpec } from './mlm';
import { AdamW, type Grads } from './optimizer';

/** What to lower after a backend abort, with this configuration's memory estimate. */
export function trainingAdvice(
  config: GPTConfig,
  t: Pick<TrainConfig, 'batchSize' | 'gradAccum'>,
): string {
  const report = getBackendReport();
  return memoryAdvice(
    config,
    t.batchSize,
    t.gradAccum,
    report?.memoryLimitBytes,
    report?.name ?? tf.getBackend(),
  );
}

/**
 * Refuses a model and batch whose training would not fit the running backend's memory. With
 * several workers each holds a replica and its rows of the batch: on wasm in a heap of its own,
 * on cpu in the one process's memory, which they share.
 */
export function checkBackendMemory(
  config: GPTConfig,
  t: Pick<TrainConfig, 'batchSize' | 'gradAccum'>,
  workers = 1,
): void {
  const report = getBackendReport();
  const backend = report?.name ?? tf.getBackend();
  const limit = report?.memoryLimitBytes ?? Infinity;
  if (workers <= 1) {
    checkMemory(config, t.batchSize, t.gradAccum, limit, backend);
    return;
  }
  const rows = Math.ceil(t.batchSize / workers);
  const own = backend === 'wasm';
  try {
    checkMemory(config, rows, t.gradAccum, own ? limit : limit / workers, backend);
  } catch (err) {
    throw new Error(
      `Each of the ${workers} training workers holds a copy of the model and ${rows} rows of ` +
        `the batch${own ? ' in a heap of its own' : `, sharing ${backend}'s memory`}. ` +
        `${(err as Error).message} Or use fewer workers (--workers).`,
    );
  }
}

/** The dropout seed of a step's micro-batch. */
export function stepSeed(t: Pick<TrainConfig, 'seed'>, step: number, micro: number): number {
  return (t.seed * 1000003 + step * 131 + micro) >>> 0;
}

/** AdamW with the run's hyperparameters (ε 1e-8). */
export function newOptimizer(model: GPT, t: TrainConfig): AdamW {
  return new AdamW(model.params, {
    beta1: t.beta1,
    beta2: t.beta2,
    eps: 1e-8,
    weightDecay: t.weightDecay,
    gradClip: t.gradClip,
  });
}

/**
 * One optimizer step: gradAccum micro-batches, their mean gradient, clip, AdamW.
 * The loss is read before the update, so a NaN never reaches the weights.
 */
export async function trainStep(
  model: GPT,
  opt: AdamW,
  data: Int32Array,
  rng: Rng,
  t: Pick<TrainConfig, 'batchSize' | 'gradAccum' | 'seed'>,
  step: number,
  lr: number,
  signal?: AbortSignal,
  /** A masked-LM's masking (null: next-token prediction). */
  mask: MaskSpec | null = null,
): Promise<{ loss: number; gradNorm: number; aborted: boolean }> {
  const T = model.config.blockSize;
  let gSum: Grads | null = null;
  let lossSum = 0;
  try {
    for (let micro = 0; micro < t.gradAccum; micro++) {
      if (micro > 0) {
        await new Promise((r) => setImmediate(r));
        if (signal?.aborted) return { loss: NaN, gradNorm: NaN, aborted: true };
      }
      const { x, y } = sampleLmBatch(data, t.batchSize, T, rng, mask);
      const seed = stepSeed(t, step, micro);
      let stopped = false;
      const result = await model
        .lossAndGrads(x, model.lmLoss(y), {
          train: true,
          seed,
          // yield between blocks, so a stop request is seen within a block's time, not a step's
          between: async () => {
            await new Promise((r) => setImmediate(r));
            if (signal?.aborted) {
              stopped = true;
              throw new Error('stopped');
            }
          },
        })
        .catch((err: unknown) => {
          if (stopped) return null;
          throw err;
        })
        .finally(() => tf.dispose([x, y]));
      if (!result) return { loss: NaN, gradNorm: NaN, aborted: true };
      const { loss: value, grads: g } = result;
      lossSum += ((await value.data()) as Float32Array)[0]!;
      value.dispose();
      if (gSum) {
        for (const [name, acc] of gSum) {
          gSum.set(name, tf.add(acc, g.get(name)!));
          tf.dispose([acc, g.get(name)!]);
        }
      } else {
        gSum = g;
      }
    }
    if (t.gradAccum > 1) {
      for (const [name, acc] of gSum!) {
        gSum!.set(name, tf.div(acc, t.gradAccum));
        acc.dispose();
      }
    }
    const normT = AdamW.norm(gSum!);
    const gradNorm = ((await normT.data()) as Float32Array)[0]!;
    const loss = lossSum / t.gradAccum;
    if (Number.isFinite(loss) && Number.isFinite(gradNorm)) opt.step(gSum!, normT, lr);
    normT.dispose();
    return { loss, gradNorm, aborted: false };
  } finally {
    if (gSum) tf.dispose([...gSum.values()]);
  }
}

/**
 * Mean validation loss over evalIters fixed batches (the same batches, and for a masked-LM the
 * same masks, every time).
 */
export async function evaluate(
  model: GPT,
  val: Int32Array,
  t: Pick<TrainConfig, 'batchSize' | 'evalIters' | 'seed'>,
  T: number,
  mask: MaskSpec | null = null,
): Promise<number> {
  const rng = new Rng(t.seed ^ 0xe7a1);
  let sum = 0;
  for (let i = 0; i < t.evalIters; i++) {
    const { x, y } = sampleLmBatch(val, t.batchSize, T, rng, mask);
    const l = tf.tidy(() => model.loss(x, y));
    sum += ((await l.data()) as Float32Array)[0]!;
    tf.dispose([x, y, l]);
  }
  return sum / t.evalIters;
}
