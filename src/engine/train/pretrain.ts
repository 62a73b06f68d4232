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
import type { ZeroShotConfig } from '../../common/zeroShot';
import { DEFAULT_TRAIN, type TrainConfig } from '../../common/defaults';
import { loadGpt2Weights } from '../checkpoint/gpt2';
import { loadModelDir, saveModelDir } from '../checkpoint/modelDir';
import { readSafetensors, type Tensor } from '../checkpoint/safetensors';
import { checkTensorSize, getBackendReport } from '../backend';
import { objectiveOf, type GPTConfig, type Objective } from '../model/config';
import { GPT } from '../model/gpt';
import { presetConfig, type PresetName } from '../model/presets';
import { loadTokenizer, readCorpusChunks, trainTokenizer } from '../tokenizer';
import { MASK_TOKEN, type Tokenizer, type TokenizerKind } from '../tokenizer/types';
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
import { readStartModel } from './init';
import { checkBackendMemory, newOptimizer } from './step';
import { openZeroShot, type ZeroShotTracker } from './zeroShot';

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
  /** Overrides of the preset's shape and layout ('gpt1': post-LayerNorm, no ln_f). */
  model?: Partial<
    Pick<GPTConfig, 'nLayer' | 'nHead' | 'nEmbd' | 'blockSize' | 'dropout' | 'layout'>
  >;
  train?: Partial<TrainConfig>;
  /** 'clm' (default): a GPT, next-token prediction; 'mlm': a BERT-style masked-LM. */
  objective?: Objective;
  /**
   * Start from this model folder (an import, a run, a fine-tune): its weights, architecture and
   * tokenizer, in place of a new model; `tokenizer`, `vocabSize`, `preset` and `model` (but its
   * dropout) do not apply.
   */
  from?: string;
  onEvent?: EventSink;
  signal?: AbortSignal;
  /** Pauses the loop between steps while paused. */
  pause?: PauseGate;
  /** Labelled sets scored zero-shot every N steps (GPT-1, Figure 2); saved with the run. */
  zeroShot?: ZeroShotConfig;
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
  if (opts.objective === 'mlm' && opts.zeroShot) {
    throw new TrainingError(
      'zero-shot tracking ranks label words left to right, which a masked-LM (BERT-style) model ' +
        'cannot do; pretrain it without zero-shot sets',
    );
  }
  // the labelled sets are read before any work, so a bad file stops the run at once
  const zeroShot = opts.zeroShot ? await trackerFor(opts.zeroShot) : undefined;

  const start = opts.from ? await readStartModel(opts.from, opts.model?.dropout) : null;
  if (start && objectiveOf(start.config) !== (opts.objective ?? 'clm')) {
    const was = objectiveOf(start.config);
    throw new TrainingError(
      `${opts.from}: it is a ${was === 'mlm' ? 'masked-LM (BERT-style)' : 'GPT (clm)'} model; ` +
        `pretraining continues it only with its own objective (--objective ${was})`,
    );
  }

  // Corpus → tokenizer → tokens. readCorpusChunks names the file for empty/binary/missing input.
  const chunks = await readCorpusChunks(opts.corpus);
  let tokenizer: Tokenizer;
  if (start) {
    tokenizer = start.tokenizer;
  } else if (typeof opts.tokenizer === 'object') {
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
  // a masked-LM's [MASK] joins the vocabulary (after the tokenizer's own tokens, so none move)
  if (opts.objective === 'mlm') tokenizer.addSpecialTokens([MASK_TOKEN]);
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
  const config: GPTConfig = start?.config ?? { ...base, ...stripUndefined(opts.model ?? {}) };
  if (!start) config.vocabSize = tokenizer.vocabSize;
  if (opts.objective === 'mlm') config.objective = 'mlm';
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
  const model = start ? new GPT(config, start.params) : GPT.init(config, train.seed);
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
    ...(zeroShot ? { zeroShot: zeroShot.config } : {}),
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
  return trainLoop(runDir, model, tokenizer, opt, splits, state, false, {
    ...opts,
    workers,
    zeroShot,
  });
}

/** The zero-shot tracker of `config`, its files made absolute (a resume may run elsewhere). */
async function trackerFor(config: ZeroShotConfig): Promise<ZeroShotTracker> {
  const sets = config.sets.map((s) => ({ ...s, file: path.resolve(s.file) }));
  try {
    return await openZeroShot({ ...config, sets });
  } catch (err) {
    throw new TrainingError(`zero-shot tracking: ${(err as Error).message}`);
  }
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
  let zeroShot: ZeroShotTracker | undefined;
  if (state.zeroShot) {
    // a set that cannot be read any more stops its tracking, not the run
    zeroShot = await trackerFor(state.zeroShot).catch((err: Error) => {
      emitter(opts.onEvent)({ type: 'log', level: 'warn', message: err.message });
      return undefined;
    });
  }
  return trainLoop(runDir, model, tokenizer, opt, splits, state, true, {
    ...opts,
    workers,
    zeroShot,
  });
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
