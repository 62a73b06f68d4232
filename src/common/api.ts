/**
 * The one typed contract shared by every side (renderer, Electron main/preload, the browser-mode
 * server and the engine host): requests (invoke → result or a typed error), events (host → UI) and
 * the schemas that validate both at every process boundary. Pure: no Node APIs.
 */
import { z } from 'zod';
import { LIMITS, pathString, promptString, scoreString } from './limits';
import {
  CHECKPOINT_JOB_KINDS,
  checkpointProgressSchema,
  checkpointRequests,
  checkpointResultSchema,
} from './checkpoints';
import {
  CONSOLE_JOB_KINDS,
  consoleProgressSchema,
  consoleRequests,
  consoleResultSchema,
} from './console';
import {
  DATASET_JOB_KINDS,
  datasetProgressSchema,
  datasetRequests,
  datasetResultSchema,
} from './datasets';
import type { TrainEvent, TrainResult } from './events';
import {
  FINETUNE_JOB_KINDS,
  finetuneProgressSchema,
  finetuneRequests,
  finetuneResultSchema,
} from './finetune';
import {
  apiError,
  apiErrorSchema,
  empty,
  jobIdSchema,
  modelOverridesSchema,
  modelRef,
  posInt,
  presetNameSchema,
  req,
  runIdSchema,
  samplingSchema,
  tokenizerKindSchema,
  trainConfigSchema,
  type ApiError,
  type BackendInfo,
  type JobRef,
  type PresetInfo,
  type RunDetails,
  type RunSummary,
  type ScoreOutput,
} from './schema';

export * from './schema';
export * from './limits';

/** Where a model came from: a pretraining run, a fine-tune, an import, or the app's bundled sample. */
export type ModelSource = 'run' | 'finetune' | 'imported' | 'sample';

/** A model the console and the wizards can use (a Hugging Face GPT-2 directory). */
export interface ModelInfo {
  /** What requests take as `model`: the directory's absolute path. */
  ref: string;
  name: string;
  source: ModelSource;
  params: number;
  vocabSize: number;
  blockSize: number;
  nLayer: number;
  nEmbd: number;
  /** 'char', 'bpe' (byte-level, GPT-2 compatible) or 'unknown'. */
  tokenizer: string;
  /** Set when config.json has a fine-tuned head (`gpt_studio.task`, `id2label`). */
  classifier?: { task: string; labels: string[] };
  updatedAt: string;
}

// ─── Requests ──────────────────────────────────────────────────────────────────────────────────

// The param schemas, named so the request table can refer to their types.
const pretrainParamsSchema = z
  .object({
    corpus: z.array(pathString).min(1).max(1000),
    name: runIdSchema,
    tokenizer: tokenizerKindSchema.default('char'),
    vocabSize: posInt.optional(),
    preset: presetNameSchema.optional(),
    model: modelOverridesSchema.optional(),
    train: trainConfigSchema.optional(),
  })
  .strict();
const resumeParamsSchema = z.object({ id: runIdSchema, steps: posInt.optional() }).strict();
const generateParamsSchema = z
  .object({ model: modelRef, prompt: promptString, sampling: samplingSchema.optional() })
  .strict();
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
const scoreParamsSchema = z.union([
  z.object({ model: modelRef, text: scoreString.min(1) }).strict(),
  z
    .object({ model: modelRef, prompt: scoreString, continuation: scoreString.min(1) })
    .strict()
    .refine(
      (p) => p.prompt.length + p.continuation.length <= LIMITS.scoreChars,
      `prompt and continuation together are at most ${LIMITS.scoreChars.toLocaleString('en-US')} characters`,
    ),
]);

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
    }
  >(empty),
  /**
   * Browser mode's way to hand the engine a local file (Electron passes paths directly): the file
   * is streamed in ≤ 1 MiB chunks, in order, to workspace/uploads/<id>/<name>.
   */
  'upload.begin': req<typeof uploadBeginSchema, { uploadId: string }>(uploadBeginSchema),
  'upload.chunk': req<typeof uploadChunkSchema, { received: number }>(uploadChunkSchema),
  /** Completes an upload; the result is the file's absolute path for other requests. */
  'upload.end': req<typeof uploadRefSchema, { path: string }>(uploadRefSchema),
  'upload.abort': req<typeof uploadRefSchema, { aborted: true }>(uploadRefSchema),
  /** The backend report alone (what runs the math, and why better ones are unavailable). */
  'backend.report': req<typeof empty, BackendInfo | null>(empty),
  /** Every usable model: runs, fine-tunes, imported and bundled ones (newest first). */
  'models.list': req<typeof empty, ModelInfo[]>(empty),
  /** The model size presets. */
  'presets.list': req<typeof empty, PresetInfo[]>(empty),
  /** Runs under workspace/runs, newest first. */
  'runs.list': req<typeof empty, RunSummary[]>(empty),
  /** One run's summary, configs and corpus. */
  'run.get': req<z.ZodObject<{ id: typeof runIdSchema }>, RunDetails>(
    z.object({ id: runIdSchema }).strict(),
  ),
  /** Starts training a new run workspace/runs/<name>; progress arrives as job events. */
  'pretrain.start': req<typeof pretrainParamsSchema, JobRef>(pretrainParamsSchema),
  /** Continues a run from its last checkpoint, optionally to a new total step count. */
  'run.resume': req<typeof resumeParamsSchema, JobRef>(resumeParamsSchema),
  /** Asks a job to stop: training saves a checkpoint and ends with job.done (stopped: cancelled). */
  'job.cancel': req<z.ZodObject<{ jobId: typeof jobIdSchema }>, { cancelled: true }>(
    z.object({ jobId: jobIdSchema }).strict(),
  ),
  /** Starts sampling; tokens stream as generate.token events, then job.done with the result. */
  'generate.start': req<typeof generateParamsSchema, JobRef>(generateParamsSchema),
  /**
   * log P of a text, or of a continuation given a prompt, token by token. Runs as a `score` job
   * (job.started → job.done/failed, subject: the model's name) that `job.cancel` stops; the reply
   * is the scores, or a `cancelled` error.
   */
  score: req<typeof scoreParamsSchema, ScoreOutput>(scoreParamsSchema),
  ...datasetRequests,
  ...finetuneRequests,
  ...consoleRequests,
  ...checkpointRequests,
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

// ─── Events (host → UI) ────────────────────────────────────────────────────────────────────────

const num = z.number();
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
const generationOutputSchema = z.object({
  ids: z.array(num),
  text: z.string(),
  stoppedBy: z.enum(['length', 'stop', 'eos', 'cancelled']),
});
/**
 * job.done of a `score` job (a `score` or `console.score` request): a summary only, the scores
 * themselves are the request's result.
 */
const scoreJobResultSchema = z.object({
  type: z.literal('score.result'),
  request: z.enum(['score', 'console.score']),
  /** Tokens scored. */
  tokens: num,
});
export type ScoreJobResult = z.infer<typeof scoreJobResultSchema>;

// the schemas and the hand-written engine types must agree
const _trainEventCheck: z.ZodType<TrainEvent> = trainEventSchema;
const _trainResultCheck: z.ZodType<Omit<TrainResult, 'trainLoss'> & { trainLoss: number | null }> =
  trainResultSchema;
void _trainEventCheck;
void _trainResultCheck;

export const jobKindSchema = z.enum([
  'pretrain',
  'resume',
  'generate',
  /** A `score` or `console.score` request while it runs (the request answers with the scores). */
  'score',
  ...DATASET_JOB_KINDS,
  ...FINETUNE_JOB_KINDS,
  ...CONSOLE_JOB_KINDS,
  ...CHECKPOINT_JOB_KINDS,
]);
export type JobKind = z.infer<typeof jobKindSchema>;

/** Jobs that write a run or fine-tune with checkpoints: a crash leaves their last one. */
export const CHECKPOINTED_JOB_KINDS: readonly JobKind[] = [
  'pretrain',
  'resume',
  'finetune',
  'ablation',
];

/** The engine host's exit code after a backend abort: "restart me with a fresh backend". */
export const BACKEND_ABORT_EXIT_CODE = 70;

/** What the parent (the server, Electron's main) says when the engine host exits unasked. */
export function hostStoppedMessage(code: number | null, signal: string | null, restart: number) {
  if (code === BACKEND_ABORT_EXIT_CODE) {
    return `the engine host is restarting with a fresh compute backend after it crashed (restart ${restart})`;
  }
  const how = signal ? `signal ${signal}` : `exit code ${code}`;
  return `the engine host stopped (${how}); restarting it (restart ${restart})`;
}

/** What a job is told when the engine host dies under it. */
export function crashMessage(kind: JobKind): string {
  return CHECKPOINTED_JOB_KINDS.includes(kind)
    ? 'the engine host crashed; the run keeps its last checkpoint and can be resumed'
    : `the engine host crashed while this ${kind} job ran; nothing was saved by it, try again`;
}

/**
 * JSON has no NaN/Infinity (a step's loss can be NaN just before the engine stops the run):
 * such numbers travel as null.
 */
export const apiEventSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('job.started'),
    jobId: z.string(),
    kind: jobKindSchema,
    /** The run being trained (pretrain/resume). */
    runId: z.string().optional(),
    /** What another job works on (a model, a dataset), in a few words for the status bar. */
    subject: z.string().optional(),
  }),
  /** An engine TrainEvent of a training job (step events coalesced to ≤ ~10/s). */
  z.object({
    type: z.literal('job.progress'),
    jobId: z.string(),
    event: z.union([
      trainEventSchema,
      datasetProgressSchema,
      finetuneProgressSchema,
      consoleProgressSchema,
      checkpointProgressSchema,
    ]),
  }),
  z.object({
    type: z.literal('job.done'),
    jobId: z.string(),
    kind: jobKindSchema,
    result: z.union([
      trainResultSchema,
      generationOutputSchema,
      scoreJobResultSchema,
      datasetResultSchema,
      finetuneResultSchema,
      consoleResultSchema,
      checkpointResultSchema,
    ]),
  }),
  z.object({
    type: z.literal('job.failed'),
    jobId: z.string(),
    kind: jobKindSchema,
    error: apiErrorSchema,
  }),
  z.object({
    type: z.literal('generate.token'),
    jobId: z.string(),
    id: num,
    text: z.string(),
    logprob: num.nullable(),
    alternatives: z.array(z.object({ id: num, logprob: num.nullable() })).optional(),
  }),
  z.object({
    type: z.literal('log'),
    level: z.enum(['info', 'warn', 'error']),
    message: z.string(),
  }),
]);
export type ApiEvent = z.infer<typeof apiEventSchema>;
export type ApiEventType = ApiEvent['type'];
export type EventOf<T extends ApiEventType> = Extract<ApiEvent, { type: T }>;

// ─── Wire messages (client ⇄ server, server ⇄ host: the same shapes) ───────────────────────────

export const invokeMessageSchema = z.object({
  id: z.union([z.string(), z.number()]),
  type: z.literal('invoke'),
  name: z.string(),
  params: z.unknown().optional(),
});
export type InvokeMessage = z.infer<typeof invokeMessageSchema>;

export const replyMessageSchema = z.discriminatedUnion('type', [
  z.object({
    id: z.union([z.string(), z.number()]),
    type: z.literal('result'),
    result: z.unknown(),
  }),
  z.object({
    id: z.union([z.string(), z.number()]),
    type: z.literal('error'),
    error: apiErrorSchema,
  }),
  z.object({ type: z.literal('event'), event: apiEventSchema }),
]);
export type ReplyMessage = z.infer<typeof replyMessageSchema>;

// ─── Progress coalescing ───────────────────────────────────────────────────────────────────────

/**
 * Event types that may be dropped when they come faster than the interval (the latest wins):
 * `step`, `tokenizer`, and any feature event named `….step` or `….progress`.
 */
export function isCoalesced(type: string): boolean {
  return type === 'step' || type === 'tokenizer' || /\.(step|progress)$/.test(type);
}

/**
 * Keeps at most one `step` (and one `tokenizer`) event per job per interval; every other event
 * (start, eval, sample, checkpoint, log) passes at once. A dropped step is not lost for good: the
 * latest one is held and sent before the job's next pass-through event, or by `flush` when the job
 * ends, so the UI always sees the final step. Driven by an injected clock, so it is testable.
 */
export class Coalescer<E extends { type: string } = TrainEvent> {
  private readonly last = new Map<string, number>();
  private readonly pending = new Map<string, E>();

  constructor(
    readonly intervalMs: number,
    private readonly now: () => number,
  ) {}

  /** The events to send now, in order. */
  push(jobId: string, event: E): E[] {
    if (!isCoalesced(event.type)) return [...this.take(jobId), event];
    const key = `${jobId}\u0000${event.type}`;
    const t = this.now();
    const prev = this.last.get(key);
    if (prev !== undefined && t - prev < this.intervalMs) {
      this.pending.set(key, event);
      return [];
    }
    this.last.set(key, t);
    this.pending.delete(key);
    return [event];
  }

  /** Held events of a job that are now due (call from a timer), or all of them with `all`. */
  flush(jobId: string, all = true): E[] {
    return this.take(jobId, all);
  }

  /** Forgets a finished job; returns what it still held. */
  end(jobId: string): E[] {
    const out = this.take(jobId);
    for (const k of [...this.last.keys()]) if (k.startsWith(`${jobId}\u0000`)) this.last.delete(k);
    return out;
  }

  private take(jobId: string, all = true): E[] {
    const out: E[] = [];
    const t = this.now();
    for (const [k, e] of [...this.pending]) {
      if (!k.startsWith(`${jobId}\u0000`)) continue;
      if (!all && t - (this.last.get(k) ?? -Infinity) < this.intervalMs) continue;
      this.pending.delete(k);
      this.last.set(k, t);
      out.push(e);
    }
    return out;
  }
}

/** A coalescer keeping at most ~1000/intervalMs step events per second per job. */
export function coalesce<E extends { type: string } = TrainEvent>(
  intervalMs = 100,
  now: () => number = () => Date.now(),
): Coalescer<E> {
  return new Coalescer<E>(intervalMs, now);
}

/** Replaces non-finite numbers with null, recursively, so a value survives JSON unchanged. */
export function jsonSafe<T>(value: T): T {
  if (typeof value === 'number') return (Number.isFinite(value) ? value : null) as T;
  if (Array.isArray(value)) return value.map(jsonSafe) as T;
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = jsonSafe(v);
    return out as T;
  }
  return value;
}
