/**
 * The contract's pretraining part: the wizard's model step (size presets, the estimate, a measured
 * probe), training runs (start, continue, pause) and run management (list, details, metrics,
 * sizes, delete), with the engine's train events. Owned by the pretrain feature; api.ts spreads
 * these tables in.
 */
import { z } from 'zod';
import type { ModelKind } from './api';
import { datasetIdSchema } from './datasets';
import { MAX_TRAIN_WORKERS } from './defaults';
import type { TrainEvent, TrainResult } from './events';
import {
  empty,
  jobIdSchema,
  modelOverridesSchema,
  modelRef,
  posInt,
  presetNameSchema,
  req,
  runIdSchema,
  trainConfigSchema,
  type JobRef,
  type PresetInfo,
  type RunDetails,
  type RunSummary,
} from './schema';
import { zeroShotConfigSchema, type ZeroShotPoint } from './zeroShot';

// ─── Shapes ────────────────────────────────────────────────────────────────────────────────────

export interface ModelEstimate {
  params: number;
  config: { nLayer: number; nHead: number; nEmbd: number; blockSize: number; vocabSize: number };
  memory: { stateBytes: number; activationBytes: number; totalBytes: number };
  limitBytes: number;
  backend: string;
  /** The workers the memory is for: each holds a replica and its share of the batch. */
  workers?: number;
  fits: boolean;
  /** When it does not fit: the engine's advice (a smaller batch or context). */
  advice?: string;
  /** Set when the shape itself is invalid (e.g. width not divisible by heads). */
  error?: string;
}

export interface RunMetrics {
  id: string;
  steps: Array<{ step: number; trainLoss: number; lr: number; tokensPerSecond: number }>;
  evals: Array<{ step: number; valLoss: number; trainLoss: number }>;
  /** Zero-shot accuracies of the tracked sets (common/zeroShot.ts), in step order. */
  zeroShot: ZeroShotPoint[];
  samples: Array<{ step: number; prompt: string; text: string }>;
}

/** A model folder of the workspace as the Runs page sizes it: a run, a fine-tune or an import. */
export interface RunInfo {
  id: string;
  dir: string;
  kind: ModelKind;
  params: number | null;
  elapsedMs: number;
  /** Bytes on disk. */
  bytes: number;
  /** A fine-tune's end ('cancelled': stopped early, the model so far saved). */
  outcome?: 'completed' | 'cancelled';
}

// ─── Requests ──────────────────────────────────────────────────────────────────────────────────

const modelShape = {
  preset: presetNameSchema.optional(),
  model: modelOverridesSchema.optional(),
};
/**
 * A model of the workspace's list (models.list) to start from: its weights, size, layout and
 * tokenizer, in place of a new model; then `tokenizer`, `preset` and `model`'s shape and layout do
 * not apply (its dropout does). Without it, `tokenizer` is required.
 */
const fromModel = { from: modelRef.optional() };
const startParams = z
  .object({
    name: runIdSchema,
    datasets: z.array(datasetIdSchema).min(1),
    tokenizer: datasetIdSchema.optional(),
    ...fromModel,
    ...modelShape,
    train: trainConfigSchema.optional(),
    /** Labelled sets scored zero-shot every N steps (GPT-1, Figure 2). */
    zeroShot: zeroShotConfigSchema.optional(),
  })
  .strict();
const probeParams = z
  .object({
    datasets: z.array(datasetIdSchema).min(1),
    tokenizer: datasetIdSchema.optional(),
    ...fromModel,
    ...modelShape,
    train: trainConfigSchema.optional(),
    steps: posInt.max(20).optional(),
  })
  .strict();
const estimateParams = z
  .object({
    vocabSize: posInt,
    ...modelShape,
    batchSize: posInt.optional(),
    gradAccum: posInt.optional(),
    workers: posInt.max(MAX_TRAIN_WORKERS).optional(),
  })
  .strict();
const runById = z.object({ id: runIdSchema }).strict();
const continueParams = z.object({ id: runIdSchema, steps: posInt.optional() }).strict();
const pauseParams = z.object({ jobId: jobIdSchema, paused: z.boolean() }).strict();

export const pretrainRequests = {
  /** The model size presets. */
  'models.presets': req<typeof empty, PresetInfo[]>(empty),
  /** Parameter count and training memory against the backend's limit. */
  'models.estimate': req<typeof estimateParams, ModelEstimate>(estimateParams),
  /** Times a few real training steps (`model.probe` job). */
  'models.probe': req<typeof probeParams, JobRef>(probeParams),
  /**
   * Starts pretraining a new run workspace/runs/<name> (a `pretrain` job, pausable): library
   * datasets, a trained tokenizer and a new model, or a model to start from (`from`: its weights
   * and tokenizer), hyperparameters; progress arrives as job events.
   */
  'pretrain.start': req<typeof startParams, JobRef>(startParams),
  /** Continues a stopped or interrupted run from its last checkpoint (a `resume` job, pausable). */
  'pretrain.continue': req<typeof continueParams, JobRef>(continueParams),
  /** Pauses or resumes a training job between steps. */
  'pretrain.pause': req<typeof pauseParams, { paused: boolean }>(pauseParams),
  /** The training jobs paused now. */
  'pretrain.paused': req<typeof empty, { jobIds: string[] }>(empty),
  /** Runs under workspace/runs, newest first. */
  'runs.list': req<typeof empty, RunSummary[]>(empty),
  /** One run's summary, configs and corpus. */
  'runs.get': req<typeof runById, RunDetails>(runById),
  /** A run's logged losses, learning rate and samples. */
  'runs.metrics': req<typeof runById, RunMetrics>(runById),
  /** The size (parameters, bytes on disk) and training time of each run, fine-tune and import. */
  'runs.info': req<typeof empty, RunInfo[]>(empty),
  /** Deletes a run's folder; refused while a job trains it. */
  'runs.delete': req<typeof runById, { deleted: true }>(runById),
};

/** Job kinds this feature starts. */
export const PRETRAIN_JOB_KINDS = ['pretrain', 'resume', 'model.probe'] as const;

// ─── Events ────────────────────────────────────────────────────────────────────────────────────

const num = z.number();

/** The engine's training events (src/common/events.ts), as they travel. */
export const trainEventSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('start'),
    runDir: z.string(),
    step: num,
    totalSteps: num,
    params: num,
    backend: z.string(),
    tokensPerStep: num,
    trainTokens: num,
    valTokens: num,
    resumed: z.boolean(),
  }),
  z.object({
    type: z.literal('step'),
    step: num,
    totalSteps: num,
    trainLoss: num,
    lr: num,
    gradNorm: num,
    tokensPerSecond: num,
    elapsedMs: num,
    etaMs: num,
    memoryMB: num,
  }),
  z.object({
    type: z.literal('eval'),
    step: num,
    trainLoss: num,
    valLoss: num,
    valPerplexity: num,
  }),
  z.object({
    type: z.literal('zeroshot'),
    step: num,
    set: z.string(),
    task: z.enum(['classification', 'multiple-choice']),
    accuracy: num,
    correct: num,
    n: num,
    chance: num,
    majority: num,
  }),
  z.object({ type: z.literal('sample'), step: num, prompt: z.string(), text: z.string() }),
  z.object({ type: z.literal('checkpoint'), step: num, path: z.string() }),
  z.object({
    type: z.literal('log'),
    level: z.enum(['info', 'warn', 'error']),
    message: z.string(),
  }),
  z.object({
    type: z.literal('tokenizer'),
    phase: z.string(),
    fraction: num,
    message: z.string(),
  }),
]);
export const trainResultSchema = z.object({
  type: z.literal('result'),
  runDir: z.string(),
  step: num,
  /** null when cancelled before the first step (NaN in the engine). */
  trainLoss: num.nullable(),
  valLoss: num.nullable(),
  tokensPerSecond: num,
  stopped: z.enum(['completed', 'cancelled']),
  elapsedMs: num,
});

// the schemas and the hand-written engine types must agree
const _trainEventCheck: z.ZodType<TrainEvent> = trainEventSchema;
const _trainResultCheck: z.ZodType<Omit<TrainResult, 'trainLoss'> & { trainLoss: number | null }> =
  trainResultSchema;
void _trainEventCheck;
void _trainResultCheck;

/** Progress events of this feature's jobs: the engine's train events first, then the wizard's. */
export const pretrainProgressSchema = z.union([
  trainEventSchema,
  z.discriminatedUnion('type', [
    z.object({ type: z.literal('probe.step'), step: num, steps: num, ms: num }),
    /** A run was paused or resumed. */
    z.object({ type: z.literal('pretrain.paused'), paused: z.boolean() }),
  ]),
]);

/** Results of this feature's jobs (job.done). */
export const pretrainResultSchema = z.union([
  trainResultSchema,
  z.object({
    type: z.literal('probe.result'),
    steps: num,
    secondsPerStep: num,
    tokensPerStep: num,
    tokensPerSecond: num,
    params: num,
    backend: z.string(),
    /** The data-parallel workers the steps ran on. */
    workers: num.optional(),
  }),
]);
export type PretrainProgress = z.infer<typeof pretrainProgressSchema>;
export type PretrainJobResult = z.infer<typeof pretrainResultSchema>;
