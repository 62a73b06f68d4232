/**
 * The contract's building blocks: errors, shared shapes and the `req` helper. The request tables
 * (api.ts core, and one file per feature: pretrain, datasets, finetune, console, checkpoints)
 * build on it. Pure: no Node APIs.
 */
import { z } from 'zod';
import { MAX_TRAIN_WORKERS } from './defaults';
import { pathString, shortString } from './limits';

// ─── Errors ────────────────────────────────────────────────────────────────────────────────────

export const ERROR_CODES = [
  'bad-request',
  'not-found',
  /** A path outside what this host may read or write (browser mode's allow-list). */
  'forbidden',
  /** A request or message larger than its documented limit. */
  'too-large',
  'busy',
  'engine',
  'cancelled',
  'internal',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export const apiErrorSchema = z.object({
  code: z.enum(ERROR_CODES),
  /** User-facing: names the file or field at fault. */
  message: z.string(),
  details: z.unknown().optional(),
});
export type ApiError = z.infer<typeof apiErrorSchema>;

export function apiError(code: ErrorCode, message: string, details?: unknown): ApiError {
  return details === undefined ? { code, message } : { code, message, details };
}

export function isApiError(x: unknown): x is ApiError {
  return apiErrorSchema.safeParse(x).success;
}

// ─── Shared shapes ─────────────────────────────────────────────────────────────────────────────

export const posInt = z.number().int().positive();
export const nonNegInt = z.number().int().nonnegative();
/** A run's id: its folder name under workspace/runs. */
export const runIdSchema = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/,
    'must be a folder name: letters, digits, ".", "_" or "-" (no slashes)',
  );
export const presetNameSchema = z.enum(['tiny', 'small', 'gpt1']);
export const tokenizerKindSchema = z.enum(['char', 'bpe']);
export const jobIdSchema = z.string().min(1).max(200);

export const modelOverridesSchema = z
  .object({
    nLayer: posInt,
    nHead: posInt,
    nEmbd: posInt,
    blockSize: posInt,
    dropout: z.number().min(0).lt(1),
    /** 'gpt1': post-LayerNorm, no final LayerNorm; 'gpt2' (the default): pre-LayerNorm and ln_f. */
    layout: z.enum(['gpt1', 'gpt2']),
  })
  .partial()
  .strict();

export const trainConfigSchema = z
  .object({
    batchSize: posInt,
    gradAccum: posInt,
    steps: posInt,
    lr: z.number().positive(),
    minLr: z.number().nonnegative(),
    warmup: nonNegInt,
    weightDecay: z.number().nonnegative(),
    beta1: z.number().min(0).lt(1),
    beta2: z.number().min(0).lt(1),
    gradClip: z.number().nonnegative(),
    evalEvery: nonNegInt,
    evalIters: posInt,
    saveEvery: nonNegInt,
    sampleEvery: nonNegInt,
    sampleTokens: posInt,
    seed: z.number().int(),
    valFraction: z.number().min(0).lt(1),
    workers: posInt.max(MAX_TRAIN_WORKERS),
  })
  .partial()
  .strict();

export const samplingSchema = z
  .object({
    maxNewTokens: posInt.max(100_000),
    temperature: z.number().nonnegative(),
    topK: nonNegInt,
    topP: z.number().gt(0).max(1),
    repetitionPenalty: z.number().positive(),
    stop: z.array(shortString.min(1)).max(16),
    seed: z.number().int(),
    topAlternatives: nonNegInt.max(20),
  })
  .partial()
  .strict();

const backendAttemptSchema = z.object({
  name: z.string(),
  status: z.string(),
  detail: z.string(),
});
export const backendReportSchema = z.object({
  name: z.string(),
  tfBackend: z.string(),
  attempts: z.array(backendAttemptSchema),
  threads: z.number(),
  simd: z.boolean(),
  memoryLimitBytes: z.number(),
  maxTensorBytes: z.number().optional(),
  device: z.string(),
  /** The data-parallel training workers this backend defaults to. */
  trainWorkers: z.number().optional(),
  notes: z.array(z.string()),
  summary: z.string(),
});
export type BackendInfo = z.infer<typeof backendReportSchema>;

export const runStatusSchema = z.enum([
  'running',
  'completed',
  'cancelled',
  'failed',
  /** state.json says running but no job runs it: the process stopped (crash, quit). */
  'interrupted',
]);
export const runSummarySchema = z.object({
  id: z.string(),
  dir: z.string(),
  status: runStatusSchema,
  step: z.number(),
  totalSteps: z.number(),
  trainLoss: z.number().nullable(),
  valLoss: z.number().nullable(),
  bestValLoss: z.number().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
  /** The job training it now, if any. */
  jobId: z.string().optional(),
  error: z.string().optional(),
});
export type RunSummary = z.infer<typeof runSummarySchema>;

export interface RunDetails extends RunSummary {
  train: Record<string, unknown>;
  /** The run's Hugging Face config.json. */
  modelConfig: Record<string, unknown> | null;
  corpus: Array<{ path: string; bytes: number }>;
}

export interface PresetInfo {
  name: z.infer<typeof presetNameSchema>;
  nLayer: number;
  nHead: number;
  nEmbd: number;
  blockSize: number;
  /** Where its LayerNorms sit: 'gpt1' post-LayerNorm (no final one), 'gpt2' pre-LayerNorm. */
  layout: 'gpt1' | 'gpt2';
  description: string;
}

export interface ScoreOutput {
  tokens: number[];
  logprobs: number[];
  sum: number;
  mean: number;
}

export interface GenerationOutput {
  ids: number[];
  text: string;
  stoppedBy: 'length' | 'stop' | 'eos' | 'cancelled';
}

export interface JobRef {
  jobId: string;
}

export const empty = z.object({}).strict();
/** A model: a run id under workspace/runs, or a model directory's absolute path. */
export const modelRef = pathString;

/** Every request: its params schema and (as a phantom) its result type. */
export function req<P extends z.ZodType, R>(params: P): { params: P; result: R } {
  return { params, result: undefined as unknown as R };
}
