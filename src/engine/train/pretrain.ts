/**
 * GPT-1's first stage: maximize L1 = Σ log P(u_i | u_{i-k..i-1}) on unlabeled text.
 *
 * A run lives in its directory: the newest model at the top level (a Hugging Face GPT-2 dir),
 * checkpoint-<step>/ folders (model, optimizer.safetensors, state.json with step, RNG, schedule),
 * the tokenized corpus (train.bin/val.bin), metrics.jsonl and samples.jsonl. Resuming from the
 * newest checkpoint folder continues exactly.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '../tf';
import type { EventSink, TrainEvent, TrainResult } from '../../common/events';
import { getBackendReport } from '../backend';
import { explainBackendAbort, isBackendAbort } from '../backendAbort';
import type { GPTConfig } from '../checkpoint/config';
import { loadGpt2Weights, saveGpt2Weights } from '../checkpoint/gpt2';
import { loadModelDir, saveModelDir } from '../checkpoint/modelDir';
import { readSafetensors, writeSafetensors, type Tensor } from '../checkpoint/safetensors';
import { generate } from '../generate';
import { checkTensorSize, GPT } from '../model/gpt';
import { checkMemory, memoryAdvice, presetConfig, type PresetName } from '../model/presets';
import { loadTokenizer, readCorpusChunks, trainTokenizer } from '../tokenizer';
import type { Tokenizer, TokenizerKind } from '../tokenizer/types';
import { writeJsonAtomic } from '../util/atomic';
import { Rng } from '../util/rng';
import {
  checkSplits,
  loadTokens,
  sampleBatch,
  saveTokens,
  splitTokens,
  type TokenSplits,
} from './data';
import { AdamW, type Grads } from './optimizer';
import type { PauseGate } from './pause';
import { learningRate } from './schedule';
import { DEFAULT_TRAIN, type TrainConfig } from '../../common/defaults';
import { exists } from '../util/fs';

export type { TrainConfig };
export { DEFAULT_TRAIN };

export interface PretrainOptions {
  corpus: string[];
  out: string;
  tokenizer: TokenizerKind | { dir: string };
  vocabSize?: number;
  preset?: PresetName;
  model?: Partial<Pick<GPTConfig, 'nLayer' | 'nHead' | 'nEmbd' | 'blockSize' | 'dropout'>>;
  train?: Partial<TrainConfig>;
  onEvent?: EventSink;
  signal?: AbortSignal;
  /** Pauses the loop between steps while paused. */
  pause?: PauseGate;
}

export interface RunState {
  version: 1;
  step: number;
  rng: number[];
  adamT: number;
  train: TrainConfig;
  tokens: { dtype: string; train: number; val: number };
  corpus: Array<{ path: string; bytes: number }>;
  trainLoss: number | null;
  valLoss: number | null;
  bestValLoss: number | null;
  elapsedMs: number;
  status: 'running' | 'completed' | 'cancelled' | 'failed';
  /** Why the run failed, when it did. */
  error?: string;
  backend: string;
  createdAt: string;
  updatedAt: string;
}

export class TrainingError extends Error {}

const emitter = (sink?: EventSink) => (e: TrainEvent) => sink?.(e);

/** Starts a new run in `opts.out`. */
export async function pretrain(opts: PretrainOptions): Promise<TrainResult> {
  const emit = emitter(opts.onEvent);
  const train = { ...DEFAULT_TRAIN, ...opts.train };
  validateTrainConfig(train);
  const runDir = path.resolve(opts.out);
  if (await exists(path.join(runDir, 'state.json'))) {
    throw new TrainingError(`${runDir} already holds a run; resume it or choose another --out`);
  }
  for (const f of ['config.json', 'model.safetensors']) {
    if (await exists(path.join(runDir, f))) {
      throw new TrainingError(`${runDir} already holds a model (${f}); choose another --out`);
    }
  }

  // Corpus → tokenizer → tokens. readCorpusChunks names the file for empty/binary/missing input.
  const chunks = await readCorpusChunks(opts.corpus);
  let tokenizer: Tokenizer;
  if (typeof opts.tokenizer === 'object') {
    tokenizer = await loadTokenizer(opts.tokenizer.dir);
  } else {
    tokenizer = await trainTokenizer({
      kind: opts.tokenizer,
      vocabSize: opts.vocabSize,
      corpus: chunks,
      signal: opts.signal,
      onProgress: (p) => emit({ type: 'tokenizer', ...p }),
    });
  }
  const pieces: number[][] = [];
  let total = 0;
  for await (const text of await readCorpusChunks(opts.corpus)) {
    if (opts.signal?.aborted) throw new TrainingError('cancelled while encoding the corpus');
    const ids = tokenizer.encode(text);
    pieces.push(ids);
    total += ids.length;
  }
  const tokens = new Int32Array(total);
  let off = 0;
  for (const p of pieces) {
    tokens.set(p, off);
    off += p.length;
  }
  const label = opts.corpus.join(', ');

  const base = presetConfig(opts.preset ?? 'tiny', tokenizer.vocabSize, opts.model?.dropout ?? 0);
  const config: GPTConfig = { ...base, ...stripUndefined(opts.model ?? {}) };
  config.vocabSize = tokenizer.vocabSize;
  if (config.nEmbd % config.nHead !== 0) {
    throw new TrainingError(
      `--n-embd ${config.nEmbd} must be divisible by --n-head ${config.nHead}`,
    );
  }
  const splits = splitTokens(tokens, train.valFraction);
  checkSplits(splits, config.blockSize, label);
  checkBackendMemory(config, train);
  checkTensorSize([train.batchSize * config.blockSize, config.vocabSize], 'the logits');
  checkTensorSize(
    [train.batchSize * config.nHead, config.blockSize, config.blockSize],
    'the attention scores',
  );

  await fs.mkdir(runDir, { recursive: true });
  const dtype = await saveTokens(runDir, splits, tokenizer.vocabSize);
  const model = GPT.init(config, train.seed);
  const corpusInfo = await Promise.all(
    opts.corpus.map(async (p) => ({ path: path.resolve(p), bytes: (await fs.stat(p)).size })),
  );
  const now = new Date().toISOString();
  const state: RunState = {
    version: 1,
    step: 0,
    rng: new Rng(train.seed ^ 0x5eed).state(),
    adamT: 0,
    train,
    tokens: { dtype, train: splits.train.length, val: splits.val.length },
    corpus: corpusInfo,
    trainLoss: null,
    valLoss: null,
    bestValLoss: null,
    elapsedMs: 0,
    status: 'running',
    backend: tf.getBackend(),
    createdAt: now,
    updatedAt: now,
  };
  await saveModelDir(runDir, model, tokenizer, { step: '0' });
  const opt = newOptimizer(model, train);
  await saveCheckpoint(runDir, model, opt, state);
  await fs.writeFile(path.join(runDir, 'metrics.jsonl'), '');
  return trainLoop(runDir, model, tokenizer, opt, splits, state, false, opts);
}

/** Continues a run from its last checkpoint, optionally to a new total step count. */
export async function resume(opts: {
  run: string;
  steps?: number;
  onEvent?: EventSink;
  signal?: AbortSignal;
  pause?: PauseGate;
}): Promise<TrainResult> {
  const runDir = path.resolve(opts.run);
  await readState(runDir); // a clear error when this is not a run
  const [latest] = await listCheckpoints(runDir);
  if (!latest) throw new TrainingError(`${runDir}: the run has no complete checkpoint to resume`);
  const state = await readState(latest.dir);
  if (opts.steps !== undefined) {
    if (opts.steps <= state.step) {
      throw new TrainingError(
        `${runDir} is already at step ${state.step}; ask for more steps (--steps ${state.step + 100}, say)`,
      );
    }
    state.train.steps = opts.steps;
  }
  const { model, tokenizer } = await loadModelDir(runDir);
  const { params } = await loadGpt2Weights(
    path.join(latest.dir, 'model.safetensors'),
    model.config,
  );
  await model.setWeights(params);
  const opt = newOptimizer(model, state.train);
  const { tensors } = await readSafetensors(path.join(latest.dir, 'optimizer.safetensors'), {
    toFloat32: true,
  });
  const pick = (prefix: string) => {
    const m = new Map<string, Float32Array>();
    for (const [k, t] of tensors) {
      if (k.startsWith(prefix)) m.set(k.slice(prefix.length), (t as Tensor).data as Float32Array);
    }
    return m;
  };
  opt.load(pick('exp_avg.'), pick('exp_avg_sq.'), state.adamT);
  const splits = await loadTokens(runDir, state.tokens.dtype);
  await truncateMetrics(runDir, state.step);
  await truncateMetrics(runDir, state.step, 'samples.jsonl');
  state.status = 'running';
  return trainLoop(runDir, model, tokenizer, opt, splits, state, true, opts);
}

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

/** Refuses a model and batch whose training would not fit the running backend's memory. */
export function checkBackendMemory(
  config: GPTConfig,
  t: Pick<TrainConfig, 'batchSize' | 'gradAccum'>,
): void {
  const report = getBackendReport();
  checkMemory(
    config,
    t.batchSize,
    t.gradAccum,
    report?.memoryLimitBytes ?? Infinity,
    report?.name ?? tf.getBackend(),
  );
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

async function trainLoop(
  runDir: string,
  model: GPT,
  tokenizer: Tokenizer,
  opt: AdamW,
  splits: TokenSplits,
  state: RunState,
  resumed: boolean,
  opts: { onEvent?: EventSink; signal?: AbortSignal; pause?: PauseGate },
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

  const checkpoint = async () => {
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
      const { loss, gradNorm, aborted } = await trainStep(
        model,
        opt,
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
        const valLoss = await evaluate(model, splits.val, t, T);
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
      if (t.sampleEvery > 0 && (state.step % t.sampleEvery === 0 || last)) {
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
  } catch (caught) {
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
      const { x, y } = sampleBatch(data, t.batchSize, T, rng);
      const seed = (t.seed * 1000003 + step * 131 + micro) >>> 0;
      let stopped = false;
      const result = await model
        .lossAndGrads(x, y, {
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

/** Mean validation loss over evalIters fixed batches (the same batches every time). */
export async function evaluate(
  model: GPT,
  val: Int32Array,
  t: Pick<TrainConfig, 'batchSize' | 'evalIters' | 'seed'>,
  T: number,
): Promise<number> {
  const rng = new Rng(t.seed ^ 0xe7a1);
  let sum = 0;
  for (let i = 0; i < t.evalIters; i++) {
    const { x, y } = sampleBatch(val, t.batchSize, T, rng);
    const l = tf.tidy(() => model.loss(x, y));
    sum += ((await l.data()) as Float32Array)[0]!;
    tf.dispose([x, y, l]);
  }
  return sum / t.evalIters;
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

/** Records a failure in the top-level state.json, which otherwise stays as last saved. */
async function markFailed(runDir: string, message: string) {
  try {
    const saved = await readState(runDir);
    await writeJsonAtomic(path.join(runDir, 'state.json'), {
      ...saved,
      status: 'failed',
      error: message,
      updatedAt: new Date().toISOString(),
    });
  } catch {
    // no readable state to annotate: leave the directory as it is
  }
}

/** How many checkpoint-<step> folders a run keeps. */
const KEEP_CHECKPOINTS = 2;

/**
 * Writes checkpoint-<step>/ (model, optimizer, state) into a temp folder and renames it into place,
 * so a checkpoint folder is always whole. Then refreshes the top level (the run's Hugging Face
 * model dir and its state.json), each file atomically, and prunes older checkpoints.
 */
async function saveCheckpoint(runDir: string, model: GPT, opt: AdamW, state: RunState) {
  const meta = { step: String(state.step), format: 'pt' };
  const weights = await model.weights();
  const final = path.join(runDir, `checkpoint-${state.step}`);
  const tmp = path.join(runDir, `.checkpoint-${state.step}.${process.pid}.tmp`);
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.mkdir(tmp, { recursive: true });
  await saveGpt2Weights(path.join(tmp, 'model.safetensors'), model.config, weights, {
    metadata: meta,
  });
  const { m, v } = await opt.state();
  const tensors: Record<string, Tensor> = {};
  opt.names.forEach((n, i) => {
    tensors[`exp_avg.${n}`] = { dtype: 'F32', shape: opt.shapes[i]!, data: m.get(n)! };
    tensors[`exp_avg_sq.${n}`] = { dtype: 'F32', shape: opt.shapes[i]!, data: v.get(n)! };
  });
  await writeSafetensors(path.join(tmp, 'optimizer.safetensors'), tensors, meta);
  await writeJsonAtomic(path.join(tmp, 'state.json'), state);
  await fs.rm(final, { recursive: true, force: true });
  await fs.rename(tmp, final);

  await saveGpt2Weights(path.join(runDir, 'model.safetensors'), model.config, weights, {
    metadata: meta,
  });
  await writeJsonAtomic(path.join(runDir, 'state.json'), state);
  for (const old of (await listCheckpoints(runDir)).slice(KEEP_CHECKPOINTS)) {
    await fs.rm(old.dir, { recursive: true, force: true });
  }
}

/** The run's complete checkpoint folders, newest first. */
export async function listCheckpoints(
  runDir: string,
): Promise<Array<{ step: number; dir: string }>> {
  const names = await fs.readdir(runDir).catch(() => [] as string[]);
  return names
    .map((n) => /^checkpoint-(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ step: Number(m[1]), dir: path.join(runDir, m[0]) }))
    .sort((a, b) => b.step - a.step);
}

export async function readState(runDir: string): Promise<RunState> {
  const file = path.join(runDir, 'state.json');
  let raw: string;
  try {
    raw = await fs.readFile(file, 'utf8');
  } catch {
    throw new TrainingError(`${runDir}: not a run directory (no state.json)`);
  }
  try {
    const s = JSON.parse(raw) as RunState;
    if (s.version !== 1 || typeof s.step !== 'number') throw new Error('unknown format');
    return s;
  } catch (err) {
    throw new TrainingError(`${file}: unreadable run state (${(err as Error).message})`);
  }
}

/**
 * Drops metrics (or samples) logged after the checkpoint being resumed, so none repeat, and a
 * line cut short by a crash.
 */
async function truncateMetrics(runDir: string, step: number, name = 'metrics.jsonl') {
  const file = path.join(runDir, name);
  const text = await fs.readFile(file, 'utf8').catch(() => null);
  if (text === null) return;
  const keep = text.split('\n').filter((l) => {
    try {
      return l.trim() !== '' && (JSON.parse(l) as { step: number }).step <= step;
    } catch {
      return false;
    }
  });
  await fs.writeFile(file, keep.map((l) => l + '\n').join(''));
}

function validateTrainConfig(t: TrainConfig) {
  const positive: Array<keyof TrainConfig> = ['batchSize', 'gradAccum', 'steps'];
  for (const k of positive) {
    if (!Number.isInteger(t[k]) || (t[k] as number) < 1) {
      throw new TrainingError(`${k} must be a positive integer, got ${t[k]}`);
    }
  }
  if (!(t.lr > 0)) throw new TrainingError(`lr must be positive, got ${t.lr}`);
  if (!(t.minLr >= 0 && t.minLr <= t.lr)) throw new TrainingError(`min-lr must be in [0, lr]`);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
