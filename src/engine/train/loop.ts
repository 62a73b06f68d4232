/**
 * The pretraining loop: steps until the run's total, with an evaluation, a sample and a
 * checkpoint now and then, events for each, and a clean stop (cancel, pause, a NaN, a backend
 * abort) that leaves the last checkpoint whole.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '../tf';
import type { TrainConfig } from '../../common/defaults';
import type { EventSink, TrainEvent, TrainResult } from '../../common/events';
import { getBackendReport } from '../backend';
import { explainBackendAbort, isBackendAbort } from '../backendAbort';
import { generate } from '../generate';
import type { GPT } from '../model/gpt';
import type { Tokenizer } from '../tokenizer/types';
import { Rng } from '../util/rng';
import type { TokenSplits } from './data';
import { maskSpecOf } from './mlm';
import type { AdamW } from './optimizer';
import { openTrainer, type Trainer } from './parallel/trainer';
import type { PauseGate } from './pause';
import { markFailed, saveCheckpoint, TrainingError, type RunState } from './runDir';
import { learningRate } from './schedule';
import { evaluate, trainingAdvice } from './step';
import type { ZeroShotTracker } from './zeroShot';

export const emitter = (sink?: EventSink) => (e: TrainEvent) => sink?.(e);

export async function trainLoop(
  runDir: string,
  model: GPT,
  tokenizer: Tokenizer,
  opt: AdamW,
  splits: TokenSplits,
  state: RunState,
  resumed: boolean,
  opts: {
    onEvent?: EventSink;
    signal?: AbortSignal;
    pause?: PauseGate;
    /** Data-parallel workers (1: this thread). */
    workers?: number;
    /** Labelled sets scored zero-shot every N steps on the main thread's model. */
    zeroShot?: ZeroShotTracker;
  },
): Promise<TrainResult> {
  const emit = emitter(opts.onEvent);
  const t = state.train;
  const T = model.config.blockSize;
  const tokensPerStep = t.batchSize * T * t.gradAccum;
  let rng = new Rng(state.rng);
  const metrics = await fs.open(path.join(runDir, 'metrics.jsonl'), 'a');
  const log = async (e: object) => {
    await metrics.write(JSON.stringify(e) + '\n');
  };
  emit({
    type: 'start',
    runDir,
    step: state.step,
    totalSteps: t.steps,
    params: model.numParams(),
    backend: tf.getBackend(),
    tokensPerStep,
    trainTokens: splits.train.length,
    valTokens: splits.val.length,
    resumed,
  });
  let started = performance.now();
  const elapsedBefore = state.elapsedMs;
  let stepMsAvg = 0;
  let stepsTimed = 0;
  let lastTrainLoss = state.trainLoss ?? NaN;
  let stopped: TrainResult['stopped'] = 'completed';
  let lastSaved = state.step;

  // a masked-LM predicts masked tokens and cannot generate: no samples
  const mask = maskSpecOf(model.config, tokenizer);
  let trainer: Trainer | undefined;
  const checkpoint = async () => {
    await trainer?.sync(true);
    state.rng = rng.state();
    state.adamT = opt.t;
    state.elapsedMs = elapsedBefore + (performance.now() - started);
    state.updatedAt = new Date().toISOString();
    await saveCheckpoint(runDir, model, opt, state);
    lastSaved = state.step;
    emit({
      type: 'checkpoint',
      step: state.step,
      path: path.join(runDir, `checkpoint-${state.step}`),
    });
  };

  try {
    const workers = opts.workers ?? 1;
    trainer = await openTrainer(
      model,
      opt,
      workers,
      getBackendReport()?.name ?? tf.getBackend(),
      mask,
    );
    if (workers > 1) {
      emit({
        type: 'log',
        level: 'info',
        message: `training on ${workers} workers, each taking its share of the batch's ${t.batchSize} rows`,
      });
    }
    // zero-shot tracking scores the weights the workers trained, brought to this thread's copy
    const trackZeroShot = async () => {
      if (!opts.zeroShot || mask) return;
      await trainer!.sync(false);
      for (const p of await opts.zeroShot.evaluate(model, tokenizer, state.step)) {
        const ev: TrainEvent = { type: 'zeroshot', ...p };
        emit(ev);
        await log(ev);
      }
    };
    if (state.step === 0 && !resumed) await trackZeroShot();
    while (state.step < t.steps) {
      if (opts.pause?.paused && !opts.signal?.aborted) {
        // paused time is not training time: the clock restarts when the run resumes
        const p0 = performance.now();
        await opts.pause.wait(opts.signal);
        started += performance.now() - p0;
      }
      if (opts.signal?.aborted) {
        stopped = 'cancelled';
        break;
      }
      const t0 = performance.now();
      const step = state.step;
      const lr = learningRate(step, t);
      const rngBefore = rng.state();
      const { loss, gradNorm, aborted } = await trainer.step(
        splits.train,
        rng,
        t,
        step,
        lr,
        opts.signal,
      );
      if (aborted) {
        // Stopped between micro-batches: the step is not taken, so neither are its batches.
        rng = new Rng(rngBefore);
        stopped = 'cancelled';
        break;
      }
      if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
        throw new TrainingError(
          (Number.isFinite(loss)
            ? `The gradient became ${Number.isNaN(gradNorm) ? 'NaN' : 'infinite'} at step ${step + 1}`
            : `The loss became ${Number.isNaN(loss) ? 'NaN' : 'infinite'} at step ${step + 1}`) +
            `; the run was stopped. The last good checkpoint (step ${lastSaved}) is kept in ${runDir}. ` +
            `Try a lower --lr or a longer --warmup, then resume.`,
        );
      }
      state.step = step + 1;
      lastTrainLoss = loss;
      state.trainLoss = loss;
      const ms = performance.now() - t0;
      // the session's first step (allocation, warm-up) is replaced by the second; then a running
      // mean that becomes an EMA over ~10 steps
      stepsTimed += 1;
      stepMsAvg =
        stepsTimed <= 2 ? ms : stepMsAvg + (ms - stepMsAvg) / Math.min(stepsTimed - 1, 10);
      const stepEvent: TrainEvent = {
        type: 'step',
        step: state.step,
        totalSteps: t.steps,
        trainLoss: loss,
        lr,
        gradNorm,
        tokensPerSecond: tokensPerStep / (stepMsAvg / 1000),
        elapsedMs: elapsedBefore + (performance.now() - started),
        etaMs: (t.steps - state.step) * stepMsAvg,
        memoryMB: Math.round(process.memoryUsage().rss / 2 ** 20),
      };
      emit(stepEvent);
      await log(stepEvent);

      const last = state.step === t.steps;
      if (splits.val.length > 0 && t.evalEvery > 0 && (state.step % t.evalEvery === 0 || last)) {
        await trainer.sync(false);
        const valLoss = await evaluate(model, splits.val, t, T, mask);
        state.valLoss = valLoss;
        state.bestValLoss = Math.min(state.bestValLoss ?? Infinity, valLoss);
        const ev: TrainEvent = {
          type: 'eval',
          step: state.step,
          trainLoss: loss,
          valLoss,
          valPerplexity: Math.exp(valLoss),
        };
        emit(ev);
        await log(ev);
      }
      if (opts.zeroShot?.due(state.step, t.steps)) await trackZeroShot();
      if (!mask && t.sampleEvery > 0 && (state.step % t.sampleEvery === 0 || last)) {
        await trainer.sync(false);
        const s = await sample(model, tokenizer, splits, t);
        emit({ type: 'sample', step: state.step, ...s });
        await fs.appendFile(
          path.join(runDir, 'samples.jsonl'),
          JSON.stringify({ step: state.step, ...s }) + '\n',
        );
      }
      if (t.saveEvery > 0 && state.step % t.saveEvery === 0 && !last) await checkpoint();
      // Yield to the event loop so a stop request (signal, IPC message) is seen promptly.
      await new Promise((r) => setImmediate(r));
    }
    state.status = stopped;
    await checkpoint();
    await trainer.close();
  } catch (caught) {
    await trainer?.close().catch(() => undefined);
    // a wasm abort becomes a message that says what to change
    const err = explainBackendAbort(caught, 'Training', trainingAdvice(model.config, t));
    // the checkpoints stay as they were; the top-level state records the failure for the UI
    await markFailed(runDir, (err as Error).message);
    await metrics.close();
    try {
      model.dispose();
      opt.dispose();
    } catch (e) {
      if (!isBackendAbort(e)) throw e; // after an abort the backend cannot free anything
    }
    throw err;
  }
  await metrics.close();
  model.dispose();
  opt.dispose();
  return {
    type: 'result',
    runDir,
    step: state.step,
    trainLoss: lastTrainLoss,
    valLoss: state.valLoss,
    tokensPerSecond: stepMsAvg > 0 ? tokensPerStep / (stepMsAvg / 1000) : 0,
    stopped,
    elapsedMs: state.elapsedMs,
  };
}

async function sample(model: GPT, tokenizer: Tokenizer, splits: TokenSplits, t: TrainConfig) {
  // a short prompt from the start of the validation text, cut at whole characters
  const src = splits.val.length > 0 ? splits.val : splits.train;
  const head = tokenizer.decode(Array.from(src.subarray(0, Math.min(32, src.length))));
  const prompt = [...head.replace(/\uFFFD/g, '')].slice(0, 12).join('');
  const r = await generate(model, tokenizer, prompt, {
    maxNewTokens: t.sampleTokens,
    temperature: 0.8,
    topK: 40,
    seed: t.seed,
  });
  return { prompt, text: r.text };
}
