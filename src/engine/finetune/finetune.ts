/**
 * GPT-1's second stage: supervised fine-tuning of a pretrained model on a labeled set, with the
 * auxiliary LM objective (L3 = L2 + λ·L1, see ./head.ts), GPT-1's schedule (linear warmup over
 * 0.2% of training, then linear decay to 0), an evaluation each epoch, and the fine-tuned
 * checkpoint (./checkpoint.ts).
 */
import * as path from 'node:path';
import * as tf from '../tf';
import type { LogEvent } from '../../common/events';
import {
  GPT1_FINETUNE,
  type FinetuneProgress,
  type FinetuneResult,
  type FinetuneSettings,
  type RowProblemInfo,
} from '../../common/finetune';
import { describeDefaults, finetuneDefaults } from '../../common/finetuneAdvice';
import { getBackendReport } from '../backend';
import { explainBackendAbort, isBackendAbort } from '../backendAbort';
import { loadModelDir } from '../checkpoint/modelDir';
import type { GPT } from '../model/gpt';
import { memoryAdvice } from '../model/presets';
import { maskSpecOf } from '../train/mlm';
import { AdamW } from '../train/optimizer';
import { planWorkers, TrainPool } from '../train/parallel/pool';
import { exists } from '../util/fs';
import { disposeBatch, lengthBuckets, makeBatch, trainingLayout, type MlmMasking } from './batch';
import { saveFinetuned } from './checkpoint';
import { encodeAll, type Encoded } from './encode';
import { ClassifierHead, gpt1Objective, headOutputs } from './head';
import { readFinetuneData, type FinetuneData, type FinetuneFiles } from './load';
import { computeMetrics } from './metrics';
import { accuracyOf, predictAll } from './predict';
import { prepareModel } from './prepare';
import { finetuneLearningRate } from './schedule';
import type { Task } from './tasks';
import { recordTrainedRows } from './trainedRows';

// The fine-tuning API as the CLI and the host import it.

export type FinetuneEvent = FinetuneProgress | LogEvent;

export interface FinetuneOptions extends FinetuneFiles {
  /** The pretrained model's folder. */
  model: string;
  /** Where to save the fine-tuned model; nothing is saved without it. */
  out?: string;
  settings?: Partial<FinetuneSettings>;
  onEvent?: (e: FinetuneEvent) => void;
  /** Tags this run's events (ablation variants). */
  variant?: string;
  /** Data already read (the ablation reads it once). */
  prepared?: FinetuneData;
  /** Data-parallel workers on wasm and cpu (default 1: this thread). */
  workers?: number;
}

/** Says which examples the tokenizer could not encode (and were left out). */
function reportUnencodable(
  emit: (e: FinetuneEvent) => void,
  file: string,
  problems: readonly RowProblemInfo[],
): void {
  if (problems.length === 0) return;
  emit({
    type: 'log',
    level: 'warn',
    message:
      `${problems.length} example(s) of ${path.basename(file)} left out: the tokenizer cannot ` +
      `encode them (first: ${path.basename(file)} ${problems[0]!.message})`,
  });
}

/**
 * The settings given, over GPT-1's, with the learning rate and epochs not given taken from the
 * model-size rule (common/finetuneAdvice.ts); says so when the rule picked the rate.
 */
export function settingsForSize(
  given: Partial<FinetuneSettings>,
  params: number,
  emit: (e: FinetuneEvent) => void = () => {},
): FinetuneSettings {
  const d = finetuneDefaults(params);
  if (given.lr === undefined) {
    emit({
      type: 'log',
      level: 'info',
      message: `learning rate by model size: ${describeDefaults(d)}`,
    });
  }
  const set = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined));
  return { ...GPT1_FINETUNE, lr: d.lr, epochs: d.epochs, ...set };
}

/** Fine-tunes `opts.model` on the labeled data; saves to `opts.out` when given. */
export async function finetune(opts: FinetuneOptions): Promise<FinetuneResult> {
  const given: Partial<FinetuneSettings> = opts.settings ?? {};
  const { task, variant } = opts;
  const emit = (e: FinetuneEvent) => opts.onEvent?.(e);
  const tag = variant !== undefined ? { variant } : {};
  const started = Date.now();
  if (opts.out) {
    for (const f of ['config.json', 'model.safetensors']) {
      if (await exists(path.join(opts.out, f))) {
        throw new Error(`${opts.out} already holds a model (${f}); choose another output folder`);
      }
    }
  }
  const data =
    opts.prepared ??
    (await readFinetuneData({
      ...opts,
      valFraction: given.valFraction ?? GPT1_FINETUNE.valFraction,
      seed: given.seed ?? GPT1_FINETUNE.seed,
    }));
  const { labels } = data;
  // hashed as soon as it is read: the record names the bytes these rows came from
  const trainedRows = opts.out
    ? await recordTrainedRows(
        opts.data,
        data.train.map((e) => e.row),
      )
    : null;

  const loaded = await loadModelDir(opts.model);
  const s = settingsForSize(given, loaded.model.numParams(), emit);
  const weights = s.init === 'pretrained' ? await loaded.model.weights() : new Map();
  const { model, special, newTokens } = prepareModel(loaded.model, weights, loaded.tokenizer, {
    init: s.init,
    seed: s.seed,
  });
  const tokenizer = loaded.tokenizer;
  // a masked-LM reads [s] (BERT's [CLS]) and its auxiliary loss predicts masked tokens
  const maskSpec = maskSpecOf(model.config, tokenizer);
  const masking: MlmMasking | null = maskSpec
    ? { spec: maskSpec, specials: [special.start, special.delim, special.extract] }
    : null;
  const head = new ClassifierHead(model.config.nEmbd, headOutputs(task, labels.length), {
    seed: s.seed,
  });
  const vars = new Map<string, tf.Variable>([
    ...model.params,
    ['classifier.weight', head.weight],
    ['classifier.bias', head.bias],
  ]);
  const opt = new AdamW(vars, {
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weightDecay: s.weightDecay,
    gradClip: 1,
  });
  let pool: TrainPool | null = null;
  try {
    const blockSize = model.config.blockSize;
    const train = encodeAll(data.train, task, tokenizer, special, blockSize);
    const val = encodeAll(data.val, task, tokenizer, special, blockSize);
    reportUnencodable(emit, opts.data, train.problems);
    reportUnencodable(emit, opts.valData ?? opts.data, val.problems);
    if (train.encoded.length === 0) {
      throw new Error(
        `no training example can be encoded by this model's tokenizer (${train.problems[0]?.message})`,
      );
    }
    if (train.truncated + val.truncated > 0) {
      emit({
        type: 'log',
        level: 'info',
        message:
          `${train.truncated + val.truncated} example(s) were longer than the context of ${blockSize} tokens ` +
          'and were cut from the front of their first part ([s], $, [e] and the end are kept)',
      });
    }
    const stepsPerEpoch = Math.ceil(train.encoded.length / s.batchSize);
    const totalSteps = stepsPerEpoch * s.epochs;
    const warmupSteps = Math.ceil(s.warmup * totalSteps);
    emit({
      type: 'finetune.start',
      ...tag,
      task,
      labels,
      trainExamples: train.encoded.length,
      valExamples: val.encoded.length,
      totalSteps,
      epochs: s.epochs,
      params: model.numParams() + head.outputs * (model.config.nEmbd + 1),
      newTokens,
      init: s.init,
      lambda: s.lambda,
      backend: getBackendReport()?.name ?? tf.getBackend(),
    });

    pool = await openPool(opts.workers, s.batchSize, model, vars, head.outputs, opt, emit);
    const history: FinetuneResult['history'] = [];
    const evalSet = val.encoded.length ? val.encoded : train.encoded;
    let step = 0;
    let cancelled = false;
    let seen = 0;
    const trainStart = Date.now();
    const lengths = train.encoded.map((e) => Math.max(...e.sequences.map((q) => q.length)));
    outer: for (let epoch = 1; epoch <= s.epochs; epoch++) {
      for (const batchIds of lengthBuckets(lengths, s.batchSize, s.seed * 7919 + epoch)) {
        if (opts.signal?.aborted) {
          cancelled = true;
          break outer;
        }
        const items = batchIds.map((k) => train.encoded[k]!);
        const lr = finetuneLearningRate(step, { lr: s.lr, warmup: warmupSteps, steps: totalSteps });
        const r = pool
          ? await pool.finetuneStep(items, task, s, stepSeed(s, step), lr, masking)
          : await trainStep(model, head, opt, vars, task, items, s, lr, step, masking);
        step++;
        seen += items.length;
        const elapsedMs = Date.now() - trainStart;
        emit({
          type: 'finetune.step',
          ...tag,
          step,
          totalSteps,
          epoch,
          loss: r.loss,
          l2: r.l2,
          l1: r.l1,
          lr,
          elapsedMs,
          etaMs: (elapsedMs / step) * (totalSteps - step),
          examplesPerSecond: seen / Math.max(elapsedMs / 1000, 1e-3),
        });
        if (!Number.isFinite(r.loss)) {
          throw new Error(`the loss became ${r.loss} at step ${step}; lower the learning rate`);
        }
      }
      if (val.encoded.length) {
        await pool?.syncTo();
        const { preds, loss } = await predictAll(model, head, task, val.encoded, s.batchSize);
        const h = { epoch, step, valAccuracy: accuracyOf(preds), valLoss: loss };
        history.push(h);
        emit({ type: 'finetune.epoch', ...tag, epochs: s.epochs, ...h });
      }
    }

    await pool?.syncTo();
    const { preds } = await predictAll(model, head, task, evalSet, s.batchSize);
    const metrics = computeMetrics(preds, labels, task);
    const result: FinetuneResult = {
      type: 'finetune.result',
      ...(opts.out ? { outDir: path.resolve(opts.out) } : {}),
      task,
      labels,
      init: s.init,
      lambda: s.lambda,
      outcome: cancelled ? 'cancelled' : 'completed',
      steps: step,
      elapsedMs: Date.now() - started,
      evaluatedOn: val.encoded.length ? 'val' : 'train',
      metrics,
      history,
    };
    if (opts.out && trainedRows) {
      await saveFinetuned(opts.out, model, head, tokenizer, {
        task,
        labels,
        lambda: s.lambda,
        init: s.init,
        columns: opts.columns,
        base: path.resolve(opts.model),
        settings: s,
        newTokens,
        data: { train: opts.data, ...(opts.valData ? { val: opts.valData } : {}) },
        trainedRows,
        result,
      });
    }
    return result;
  } catch (err) {
    // a wasm abort becomes a message that says what to change
    const report = getBackendReport();
    throw explainBackendAbort(
      err,
      'Fine-tuning',
      memoryAdvice(
        model.config,
        s.batchSize,
        1,
        report?.memoryLimitBytes,
        report?.name ?? tf.getBackend(),
      ),
    );
  } finally {
    await pool?.close();
    try {
      opt.dispose();
      head.dispose();
      model.dispose();
    } catch (e) {
      if (!isBackendAbort(e)) throw e; // after an abort the backend cannot free anything
    }
  }
}

/** One optimizer step on a batch: L3 and its gradients (GPT.lossAndGrads, head gpt1Objective), then AdamW. */
async function trainStep(
  model: GPT,
  head: ClassifierHead,
  opt: AdamW,
  vars: Map<string, tf.Variable>,
  task: Task,
  items: readonly Encoded[],
  s: FinetuneSettings,
  lr: number,
  step: number,
  masking: MlmMasking | null,
): Promise<{ loss: number; l2: number; l1: number }> {
  const seed = stepSeed(s, step);
  const batch = makeBatch(
    items.map((c) => c.sequences),
    items.map((c) => c.example.label),
    trainingLayout(model.config, masking, s.lambda, seed),
  );
  const objective = gpt1Objective(model, head, task, batch, {
    lambda: s.lambda,
    seed,
    clfDropout: s.clfDropout,
  });
  const r = await model
    .lossAndGrads(batch.ids, objective, { train: true, seed, lengths: batch.lengths })
    .finally(() => disposeBatch(batch));
  // in the optimizer's order: the model's parameters, then the classifier's
  const grads = new Map([...vars.keys()].map((name) => [name, r.grads.get(name)!]));
  const norm = AdamW.norm(grads);
  opt.step(grads, norm, lr);
  const { L1, L2 } = r.report;
  const [loss, a, b] = await Promise.all([r.loss.data(), L2!.data(), L1!.data()]);
  tf.dispose([r.loss, L2!, L1!, norm, ...grads.values()]);
  return { loss: loss[0]!, l2: a[0]!, l1: b[0]! };
}

/** The dropout seed of a fine-tuning step. */
function stepSeed(s: FinetuneSettings, step: number): number {
  return s.seed * 100_003 + step;
}

/** The worker pool for `requested` workers, or null when training stays on this thread. */
async function openPool(
  requested: number | undefined,
  batchSize: number,
  model: GPT,
  vars: Map<string, tf.Variable>,
  outputs: number,
  opt: AdamW,
  emit: (e: FinetuneEvent) => void,
): Promise<TrainPool | null> {
  const backend = getBackendReport()?.name ?? tf.getBackend();
  const plan = planWorkers(requested, backend, batchSize);
  if (plan.note) emit({ type: 'log', level: 'warn', message: plan.note });
  if (plan.workers <= 1) return null;
  emit({
    type: 'log',
    level: 'info',
    message: `fine-tuning on ${plan.workers} workers, each taking its share of every batch`,
  });
  return TrainPool.start({
    backend,
    workers: plan.workers,
    config: model.config,
    vars,
    classifier: { outputs },
    optimizer: opt.opts,
  });
}
