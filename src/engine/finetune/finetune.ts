/**
 * GPT-1's second stage: supervised fine-tuning of a pretrained model on a labeled set, with the
 * auxiliary LM objective (L3 = L2 + λ·L1, see ./model.ts), GPT-1's schedule (linear warmup over
 * 0.2% of training, then linear decay to 0), evaluation, and the fine-tuned checkpoint: a Hugging
 * Face GPT-2 folder whose safetensors carry `classifier.weight` [C, K] and `classifier.bias` [K],
 * and whose config.json carries `id2label`, `label2id` and `gpt_studio` (task, λ, columns, …).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '../tf';
import type { LogEvent } from '../../common/events';
import {
  GPT1_FINETUNE,
  type AblationResult,
  type ClassifyInput,
  type ColumnMap,
  type EvaluateResult,
  type FinetuneMetrics,
  type FinetuneProgress,
  type FinetuneResult,
  type FinetuneSettings,
  type ImportCounts,
  type RowProblemInfo,
} from '../../common/finetune';
import { getBackendReport } from '../backend';
import { explainBackendAbort, isBackendAbort } from '../backendAbort';
import { memoryAdvice } from '../model/presets';
import { loadGpt2Weights, readHfConfig, saveGpt2Weights, writeHfConfig } from '../checkpoint/gpt2';
import { loadModelDir } from '../checkpoint/modelDir';
import { GPT } from '../model/gpt';
import { loadTokenizer } from '../tokenizer';
import { DELIMITER_TOKEN, EXTRACT_TOKEN, START_TOKEN, type Tokenizer } from '../tokenizer/types';
import { writeJsonAtomic } from '../util/atomic';
import { AdamW } from '../train/optimizer';
import { importCounts, shuffled, splitExamples, type Example, type ExampleSet } from './data';
import { loadExamples } from './load';
import { computeMetrics, type Prediction } from './metrics';
import {
  ClassifierHead,
  disposeBatch,
  finetuneLosses,
  headOutputs,
  makeBatch,
  predictBatch,
  prepareModel,
} from './model';
import { finetuneLearningRate } from './schedule';
import { describeInput, encodeExample, type SpecialIds, type Task } from './tasks';
import { exists } from '../util/fs';

export type FinetuneEvent = FinetuneProgress | LogEvent;

export interface FinetuneData {
  train: Example[];
  val: Example[];
  labels: string[];
  trainImport: ImportCounts;
  valImport: ImportCounts | null;
}

export interface FinetuneOptions {
  /** The pretrained model's folder. */
  model: string;
  task: Task;
  columns: ColumnMap;
  data: string;
  valData?: string;
  /** Where to save the fine-tuned model; nothing is saved without it. */
  out?: string;
  settings?: Partial<FinetuneSettings>;
  onEvent?: (e: FinetuneEvent) => void;
  signal?: AbortSignal;
  /** Tags this run's events (ablation variants). */
  variant?: string;
  /** Data already read (the ablation reads it once). */
  prepared?: FinetuneData;
}

/** Reads the training file (its labels define the set) and the validation file or split. */
export async function readFinetuneData(
  opts: Pick<FinetuneOptions, 'task' | 'columns' | 'data' | 'valData' | 'signal'> & {
    valFraction: number;
    seed: number;
    /** A fixed label set (fine-tuning a model on new data with known labels). */
    labels?: string[];
  },
): Promise<FinetuneData> {
  const common = {
    task: opts.task,
    columns: opts.columns,
    ...(opts.signal ? { signal: opts.signal } : {}),
  };
  const trainSet = await loadExamples(opts.data, {
    ...common,
    ...(opts.labels ? { labels: opts.labels } : {}),
  });
  if (opts.task !== 'multiple-choice' && trainSet.labels.length < 2) {
    throw new Error(
      `${path.basename(opts.data)}: every row has the label "${trainSet.labels[0]}"; a classifier needs at least two labels`,
    );
  }
  let train = trainSet.examples;
  let val: Example[] = [];
  let valSet: ExampleSet | null = null;
  if (opts.valData) {
    const answers =
      opts.task === 'multiple-choice' && train[0]
        ? (train[0].input as { answers: string[] }).answers.length
        : undefined;
    valSet = await loadExamples(opts.valData, {
      ...common,
      labels: trainSet.labels,
      ...(answers ? { answers } : {}),
    });
    val = valSet.examples;
  } else if (opts.valFraction > 0 && train.length >= 2) {
    ({ train, val } = splitExamples(train, opts.valFraction, opts.seed));
  }
  return {
    train,
    val,
    labels: trainSet.labels,
    trainImport: importCounts(trainSet),
    valImport: valSet ? importCounts(valSet) : null,
  };
}

export interface Encoded {
  example: Example;
  sequences: number[][];
}

function encodeAll(
  examples: readonly Example[],
  task: Task,
  tokenizer: Tokenizer,
  sp: SpecialIds,
  blockSize: number,
): { encoded: Encoded[]; truncated: number; problems: RowProblemInfo[] } {
  let truncated = 0;
  const encoded: Encoded[] = [];
  const problems: RowProblemInfo[] = [];
  for (const example of examples) {
    try {
      const e = encodeExample(task, example.input, tokenizer, sp, blockSize);
      if (e.truncated) truncated++;
      encoded.push({ example, sequences: e.sequences });
    } catch (err) {
      // e.g. a character a char-level tokenizer never saw: the row is skipped, not the fine-tune
      problems.push({ row: example.row, message: `row ${example.row}: ${(err as Error).message}` });
    }
  }
  return { encoded, truncated, problems };
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

/** Predictions for encoded examples, in batches. */
async function predictAll(
  model: GPT,
  head: ClassifierHead,
  task: Task,
  items: readonly Encoded[],
  batchSize: number,
  signal?: AbortSignal,
  onProgress?: (done: number) => void,
): Promise<{ preds: Prediction[]; loss: number }> {
  const preds: Prediction[] = [];
  let lossSum = 0;
  const longest = (e: Encoded) => Math.max(...e.sequences.map((q) => q.length));
  items = [...items].sort((a, b) => longest(a) - longest(b));
  for (let i = 0; i < items.length; i += batchSize) {
    signal?.throwIfAborted();
    const chunk = items.slice(i, i + batchSize);
    const batch = makeBatch(
      chunk.map((c) => c.sequences),
      chunk.map((c) => c.example.label),
    );
    try {
      const { probs, loss } = await predictBatch(model, head, task, batch);
      lossSum += loss * chunk.length;
      chunk.forEach((c, j) =>
        preds.push({
          row: c.example.row,
          input: describeInput(c.example.input),
          label: c.example.label,
          probs: probs[j]!,
        }),
      );
    } finally {
      disposeBatch(batch);
    }
    onProgress?.(preds.length);
  }
  return { preds, loss: items.length ? lossSum / items.length : NaN };
}

const accuracyOf = (preds: readonly Prediction[]) =>
  preds.length
    ? preds.filter((p) => p.probs.indexOf(Math.max(...p.probs)) === p.label).length / preds.length
    : 0;

/**
 * One epoch's batches: a random order, sorted by length within windows of 8 batches (so a batch
 * pads to little more than its own lengths), the batches then taken in random order.
 */
export function lengthBuckets(
  lengths: readonly number[],
  batchSize: number,
  seed: number,
): number[][] {
  const order = shuffled(lengths.length, seed);
  const window = batchSize * 8;
  const batches: number[][] = [];
  for (let w = 0; w < order.length; w += window) {
    const chunk = order.slice(w, w + window).sort((a, b) => lengths[a]! - lengths[b]!);
    for (let i = 0; i < chunk.length; i += batchSize) batches.push(chunk.slice(i, i + batchSize));
  }
  return shuffled(batches.length, seed ^ 0x9e37).map((i) => batches[i]!);
}

/** Fine-tunes `opts.model` on the labeled data; saves to `opts.out` when given. */
export async function finetune(opts: FinetuneOptions): Promise<FinetuneResult> {
  const s: FinetuneSettings = { ...GPT1_FINETUNE, ...opts.settings };
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
    (await readFinetuneData({ ...opts, valFraction: s.valFraction, seed: s.seed }));
  const { labels } = data;

  const loaded = await loadModelDir(opts.model);
  const weights = s.init === 'pretrained' ? await loaded.model.weights() : new Map();
  const { model, special, newTokens } = prepareModel(loaded.model, weights, loaded.tokenizer, {
    init: s.init,
    seed: s.seed,
  });
  const tokenizer = loaded.tokenizer;
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
        const r = await trainStep(model, head, opt, vars, task, items, s, lr, step);
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
        const { preds, loss } = await predictAll(model, head, task, val.encoded, s.batchSize);
        const h = { epoch, step, valAccuracy: accuracyOf(preds), valLoss: loss };
        history.push(h);
        emit({ type: 'finetune.epoch', ...tag, epochs: s.epochs, ...h });
      }
    }

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
    if (opts.out) {
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
    try {
      opt.dispose();
      head.dispose();
      model.dispose();
    } catch (e) {
      if (!isBackendAbort(e)) throw e; // after an abort the backend cannot free anything
    }
  }
}

/** One optimizer step on a batch: gradients of L3 through the tape, then AdamW. */
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
): Promise<{ loss: number; l2: number; l1: number }> {
  const batch = makeBatch(
    items.map((c) => c.sequences),
    items.map((c) => c.example.label),
  );
  let l2: tf.Scalar | undefined;
  let l1: tf.Scalar | undefined;
  const { value, grads } = tf.variableGrads(() => {
    const r = finetuneLosses(model, head, task, batch, s.lambda, {
      train: true,
      seed: s.seed * 100_003 + step,
      clfDropout: s.clfDropout,
    });
    l2 = tf.keep(r.L2);
    l1 = tf.keep(r.L1);
    return r.L3;
  }, [...vars.values()]);
  const named = new Map<string, tf.Tensor>();
  for (const [name, v] of vars) named.set(name, grads[v.name] ?? tf.zerosLike(v));
  const norm = AdamW.norm(named);
  opt.step(named, norm, lr);
  const [loss, a, b] = await Promise.all([value.data(), l2!.data(), l1!.data()]);
  tf.dispose([value, l2!, l1!, norm, ...named.values()]);
  disposeBatch(batch);
  return { loss: loss[0]!, l2: a[0]!, l1: b[0]! };
}

export interface FinetuneMeta {
  task: Task;
  labels: string[];
  lambda: number;
  init: 'pretrained' | 'random';
  columns: ColumnMap;
  base: string;
  settings: FinetuneSettings;
  newTokens: string[];
  data: { train: string; val?: string };
  result: FinetuneResult;
}

/** The fine-tuned checkpoint (see the header); finetune.json keeps the metrics and history. */
export async function saveFinetuned(
  dir: string,
  model: GPT,
  head: ClassifierHead,
  tokenizer: Tokenizer,
  meta: FinetuneMeta,
): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await tokenizer.save(dir);
  const eos = tokenizer.eosId ?? null;
  const id2label = Object.fromEntries(meta.labels.map((l, i) => [String(i), l]));
  const label2id = Object.fromEntries(meta.labels.map((l, i) => [l, i]));
  await writeHfConfig(path.join(dir, 'config.json'), model.config, {
    bos_token_id: eos,
    eos_token_id: eos,
    id2label,
    label2id,
    summary_first_dropout: meta.settings.clfDropout,
    gpt_studio: {
      task: meta.task,
      lambda: meta.lambda,
      init: meta.init,
      columns: meta.columns,
      base_model: meta.base,
      special_tokens: {
        start: START_TOKEN,
        delimiter: DELIMITER_TOKEN,
        extract: EXTRACT_TOKEN,
      },
      added_tokens: meta.newTokens,
      classifier: { weight: 'classifier.weight', bias: 'classifier.bias', outputs: head.outputs },
      settings: meta.settings,
    },
  });
  await writeJsonAtomic(path.join(dir, 'generation_config.json'), {
    bos_token_id: eos,
    eos_token_id: eos,
    transformers_version: '4.46.0',
  });
  const extra = new Map([
    [
      'classifier.weight',
      { shape: head.weight.shape, data: (await head.weight.data()) as Float32Array },
    ],
    ['classifier.bias', { shape: head.bias.shape, data: (await head.bias.data()) as Float32Array }],
  ]);
  await saveGpt2Weights(path.join(dir, 'model.safetensors'), model.config, await model.weights(), {
    extra,
    metadata: { gpt_studio_task: meta.task },
  });
  await writeJsonAtomic(path.join(dir, 'finetune.json'), {
    task: meta.task,
    labels: meta.labels,
    base: meta.base,
    data: meta.data,
    settings: meta.settings,
    result: meta.result,
    savedAt: new Date().toISOString(),
  });
}

export interface LoadedClassifier {
  dir: string;
  model: GPT;
  head: ClassifierHead;
  tokenizer: Tokenizer;
  task: Task;
  labels: string[];
  special: SpecialIds;
  columns: ColumnMap;
  dispose(): void;
}

/** Loads a fine-tuned model folder (its config.json has gpt_studio.task and the head's tensors). */
export async function loadClassifier(dir: string): Promise<LoadedClassifier> {
  const configFile = path.join(dir, 'config.json');
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(await fs.readFile(configFile, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${configFile}: cannot read (${(err as Error).message})`);
  }
  const studio = raw.gpt_studio as { task?: unknown; columns?: ColumnMap } | undefined;
  const task = studio?.task as Task | undefined;
  if (!task) {
    throw new Error(
      `${dir}: not a fine-tuned classifier (config.json has no gpt_studio.task); fine-tune it first`,
    );
  }
  const id2label = (raw.id2label ?? {}) as Record<string, string>;
  const labels = Object.keys(id2label)
    .sort((a, b) => Number(a) - Number(b))
    .map((k) => String(id2label[k]));
  const config = await readHfConfig(configFile);
  const tokenizer = await loadTokenizer(dir);
  const { params, extra } = await loadGpt2Weights(path.join(dir, 'model.safetensors'), config);
  const w = extra.get('classifier.weight');
  const b = extra.get('classifier.bias');
  if (!w || !b) throw new Error(`${dir}/model.safetensors: no classifier.weight / classifier.bias`);
  const sp = tokenizer.specialTokens;
  const special = {
    start: sp.get(START_TOKEN),
    delim: sp.get(DELIMITER_TOKEN),
    extract: sp.get(EXTRACT_TOKEN),
  };
  if (special.start === undefined || special.delim === undefined || special.extract === undefined) {
    throw new Error(
      `${dir}: the tokenizer lacks ${START_TOKEN}, ${DELIMITER_TOKEN} or ${EXTRACT_TOKEN}`,
    );
  }
  const model = new GPT(config, params);
  const head = new ClassifierHead(config.nEmbd, w.shape[1]!, { weight: w.data, bias: b.data });
  return {
    dir,
    model,
    head,
    tokenizer,
    task,
    labels,
    special: special as SpecialIds,
    columns: studio?.columns ?? {},
    dispose: () => {
      head.dispose();
      model.dispose();
    },
  };
}

/** The input's shape for each task, for a clear message when it does not match. */
function checkInput(task: Task, input: ClassifyInput): void {
  const want: Record<Task, string> = {
    classification: 'text',
    entailment: 'premise',
    similarity: 'a',
    'multiple-choice': 'context',
  };
  if (!(want[task] in input)) {
    const shape = {
      classification: '{text}',
      entailment: '{premise, hypothesis}',
      similarity: '{a, b}',
      'multiple-choice': '{context, answers}',
    }[task];
    throw new Error(`this model does ${task}: its input is ${shape}`);
  }
}

/** P(y | x) for one input: a probability per label (per answer, named by its text, for multiple choice). */
export async function classify(
  c: LoadedClassifier,
  input: ClassifyInput,
): Promise<{ labels: string[]; probs: number[] }> {
  checkInput(c.task, input);
  const e = encodeExample(c.task, input, c.tokenizer, c.special, c.model.config.blockSize);
  const batch = makeBatch([e.sequences], [0]);
  try {
    const { probs } = await predictBatch(c.model, c.head, c.task, batch);
    const labels =
      c.task === 'multiple-choice' ? (input as { answers: string[] }).answers : c.labels;
    return { labels, probs: probs[0]! };
  } finally {
    disposeBatch(batch);
  }
}

/**
 * The classifier's predictions for many examples, batched; examples the tokenizer cannot encode
 * are left out and reported.
 */
export async function predictExamples(
  c: LoadedClassifier,
  examples: readonly Example[],
  opts: {
    batchSize?: number;
    signal?: AbortSignal;
    onProgress?: (done: number, total: number) => void;
  } = {},
): Promise<{ preds: Prediction[]; encoded: Encoded[]; problems: RowProblemInfo[] }> {
  const { encoded, problems } = encodeAll(
    examples,
    c.task,
    c.tokenizer,
    c.special,
    c.model.config.blockSize,
  );
  const { preds } = await predictAll(
    c.model,
    c.head,
    c.task,
    encoded,
    opts.batchSize ?? 32,
    opts.signal,
    (done) => opts.onProgress?.(done, encoded.length),
  );
  return { preds, encoded, problems };
}

/** Evaluates a fine-tuned model on a labeled file. */
export async function evaluate(opts: {
  model: string;
  data: string;
  columns?: ColumnMap;
  batchSize?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}): Promise<EvaluateResult> {
  const c = await loadClassifier(opts.model);
  try {
    const columns = { ...c.columns, ...opts.columns };
    const set = await loadExamples(opts.data, {
      task: c.task,
      columns,
      ...(c.task !== 'multiple-choice' ? { labels: c.labels } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    const { preds, encoded, problems } = await predictExamples(c, set.examples, {
      ...(opts.batchSize !== undefined ? { batchSize: opts.batchSize } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    });
    for (const p of problems)
      set.problems.push({ row: p.row, message: `${set.file} ${p.message}` });
    const kept = new Set(encoded.map((x) => x.example));
    set.examples = set.examples.filter((e) => kept.has(e));
    const labels = c.task === 'multiple-choice' ? set.labels : c.labels;
    const metrics: FinetuneMetrics = computeMetrics(preds, labels, c.task);
    return {
      type: 'evaluate.result',
      model: path.resolve(opts.model),
      data: path.resolve(opts.data),
      task: c.task,
      import: importCounts(set),
      accuracy: metrics.accuracy,
      macroF1: metrics.macroF1,
      confusion: metrics.confusion,
      metrics,
    };
  } finally {
    c.dispose();
  }
}

/**
 * GPT-1's central claim on the user's data: the same fine-tune from the pretrained model and from
 * random initialization, each with λ and with λ = 0 (4 runs, one after another; none saved).
 */
export async function ablation(opts: FinetuneOptions): Promise<AblationResult> {
  const s: FinetuneSettings = { ...GPT1_FINETUNE, ...opts.settings };
  const lambda = s.lambda > 0 ? s.lambda : GPT1_FINETUNE.lambda;
  const started = Date.now();
  const prepared =
    opts.prepared ??
    (await readFinetuneData({ ...opts, valFraction: s.valFraction, seed: s.seed }));
  const plan: Array<{ init: 'pretrained' | 'random'; lambda: number }> = [
    { init: 'pretrained', lambda },
    { init: 'pretrained', lambda: 0 },
    { init: 'random', lambda },
    { init: 'random', lambda: 0 },
  ];
  const variants: AblationResult['variants'] = [];
  for (const [index, v] of plan.entries()) {
    opts.signal?.throwIfAborted();
    const name = `${v.init} λ=${v.lambda}`;
    opts.onEvent?.({ type: 'finetune.variant', variant: name, index, count: plan.length, ...v });
    const r = await finetune({
      ...opts,
      out: undefined,
      settings: { ...s, ...v },
      variant: name,
      prepared,
    });
    if (r.outcome === 'cancelled') {
      throw Object.assign(new Error('the ablation was stopped'), { name: 'AbortError' });
    }
    variants.push({
      variant: name,
      init: v.init,
      lambda: v.lambda,
      accuracy: r.metrics.accuracy,
      macroF1: r.metrics.macroF1,
      ...(r.metrics.f1 !== undefined ? { f1: r.metrics.f1 } : {}),
      elapsedMs: r.elapsedMs,
      history: r.history,
    });
  }
  return { type: 'ablation.result', task: opts.task, elapsedMs: Date.now() - started, variants };
}
