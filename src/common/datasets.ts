/**
 * The contract's datasets and pretrain-wizard part: the dataset library, imports, the tokenizer
 * step, the model estimate and probe, wizard runs with pause, and run management (metrics,
 * delete). Owned by the datasets feature; api.ts spreads these tables in.
 */
import { z } from 'zod';
import { pathString, shortString } from './limits';
import {
  empty,
  jobIdSchema,
  modelOverridesSchema,
  posInt,
  presetNameSchema,
  req,
  runIdSchema,
  tokenizerKindSchema,
  trainConfigSchema,
  type JobRef,
} from './schema';

// ─── Shapes ────────────────────────────────────────────────────────────────────────────────────

export type DatasetFormat = 'text' | 'jsonl' | 'csv' | 'tsv' | 'json' | 'mixed';

export interface DatasetStats {
  /** Bytes of the normalized UTF-8 text. */
  bytes: number;
  /** Unicode code points. */
  chars: number;
  lines: number;
  nonEmptyLines: number;
  uniqueChars: number;
  /** Non-empty lines that repeat an earlier line. */
  duplicateLines: number;
  /** False once too many distinct lines were seen to track them all. */
  duplicatesExact: boolean;
  /** The first few thousand characters. */
  preview: string;
  /** The distinct characters, sorted (the first 400). */
  charset: string;
}

export interface DatasetManifest {
  version: 1;
  id: string;
  name: string;
  createdAt: string;
  /** sha256 of the normalized text: the same content imported again is recognized by it. */
  contentHash: string;
  format: DatasetFormat;
  /** The jsonl/json field or csv/tsv column taken as the text. */
  field?: string;
  files: Array<{ name: string; bytes: number; sha256: string; format: string; encoding: string }>;
  /** The normalized text files (text-000.txt, …) in the dataset's folder. */
  shards: string[];
  stats: DatasetStats;
  /** The first rows that could not be read (each names the file and row). */
  warnings: string[];
  problemCount: number;
  /** 'sample': the bundled corpus seeded on first launch. */
  source?: 'sample' | 'import';
  /** Token counts by tokenizer id. */
  tokenCounts: Record<string, number>;
}

export interface InspectResult {
  file: string;
  format: 'text' | 'jsonl' | 'csv' | 'tsv' | 'json';
  bytes: number;
  encoding?: string;
  columns: string[];
  rows: Array<Record<string, string>>;
  suggested?: string;
  problems?: string[];
}

export interface DatasetDetails {
  dataset: DatasetManifest;
  /** The engine's split: the last valFraction of the tokens validate (≈ of the text). */
  split: { valFraction: number; trainBytes: number; valBytes: number; valPreview: string };
}

export interface TokenizerInfo {
  id: string;
  kind: 'char' | 'bpe';
  vocabSize: number;
  datasets: string[];
  /** Tokens of the training datasets and their characters per token. */
  tokens: number;
  charsPerToken: number;
  createdAt: string;
  /** The folder with tokenizer.json (what pretraining takes). */
  dir: string;
}

export interface TokenizerPreview {
  vocabSample: string[];
  /** The first lines, token by token (each piece as text). */
  lines: Array<Array<{ id: number; text: string }>>;
  charsPerToken: number;
}

export interface ModelEstimate {
  params: number;
  config: { nLayer: number; nHead: number; nEmbd: number; blockSize: number; vocabSize: number };
  memory: { stateBytes: number; activationBytes: number; totalBytes: number };
  limitBytes: number;
  backend: string;
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
  samples: Array<{ step: number; prompt: string; text: string }>;
}

export interface RunInfo {
  id: string;
  dir: string;
  params: number | null;
  elapsedMs: number;
  /** Bytes on disk. */
  bytes: number;
}

// ─── Requests ──────────────────────────────────────────────────────────────────────────────────

/** A dataset's or tokenizer's id: its folder name. */
export const datasetIdSchema = runIdSchema;

const importParams = z
  .object({
    /** Files or folders the engine can read (uploads land in workspace/uploads). */
    paths: z.array(pathString).min(1).max(1000),
    /** The names the user sees (an upload's original file name), one per path. */
    names: z.array(shortString).max(1000).optional(),
    name: z.string().max(100).optional(),
    field: shortString.min(1).optional(),
  })
  .strict();
const modelShape = {
  preset: presetNameSchema.optional(),
  model: modelOverridesSchema.optional(),
};
const wizardRun = z
  .object({
    name: runIdSchema,
    datasets: z.array(datasetIdSchema).min(1),
    tokenizer: datasetIdSchema,
    ...modelShape,
    train: trainConfigSchema.optional(),
  })
  .strict();
const probeParams = z
  .object({
    datasets: z.array(datasetIdSchema).min(1),
    tokenizer: datasetIdSchema,
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
  })
  .strict();
const byId = z.object({ id: datasetIdSchema }).strict();
const runById = z.object({ id: runIdSchema }).strict();
const getParams = z
  .object({ id: datasetIdSchema, valFraction: z.number().min(0).lt(1).optional() })
  .strict();
const inspectParams = z.object({ path: pathString }).strict();
const tokensParams = z.object({ id: datasetIdSchema, tokenizer: datasetIdSchema }).strict();
const tokenizerTrainParams = z
  .object({
    datasets: z.array(datasetIdSchema).min(1),
    kind: tokenizerKindSchema,
    vocabSize: posInt.optional(),
  })
  .strict();
const previewParams = z.object({ id: datasetIdSchema, dataset: datasetIdSchema }).strict();
const continueParams = z.object({ id: runIdSchema, steps: posInt.optional() }).strict();
const pauseParams = z.object({ jobId: jobIdSchema, paused: z.boolean() }).strict();

export const datasetRequests = {
  /** The library, newest first (the bundled sample is seeded on first use). */
  'datasets.list': req<typeof empty, DatasetManifest[]>(empty),
  /** One dataset with its train/val split. */
  'datasets.get': req<typeof getParams, DatasetDetails>(getParams),
  /** A file's format, encoding, and for tables its columns and first rows. */
  'datasets.inspect': req<typeof inspectParams, InspectResult>(inspectParams),
  /** Imports files into the library as a `dataset.import` job. */
  'datasets.import': req<typeof importParams, JobRef>(importParams),
  'datasets.delete': req<typeof byId, { deleted: true }>(byId),
  /** Counts a dataset's tokens with a trained tokenizer (kept in the manifest). */
  'datasets.tokens': req<typeof tokensParams, { tokens: number; charsPerToken: number }>(
    tokensParams,
  ),
  /** Tokenizers trained in the workspace, newest first. */
  'tokenizers.list': req<typeof empty, TokenizerInfo[]>(empty),
  /** Trains a tokenizer on datasets as a `tokenizer.train` job. */
  'tokenizer.train': req<typeof tokenizerTrainParams, JobRef>(tokenizerTrainParams),
  /** A sample of the vocabulary and the first lines of a dataset, tokenized. */
  'tokenizer.preview': req<typeof previewParams, TokenizerPreview>(previewParams),
  /** Parameter count and training memory against the backend's limit. */
  'model.estimate': req<typeof estimateParams, ModelEstimate>(estimateParams),
  /** Times a few real training steps (`model.probe` job). */
  'model.probe': req<typeof probeParams, JobRef>(probeParams),
  /** Starts pretraining from the wizard: datasets, a trained tokenizer, a model, hyperparameters. */
  'pretrain.run': req<typeof wizardRun, JobRef>(wizardRun),
  /** Continues a stopped or interrupted run from its last checkpoint (pausable). */
  'pretrain.continue': req<typeof continueParams, JobRef>(continueParams),
  /** Pauses or resumes a wizard run between steps. */
  'pretrain.pause': req<typeof pauseParams, { paused: boolean }>(pauseParams),
  /** The training jobs paused now. */
  'pretrain.paused': req<typeof empty, { jobIds: string[] }>(empty),
  /** A run's logged losses, learning rate and samples. */
  'runs.metrics': req<typeof runById, RunMetrics>(runById),
  /** Each run's size (parameters, bytes on disk) and training time. */
  'runs.info': req<typeof empty, RunInfo[]>(empty),
  /** Deletes a run's folder; refused while a job trains it. */
  'runs.delete': req<typeof runById, { deleted: true }>(runById),
};

/** Job kinds this feature starts. */
export const DATASET_JOB_KINDS = ['dataset.import', 'tokenizer.train', 'model.probe'] as const;

const num = z.number();

/** Progress events of this feature's jobs (each `type` unique across the contract). */
export const datasetProgressSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('dataset.progress'),
    phase: z.string(),
    fraction: num,
    file: z.string(),
    bytesDone: num,
    totalBytes: num,
  }),
  z.object({
    type: z.literal('tokenizer.progress'),
    phase: z.string(),
    fraction: num,
    message: z.string(),
  }),
  z.object({ type: z.literal('probe.step'), step: num, steps: num, ms: num }),
  /** A wizard run was paused or resumed. */
  z.object({ type: z.literal('pretrain.paused'), paused: z.boolean() }),
]);

const manifestSchema = z.custom<DatasetManifest>(
  (v) => typeof v === 'object' && v !== null && typeof (v as { id?: unknown }).id === 'string',
);
const tokenizerInfoSchema = z.custom<TokenizerInfo>(
  (v) => typeof v === 'object' && v !== null && typeof (v as { id?: unknown }).id === 'string',
);

/** Results of this feature's jobs (job.done). */
export const datasetResultSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('dataset.result'),
    dataset: manifestSchema,
    duplicate: z.boolean(),
  }),
  z.object({ type: z.literal('tokenizer.result'), tokenizer: tokenizerInfoSchema }),
  z.object({
    type: z.literal('probe.result'),
    steps: num,
    secondsPerStep: num,
    tokensPerStep: num,
    tokensPerSecond: num,
    params: num,
    backend: z.string(),
  }),
]);
export type DatasetProgress = z.infer<typeof datasetProgressSchema>;
export type DatasetJobResult = z.infer<typeof datasetResultSchema>;
