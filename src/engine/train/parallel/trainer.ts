/**
 * The pretraining step as the loop, the wizard's probe and the bench take it: on this thread
 * (one worker: trainStep itself, the path every earlier run took) or over a pool of workers.
 */
import type { TrainConfig } from '../../../common/defaults';
import type { GPT } from '../../model/gpt';
import type { Rng } from '../../util/rng';
import type { MaskSpec } from '../mlm';
import type { AdamW } from '../optimizer';
import { stepSeed, trainStep } from '../step';
import { TrainPool } from './pool';

export interface StepResult {
  loss: number;
  gradNorm: number;
  aborted: boolean;
}

export interface Trainer {
  readonly workers: number;
  step(
    data: Int32Array,
    rng: Rng,
    t: Pick<TrainConfig, 'batchSize' | 'gradAccum' | 'seed'>,
    step: number,
    lr: number,
    signal?: AbortSignal,
  ): Promise<StepResult>;
  /** Brings the main thread's model, and with `withOptimizer` its optimizer, up to date. */
  sync(withOptimizer: boolean): Promise<void>;
  close(): Promise<void>;
}

/** Training on this thread: `model` and `opt` are the ones trained. */
function localTrainer(model: GPT, opt: AdamW, mask: MaskSpec | null): Trainer {
  return {
    workers: 1,
    step: (data, rng, t, step, lr, signal) =>
      trainStep(model, opt, data, rng, t, step, lr, signal, mask),
    sync: async () => {},
    close: async () => {},
  };
}

/**
 * A trainer for `workers` workers on `backend`, starting from `model`'s weights and `opt`'s
 * moments; 1 worker trains on this thread. `mask`: a masked-LM's masking (null: a GPT).
 */
export async function openTrainer(
  model: GPT,
  opt: AdamW,
  workers: number,
  backend: string,
  mask: MaskSpec | null = null,
): Promise<Trainer> {
  if (workers <= 1) return localTrainer(model, opt, mask);
  const pool = await TrainPool.start({
    backend,
    workers,
    config: model.config,
    vars: model.params,
    optimizer: opt.opts,
    resumeFrom: opt,
  });
  // what the main thread's copies were last refreshed to: nothing is copied twice for one step
  let synced = { step: opt.t, optimizer: true };
  let stepsTaken = opt.t;
  return {
    workers,
    step: async (data, rng, t, step, lr, signal) => {
      const r = await pool.lmStep(
        data,
        rng,
        t,
        model.config.blockSize,
        (micro) => stepSeed(t, step, micro),
        lr,
        signal,
        mask,
      );
      if (!r.aborted) stepsTaken += 1;
      return r;
    },
    sync: async (withOptimizer) => {
      if (synced.step === stepsTaken && (synced.optimizer || !withOptimizer)) return;
      await pool.syncTo(withOptimizer ? opt : undefined);
      synced = { step: stepsTaken, optimizer: withOptimizer };
    },
    close: () => pool.close(),
  };
}
