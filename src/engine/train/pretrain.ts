/**
 * GPT-1's first stage: maximize L1 = Σ log P(u_i | u_{i-k..i-1}) on unlabeled text.
 *
 * A run lives in its directory (./runDir.ts); resuming from the newest checkpoint folder
 * continues exactly.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '../tf';
import type { EventSink, TrainResult } from '../../common/events';
import { DEFAULT_TRAIN, type TrainConfig } from '../../common/defaults';
import { loadGpt2Weights } from '../checkpoint/gpt2';
import { loadModelDir, saveModelDir } from '../checkpoint/modelDir';
import { readSafetensors, type Tensor } from '../checkpoint/safetensors';
import { getBackendReport } from '../backend';
import type { GPTConfig } from '../model/config';
import { checkTensorSize, GPT } from '../model/gpt';
import { presetConfig, type PresetName } from '../model/presets';
import { loadTokenizer, readCorpusChunks, trainTokenizer } from '../tokenizer';
import type { Tokenizer, TokenizerKind } from '../tokenizer/types';
import { exists } from '../util/fs';
import { Rng } from '../util/rng';
import { checkSplits, loadTokens, saveTokens, splitTokens } from './data';
import { emitter, trainLoop } from './loop';
import { planWorkers } from './parallel/pool';
import type { PauseGate } from './pause';
import {
  listCheckpoints,
  readState,
  saveCheckpoint,
  TrainingError,
  truncateMetrics,
  type CorpusDataset,
  type RunState,
} from './runDir';
import { checkBackendMemory, newOptimizer } from './step';

// The pretraining API as the CLI, the host and the bench import it.
export { listCheckpoints, readState, TrainingError, type RunState } from './runDir';
export { checkBackendMemory, evaluate, newOptimizer, trainingAdvice, trainStep } from './step';
export type { TrainConfig };
export { DEFAULT_TRAIN };

export interface PretrainOptions {
  corpus: string[];
  /** The library datasets `corpus` holds, recorded for the model card. */
  datasets?: CorpusDataset[];
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
  const workers = workersFor(train.workers, train.batchSize, emit);
  if (train.workers !== undefined) train.workers = workers;
  checkBackendMemory(config, train, workers);
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
    ...(opts.datasets ? { datasets: opts.datasets } : {}),
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
  return trainLoop(runDir, model, tokenizer, opt, splits, state, false, { ...opts, workers });
}

/** The workers this backend and batch allow for the count asked for, saying why when fewer. */
function workersFor(
  requested: number | undefined,
  rows: number,
  emit: ReturnType<typeof emitter>,
): number {
  const backend = getBackendReport()?.name ?? tf.getBackend();
  const plan = planWorkers(requested, backend, rows);
  if (plan.note) emit({ type: 'log', level: 'warn', message: plan.note });
  return plan.workers;
}

/** Continues a run from its last checkpoint, optionally to a new total step count. */
export async function resume(opts: {
  run: string;
  steps?: number;
  onEvent?: EventSink;
  signal?: AbortSignal;
  pause?: PauseGate;
  /** Workers to continue on (default: the run's own count; the same count repeats exactly). */
  workers?: number;
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
  const requested = opts.workers ?? state.train.workers;
  const workers = workersFor(requested, state.train.batchSize, emitter(opts.onEvent));
  if (opts.workers !== undefined) state.train.workers = workers;
  if (workers > 1) checkBackendMemory(model.config, state.train, workers);
  return trainLoop(runDir, model, tokenizer, opt, splits, state, true, { ...opts, workers });
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
