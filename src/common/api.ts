/**
 * The one typed contract shared by every side (renderer, Electron main/preload, the browser-mode
 * server and the engine host): the request table (invoke → result or a typed error) and its
 * validation. The core requests live here; each feature's are in its own file (pretrain,
 * datasets, finetune, console, checkpoints, settings), the events and wire messages in
 * messages.ts, job kinds in jobs.ts. Pure: no Node APIs.
 *
 * Request names are `<collection or feature>.<verb>`: plural for collections (`runs.get`,
 * `models.estimate`, `tokenizers.train`, `uploads.begin`, `jobs.cancel`), the feature's name for
 * a feature's own work (`pretrain.start`, `console.generate`, `finetune.preview`), singular only
 * for the one app and its one backend (`app.info`, `backend.report`).
 */
import { z } from 'zod';
import { checkpointRequests } from './checkpoints';
import { consoleRequests } from './console';
import { datasetRequests } from './datasets';
import { finetuneRequests } from './finetune';
import { hubRequests } from './hub';
import type { JobKind } from './jobs';
import { pretrainRequests } from './pretrain';
import { settingsRequests } from './settings';
import {
  apiError,
  empty,
  jobIdSchema,
  modelRef,
  req,
  type ApiError,
  type BackendInfo,
} from './schema';

export * from './schema';
export * from './limits';
export * from './jobs';
export * from './messages';

/**
 * Where a model came from: a pretraining run, a fine-tune, an import, the app's bundled sample,
 * or the shared Hugging Face cache (pulled, or downloaded by Python's transformers).
 */
export type ModelSource = 'run' | 'finetune' | 'imported' | 'sample' | 'hub';
/** What a model is, as the Runs page shows it (the bundled sample is a pretrained model). */
export type ModelKind = 'pretrained' | 'fine-tuned' | 'imported';

/** A model the console and the wizards can use (a Hugging Face GPT-2 directory). */
export interface ModelInfo {
  /** What requests take as `model`: the directory's absolute path. */
  ref: string;
  name: string;
  source: ModelSource;
  kind: ModelKind;
  params: number;
  vocabSize: number;
  blockSize: number;
  nLayer: number;
  nHead: number;
  nEmbd: number;
  /** Where its LayerNorms sit: 'gpt1' post-LayerNorm (no final one), 'gpt2' pre-LayerNorm. */
  layout?: 'gpt1' | 'gpt2';
  /** Set to 'mlm' for a masked-LM (BERT-style) model; absent for a causal LM. */
  objective?: 'mlm';
  /** 'char', 'bpe' (byte-level, GPT-2 compatible) or 'unknown'. */
  tokenizer: string;
  /** Set when config.json has a fine-tuned head (`gpt_studio.task`, `id2label`). */
  classifier?: { task: string; labels: string[] };
  updatedAt: string;
}

/** A job the engine host runs now (`jobs.list`). */
export interface RunningJob {
  jobId: string;
  kind: JobKind;
  runId?: string;
  subject?: string;
}

// ─── Requests ──────────────────────────────────────────────────────────────────────────────────

const uploadId = z.string().regex(/^[a-z0-9-]{8,64}$/, 'must be an upload id');
const uploadBeginSchema = z
  .object({
    /** The file's own name (no folders): kept so the engine sees its extension. */
    name: z
      .string()
      .min(1)
      .max(255)
      .refine((n) => !/[\\/\0]/.test(n) && n !== '.' && n !== '..', 'must be a file name'),
    size: z.number().int().nonnegative(),
  })
  .strict();
const uploadChunkSchema = z
  .object({
    uploadId,
    offset: z.number().int().nonnegative(),
    /** base64, at most 1 MiB decoded. */
    data: z.string().max(1_400_000),
  })
  .strict();
const uploadRefSchema = z.object({ uploadId }).strict();
const modelDeleteSchema = z.object({ model: modelRef }).strict();

export const requests = {
  /** The app's version, the workspace, the bundled resources folder and the engine's backend. */
  'app.info': req<
    typeof empty,
    {
      version: string;
      workspace: string;
      /** Bundled samples/ and models/. */
      resources: string;
      backend: BackendInfo | null;
      pid: number;
      /** What the engine's backend holds now: a load that leaks shows here. */
      memory: { tensors: number; bytes: number };
    }
  >(empty),
  /**
   * Browser mode's way to hand the engine a local file (Electron passes paths directly): the file
   * is streamed in ≤ 1 MiB chunks, in order, to workspace/uploads/<id>/<name>.
   */
  'uploads.begin': req<typeof uploadBeginSchema, { uploadId: string }>(uploadBeginSchema),
  'uploads.chunk': req<typeof uploadChunkSchema, { received: number }>(uploadChunkSchema),
  /** Completes an upload; the result is the file's absolute path for other requests. */
  'uploads.end': req<typeof uploadRefSchema, { path: string }>(uploadRefSchema),
  'uploads.abort': req<typeof uploadRefSchema, { aborted: true }>(uploadRefSchema),
  /** The backend report alone (what runs the math, and why better ones are unavailable). */
  'backend.report': req<typeof empty, BackendInfo | null>(empty),
  /** Every usable model: runs, fine-tunes, imported and bundled ones (newest first). */
  'models.list': req<typeof empty, ModelInfo[]>(empty),
  /**
   * Deletes a model the app made or imported: a folder directly under the workspace's runs/,
   * finetunes/ or models/ (nothing else, whatever the path access); `busy` while a job uses it.
   */
  'models.delete': req<typeof modelDeleteSchema, { deleted: true }>(modelDeleteSchema),
  /** Asks a job to stop: training saves a checkpoint and ends with job.done (stopped: cancelled). */
  'jobs.cancel': req<z.ZodObject<{ jobId: typeof jobIdSchema }>, { cancelled: true }>(
    z.object({ jobId: jobIdSchema }).strict(),
  ),
  /** The jobs running now: a page that reconnects learns what still runs (and what ended). */
  'jobs.list': req<typeof empty, RunningJob[]>(empty),
  ...pretrainRequests,
  ...datasetRequests,
  ...finetuneRequests,
  ...consoleRequests,
  ...checkpointRequests,
  ...hubRequests,
  ...settingsRequests,
};

export type Requests = typeof requests;
export type RequestName = keyof Requests;
/** What a caller passes (defaults optional). */
export type Params<K extends RequestName> = z.input<Requests[K]['params']>;
/** What a handler receives (defaults filled in). */
export type ParsedParams<K extends RequestName> = z.output<Requests[K]['params']>;
export type Result<K extends RequestName> = Requests[K]['result'];
/** One signature for every transport (preload bridge, WebSocket, tests). */
export type Invoke = <K extends RequestName>(name: K, params: Params<K>) => Promise<Result<K>>;

export const REQUEST_NAMES = Object.keys(requests) as RequestName[];

export function isRequestName(name: unknown): name is RequestName {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(requests, name);
}

/** "train.steps: Too small: expected number to be >0" — the field first, then what is wrong. */
export function describeIssues(issues: readonly z.core.$ZodIssue[], prefix = ''): string {
  return issues
    .slice(0, 3)
    .map((i) => {
      const field = [prefix, ...i.path.map(String)].filter((s) => s !== '').join('.');
      let msg = i.message;
      if (i.code === 'unrecognized_keys') msg = `unknown field(s) ${i.keys.join(', ')}`;
      if (i.code === 'invalid_union') {
        // a union of shapes: report the branch that came closest (fewest issues)
        const best = [...i.errors].sort((a, b) => a.length - b.length)[0];
        if (best) return describeIssues(best, field);
      }
      return field ? `${field}: ${msg}` : msg;
    })
    .join('; ');
}

/** Validates a request's name and params; the error names the bad field. */
export function parseRequest<K extends RequestName>(
  name: K,
  params: unknown,
): { ok: true; params: ParsedParams<K> } | { ok: false; error: ApiError };
export function parseRequest(
  name: string,
  params: unknown,
): { ok: true; params: unknown } | { ok: false; error: ApiError };
export function parseRequest(
  name: string,
  params: unknown,
): { ok: true; params: unknown } | { ok: false; error: ApiError } {
  if (!isRequestName(name)) {
    return {
      ok: false,
      error: apiError(
        'bad-request',
        `unknown request "${String(name)}" (known: ${REQUEST_NAMES.join(', ')})`,
      ),
    };
  }
  const r = requests[name].params.safeParse(params ?? {});
  if (r.success) return { ok: true, params: r.data };
  return {
    ok: false,
    error: apiError('bad-request', `${name}: ${describeIssues(r.error.issues, 'params')}`, {
      issues: r.error.issues.map((i) => ({ path: i.path.map(String), message: i.message })),
    }),
  };
}
