/**
 * The contract's checkpoints part: export (Hugging Face, GGUF, cluster folder) and import of GPT-2
 * directories. Owned by the checkpoints feature; api.ts spreads these tables in.
 */
import { z } from 'zod';
import { pathString } from './limits';
import { modelRef, req, runIdSchema, type JobRef } from './schema';

export const EXPORT_FORMATS = ['hf', 'gguf', 'cluster'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];
export const EXPORT_DTYPES = ['float32', 'float16'] as const;
export type ExportDtype = (typeof EXPORT_DTYPES)[number];

const exportParamsSchema = z
  .object({
    model: modelRef,
    /** Destination folder (absolute, or relative to the workspace); default workspace/exports/<model>-<format>. */
    out: pathString.optional(),
    format: z.enum(EXPORT_FORMATS).default('hf'),
    dtype: z.enum(EXPORT_DTYPES).default('float32'),
    /** The model's name in the model card / GGUF metadata. */
    name: z.string().min(1).max(200).optional(),
  })
  .strict();
const importParamsSchema = z
  .object({
    /** A local Hugging Face GPT-2 folder. */
    from: pathString,
    /** Folder name under workspace/models (default: the source folder's name). */
    name: runIdSchema.optional(),
    /** An explicit destination instead of workspace/models/<name>. */
    out: pathString.optional(),
  })
  .strict();
const inspectParamsSchema = z.object({ model: modelRef }).strict();

/** Whether a format can be exported, and why not. */
export interface FormatAvailability {
  ok: boolean;
  /** Why not, in English (the engine's words). */
  reason?: string;
  /**
   * Why not, as a code the UI translates: 'char-tokenizer' and 'post-ln' (GGUF: GPT-1's
   * post-LayerNorm layout); 'mlm' (HF and GGUF: a masked-LM); 'no-dataset', 'cluster-post-ln'
   * and 'cluster-mlm' (cluster: its train.py trains GPT-2's pre-LayerNorm causal LM).
   */
  code?: 'char-tokenizer' | 'post-ln' | 'mlm' | 'no-dataset' | 'cluster-post-ln' | 'cluster-mlm';
}

/** What the export dialog needs to know about a model before exporting it. */
export interface CheckpointInfo {
  /** The model folder. */
  dir: string;
  name: string;
  /** 'bpe' (byte-level, GPT-2 compatible), 'char' or 'unknown'. */
  tokenizer: string;
  formats: Record<ExportFormat, FormatAvailability>;
  /** The default destination of each format. */
  suggestedOut: Record<ExportFormat, string>;
}

/** Requests of this feature (name → req(paramsSchema)); see api.ts for the core ones. */
export const checkpointRequests = {
  /** Starts an export job (kind 'export'); progress as checkpoints.progress, result checkpoints.result. */
  'checkpoints.export': req<typeof exportParamsSchema, JobRef>(exportParamsSchema),
  /** Starts an import job (kind 'import') into workspace/models/<name>. */
  'checkpoints.import': req<typeof importParamsSchema, JobRef>(importParamsSchema),
  /** Which formats a model can be exported to, and the default destinations. */
  'checkpoints.inspect': req<typeof inspectParamsSchema, CheckpointInfo>(inspectParamsSchema),
};

/** Job kinds this feature starts. */
export const CHECKPOINT_JOB_KINDS = ['export', 'import'] as const;

/** Progress events of this feature's jobs (each `type` unique across the contract). */
export const checkpointProgressSchema = z.object({
  type: z.literal('checkpoints.progress'),
  phase: z.string(),
  fraction: z.number(),
  message: z.string(),
});

/** Results of this feature's jobs (job.done). */
export const checkpointResultSchema = z.object({
  type: z.literal('checkpoints.result'),
  operation: z.enum(['export', 'import']),
  /** The folder written. */
  out: z.string(),
  /** Its files, relative to `out`. */
  files: z.array(z.string()),
  bytes: z.number(),
  notes: z.array(z.string()),
  format: z.enum(EXPORT_FORMATS).optional(),
  dtype: z.enum(EXPORT_DTYPES).optional(),
  params: z.number().optional(),
  vocabSize: z.number().optional(),
  tokenizer: z.string().optional(),
});
export type CheckpointResult = z.infer<typeof checkpointResultSchema>;
