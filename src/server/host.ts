/**
 * The engine host: runs in its own Node process (forked by the server, later by Electron's
 * utilityProcess), so engine work never blocks the server or the UI. It answers the contract's
 * requests, keeps one training job at a time with inference alongside, coalesces progress to
 * ≤ ~10 events/s and turns job.cancel into the engine's AbortSignal.
 *
 * Messages in and out are plain JSON objects: in `{id, type:'invoke', name, params}`; out
 * `{id, type:'result'|'error', …}` and `{type:'event', event}`.
 */
import { promises as fs, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  apiError,
  BACKEND_ABORT_EXIT_CODE,
  CHECKPOINTED_JOB_KINDS,
  coalesce,
  invokeMessageSchema,
  isApiError,
  jsonSafe,
  parseRequest,
  type ApiError,
  type ApiEvent,
  type JobKind,
  type ParsedParams,
  type PresetInfo,
  type ReplyMessage,
  type RequestName,
  type Result,
  type RunDetails,
  type RunSummary,
} from '../common/api';
import type { TrainEvent, TrainResult } from '../common/events';
import { getBackendReport, initBackend, type BackendPreference } from '../engine/backend';
import { BackendAbortError, isBackendAbort } from '../engine/backendAbort';
import {
  HostError,
  type Handlers,
  type HostContext,
  type JobOptions,
  type JobResult,
  type ProgressEvent,
} from './context';
import { checkpointHandlers } from './features/checkpoints';
import { consoleHandlers } from './features/console';
import { datasetHandlers } from './features/datasets';
import { finetuneHandlers } from './features/finetune';
import { defaultModelCacheBytes, ModelCache, type ModelLease } from './modelCache';
import { listModels } from './models';
import { PathGuard, type PathAccess } from './paths';
import { Uploads, type UploadLimits } from './uploads';
import { describeSweep, sweepLeftovers } from '../engine/util/leftovers';
import { exists } from '../engine/util/fs';

export interface HostOptions {
  workspace: string;
  backend: BackendPreference;
  send: (msg: ReplyMessage) => void;
  /** Progress interval (ms) for step events; 100 = ≤ 10/s. */
  progressIntervalMs?: number;
  /** The app's bundled resources (default: the package's resources/ folder). */
  resourcesDir?: string;
  /** Which paths requests may name (default: the workspace and the resources only). */
  paths?: PathAccess;
  uploadLimits?: Partial<UploadLimits>;
  /**
   * Ends the process after a backend abort, so the parent (server.ts HostProcess, Electron's
   * main) starts a fresh host (default `process.exit`; tests pass a spy).
   */
  exit?: (code: number) => void;
  /** Resolves once what `send` was given has left the process (default: a short delay). */
  flush?: () => Promise<void>;
  /**
   * Bytes of loaded models kept for later requests (default: GPT_STUDIO_MODEL_CACHE_MB, else
   * the smaller of 1 GiB and a quarter of the backend's memory).
   */
  modelCacheBytes?: number;
}

export { BACKEND_ABORT_EXIT_CODE };

interface Job {
  id: string;
  kind: JobKind;
  runId?: string;
  controller: AbortController;
  /** Already failed by a backend abort elsewhere: its own end sends nothing. */
  ended?: boolean;
}

export function appVersion(): string {
  // Electron's main passes app.getVersion(); package.json is not beside a bundled host
  if (process.env.GPT_STUDIO_VERSION) return process.env.GPT_STUDIO_VERSION;
  try {
    const pkg = fileURLToPath(new URL('../../package.json', import.meta.url));
    return (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}

export function defaultResourcesDir(): string {
  if (process.env.GPT_STUDIO_RESOURCES) return process.env.GPT_STUDIO_RESOURCES;
  return fileURLToPath(new URL('../../resources', import.meta.url));
}

export class EngineHost {
  private readonly jobs = new Map<string, Job>();
  private training: Job | null = null;
  private nextJob = 1;
  private readonly coalescer;
  private readonly workspace: string;
  private readonly resourcesDir: string;
  private backendReady: Promise<unknown>;
  /** What feature handlers see of the host. */
  readonly context: HostContext;
  private readonly handlers: Handlers;
  private readonly uploads: Uploads;
  readonly paths: PathGuard;
  /** Leftovers of dead processes removed at start (a promise: the sweep runs in the background). */
  readonly swept: Promise<string | null>;
  /** Loaded models shared by the requests that need weights. */
  readonly models: ModelCache;
  /** Set by a backend abort: the host answers nothing more and exits. */
  private restarting: string | null = null;

  constructor(private readonly opts: HostOptions) {
    this.workspace = path.resolve(opts.workspace);
    this.resourcesDir = path.resolve(opts.resourcesDir ?? defaultResourcesDir());
    this.coalescer = coalesce<ProgressEvent>(opts.progressIntervalMs ?? 100);
    this.paths = new PathGuard(
      opts.paths ?? { mode: 'allow-list', allow: [] },
      this.workspace,
      this.resourcesDir,
    );
    this.context = {
      workspace: this.workspace,
      runsDir: this.runsDir,
      resourcesDir: this.resourcesDir,
      emit: (e) => this.emit(e),
      startJob: (kind, options, work) => this.startJob(kind, options, work),
      runJob: (kind, options, work, summary) => this.runJob(kind, options, work, summary),
      jobFor: (runId) => [...this.jobs.values()].find((j) => j.runId === runId)?.id,
      modelDir: (ref) => this.modelDir(ref),
      paths: this.paths,
      releaseUpload: (file) => this.uploads.release(file),
      loadModel: (ref) => this.loadModel(ref),
    };
    this.uploads = new Uploads(path.join(this.workspace, 'uploads'), opts.uploadLimits);
    this.models = new ModelCache({
      load: async (dir) => {
        const { loadModelDir } = await import('../engine/checkpoint/modelDir');
        return loadModelDir(dir);
      },
      budgetBytes: () =>
        opts.modelCacheBytes ?? defaultModelCacheBytes(getBackendReport()?.memoryLimitBytes),
    });
    this.handlers = {
      ...this.coreHandlers(),
      ...datasetHandlers(this.context),
      ...finetuneHandlers(this.context),
      ...consoleHandlers(this.context),
      ...checkpointHandlers(this.context),
    };
    this.swept = this.sweep();
    this.backendReady = initBackend(opts.backend).catch((err: unknown) => {
      this.emit({
        type: 'log',
        level: 'error',
        message: `backend: ${(err as Error).message}`,
      });
    });
  }

  /** Removes what crashed processes left in the workspace, and says so. */
  private async sweep(): Promise<string | null> {
    const removed = await sweepLeftovers([this.workspace]).catch(() => []);
    if (removed.length === 0) return null;
    const message = describeSweep(removed, this.workspace);
    process.stderr.write(`gpt-studio: ${message}\n`);
    this.emit({ type: 'log', level: 'info', message });
    return message;
  }

  get runsDir() {
    return path.join(this.workspace, 'runs');
  }

  /** Handles one incoming message (validated here: it comes from another process). */
  async handle(raw: unknown): Promise<void> {
    const msg = invokeMessageSchema.safeParse(raw);
    if (!msg.success) {
      const id = (raw as { id?: unknown } | null)?.id;
      if (typeof id === 'string' || typeof id === 'number') {
        this.opts.send({
          id,
          type: 'error',
          error: apiError('bad-request', 'malformed message: expected {id, type:"invoke", name}'),
        });
      }
      return;
    }
    const { id, name, params } = msg.data;
    const parsed = parseRequest(name, params);
    if (!parsed.ok) {
      this.opts.send({ id, type: 'error', error: parsed.error });
      return;
    }
    if (this.restarting !== null) {
      // the backend is broken: touch nothing, the process is about to exit
      this.opts.send({ id, type: 'error', error: restartingError(this.restarting) });
      return;
    }
    try {
      const result = await this.dispatch(name as RequestName, parsed.params);
      this.opts.send({ id, type: 'result', result: jsonSafe(result) });
    } catch (err) {
      if (isBackendAbort(err)) {
        this.opts.send({ id, type: 'error', error: backendAbortError(err) });
        this.restartAfterAbort(err, `request "${name}"`);
        return;
      }
      this.opts.send({ id, type: 'error', error: toApiError(err) });
    }
  }

  /**
   * After a backend abort nothing in this process can be trusted (the wasm heap is exhausted or
   * corrupt): fail the jobs still running, say why in a log event, let the messages leave, then
   * exit with BACKEND_ABORT_EXIT_CODE so the parent starts a fresh host. Called once per abort
   * source; only the first does anything.
   */
  private restartAfterAbort(err: unknown, where: string): void {
    if (this.restarting !== null) return;
    const reason = abortReason(err);
    this.restarting = reason;
    // The other jobs are not cancelled (a training run would save a checkpoint read from the
    // broken backend): they end with the process, their last checkpoints untouched. This runs on
    // the next turn, so the failing request's or job's own error goes out first.
    setImmediate(() => {
      for (const j of [...this.jobs.values()]) {
        if (j.ended) continue;
        j.ended = true;
        this.emit({
          type: 'job.failed',
          jobId: j.id,
          kind: j.kind,
          error: bystanderError(j.kind, reason),
        });
      }
      this.emit({
        type: 'log',
        level: 'error',
        message:
          `the compute backend crashed (${reason}) during ${where}; the engine host restarts ` +
          `(exit code ${BACKEND_ABORT_EXIT_CODE}) with a fresh backend`,
      });
      // at most 2 s for the messages to leave: a stuck channel must not keep a broken host up
      let timer: NodeJS.Timeout | undefined;
      const limit = new Promise<void>((r) => (timer = setTimeout(r, 2000)));
      const flush = this.opts.flush?.() ?? new Promise<void>((r) => setTimeout(r, 50));
      void Promise.race([flush.catch(() => undefined), limit]).then(() => {
        clearTimeout(timer);
        (this.opts.exit ?? ((code: number) => process.exit(code)))(BACKEND_ABORT_EXIT_CODE);
      });
    });
  }

  private async dispatch(name: RequestName, p: unknown): Promise<unknown> {
    await this.backendReady;
    await this.swept;
    const handler = this.handlers[name] as ((p: unknown) => unknown) | undefined;
    if (!handler) throw new HostError(apiError('internal', `no handler for request "${name}"`));
    return handler(p);
  }

  /** The core requests; each feature adds its own from ./features. */
  private coreHandlers(): Handlers {
    return {
      'app.info': () => ({
        version: appVersion(),
        workspace: this.workspace,
        resources: this.resourcesDir,
        backend: getBackendReport() ?? null,
        pid: process.pid,
      }),
      'backend.report': () => getBackendReport() ?? null,
      'models.list': () => listModels(this.context),
      'upload.begin': (p) => this.uploads.begin(p.name, p.size),
      'upload.chunk': (p) => this.uploads.chunk(p.uploadId, p.offset, p.data),
      'upload.end': (p) => this.uploads.end(p.uploadId),
      'upload.abort': (p) => this.uploads.abort(p.uploadId),
      'presets.list': () => this.presets(),
      'runs.list': () => this.listRuns(),
      'run.get': (p) => this.getRun(p.id),
      'pretrain.start': (p) => this.startPretrain(p),
      'run.resume': (p) => this.startResume(p),
      'job.cancel': (p) => this.cancel(p.jobId),
      'generate.start': (p) => this.startGenerate(p),
      score: (p) => this.score(p),
    };
  }

  emit(event: ApiEvent) {
    this.opts.send({ type: 'event', event: jsonSafe(event) });
  }

  /** Cancels every job and waits (up to `maxMs`) for them to save and end: the host is closing. */
  async shutdown(maxMs = 8000) {
    for (const j of this.jobs.values()) j.controller.abort();
    const until = Date.now() + maxMs;
    while (this.jobs.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 25));
    // cached models go now; one still leased by a job that outlived maxMs goes when released
    this.models.clear();
  }

  private async presets(): Promise<PresetInfo[]> {
    const { PRESETS } = await import('../engine/model/presets');
    return (Object.keys(PRESETS) as Array<keyof typeof PRESETS>).map((name) => ({
      name,
      ...PRESETS[name],
    }));
  }

  private async readRun(id: string): Promise<RunDetails> {
    const { readState } = await import('../engine/train/pretrain');
    const dir = path.join(this.runsDir, id);
    let s;
    try {
      s = await readState(dir);
    } catch {
      throw new HostError(apiError('not-found', `run "${id}" not found in ${this.runsDir}`));
    }
    const job = [...this.jobs.values()].find((j) => j.runId === id);
    const status =
      s.status === 'running' && !job ? 'interrupted' : job ? 'running' : (s.status as 'completed');
    const modelConfig = await fs
      .readFile(path.join(dir, 'config.json'), 'utf8')
      .then((t) => JSON.parse(t) as Record<string, unknown>)
      .catch(() => null);
    return {
      id,
      dir,
      status,
      step: s.step,
      totalSteps: s.train.steps,
      trainLoss: s.trainLoss,
      valLoss: s.valLoss,
      bestValLoss: s.bestValLoss,
      createdAt: s.createdAt,
      updatedAt: s.updatedAt,
      ...(job ? { jobId: job.id } : {}),
      ...(s.error ? { error: s.error } : {}),
      train: { ...s.train },
      modelConfig,
      corpus: s.corpus,
    };
  }

  private async listRuns(): Promise<RunSummary[]> {
    const names = await fs.readdir(this.runsDir).catch(() => [] as string[]);
    const out: RunSummary[] = [];
    for (const n of names) {
      try {
        const { train: _t, modelConfig: _m, corpus: _c, ...summary } = await this.readRun(n);
        out.push(summary);
      } catch {
        // not a run folder
      }
    }
    return out.sort((a, b) => b.updatedAt.localeCompare(a.updatedAt));
  }

  private async getRun(id: string): Promise<RunDetails> {
    return this.readRun(id);
  }

  private newJob(kind: JobKind, runId?: string): Job {
    const job: Job = {
      id: `job-${process.pid}-${this.nextJob++}`,
      kind,
      ...(runId ? { runId } : {}),
      controller: new AbortController(),
    };
    this.jobs.set(job.id, job);
    return job;
  }

  private claimTraining(kind: JobKind, runId: string | undefined): Job {
    if (this.training) {
      throw new HostError(
        apiError(
          'busy',
          `a training job (${this.training.id}${this.training.runId ? `, run "${this.training.runId}"` : ''}) is running; cancel it or wait for it to finish`,
          { jobId: this.training.id },
        ),
      );
    }
    const job = this.newJob(kind, runId);
    this.training = job;
    return job;
  }

  private async startPretrain(p: ParsedParams<'pretrain.start'>): Promise<{ jobId: string }> {
    const dir = path.join(this.runsDir, p.name);
    if (await exists(path.join(dir, 'state.json'))) {
      throw new HostError(
        apiError('bad-request', `params.name: run "${p.name}" already exists; choose another name`),
      );
    }
    const corpus: string[] = [];
    for (const [i, c] of p.corpus.entries()) {
      corpus.push(await this.paths.existing(c, `params.corpus.${i}`, 'file'));
    }
    const { pretrain } = await import('../engine/train/pretrain');
    return this.startTraining('pretrain', p.name, (onEvent, signal) =>
      pretrain({
        corpus,
        out: dir,
        tokenizer: p.tokenizer,
        ...(p.vocabSize !== undefined ? { vocabSize: p.vocabSize } : {}),
        ...(p.preset ? { preset: p.preset } : {}),
        ...(p.model ? { model: p.model } : {}),
        ...(p.train ? { train: p.train } : {}),
        onEvent,
        signal,
      }),
    );
  }

  private async startResume(p: ParsedParams<'run.resume'>): Promise<{ jobId: string }> {
    const dir = path.join(this.runsDir, p.id);
    if (!(await exists(path.join(dir, 'state.json')))) {
      throw new HostError(apiError('not-found', `params.id: run "${p.id}" not found`));
    }
    const { resume } = await import('../engine/train/pretrain');
    return this.startTraining('resume', p.id, (onEvent, signal) =>
      resume({ run: dir, ...(p.steps !== undefined ? { steps: p.steps } : {}), onEvent, signal }),
    );
  }

  private startTraining(
    kind: JobKind,
    runId: string,
    start: (onEvent: (e: TrainEvent) => void, signal: AbortSignal) => Promise<TrainResult>,
  ): { jobId: string } {
    return this.startJob(kind, { runId, exclusive: true }, (push, signal) => start(push, signal));
  }

  /** Starts a job in the background; its events and end arrive as job events. */
  private startJob(
    kind: JobKind,
    options: JobOptions,
    work: (
      push: (e: ProgressEvent) => void,
      signal: AbortSignal,
      jobId: string,
    ) => Promise<JobResult>,
  ): { jobId: string } {
    const job = options.exclusive
      ? this.claimTraining(kind, options.runId)
      : this.newJob(kind, options.runId);
    const jobId = job.id;
    const push = (e: ProgressEvent) => {
      for (const out of this.coalescer.push(jobId, e)) {
        this.emit({ type: 'job.progress', jobId, event: out });
      }
    };
    // a held step is sent once it is due even if no further event comes for a while
    const timer = setInterval(() => {
      for (const out of this.coalescer.flush(jobId, false)) {
        this.emit({ type: 'job.progress', jobId, event: out });
      }
    }, this.coalescer.intervalMs);
    const finish = () => {
      clearInterval(timer);
      for (const out of this.coalescer.end(jobId)) {
        this.emit({ type: 'job.progress', jobId, event: out });
      }
      this.jobs.delete(jobId);
      if (this.training === job) this.training = null;
    };
    // start on the next turn, so the caller gets {jobId} before the first event
    setImmediate(() => {
      this.emit({
        type: 'job.started',
        jobId,
        kind: job.kind,
        ...(job.runId ? { runId: job.runId } : {}),
        ...(options.subject ? { subject: options.subject } : {}),
      });
      let running: Promise<JobResult>;
      try {
        running = work(push, job.controller.signal, jobId);
      } catch (err) {
        running = Promise.reject(err);
      }
      running.then(
        (result) => {
          finish();
          if (job.ended) return;
          this.emit({ type: 'job.done', jobId, kind: job.kind, result });
        },
        (err: unknown) => {
          finish();
          if (job.ended) return;
          if (isBackendAbort(err)) {
            this.emit({ type: 'job.failed', jobId, kind: job.kind, error: backendAbortError(err) });
            this.restartAfterAbort(err, `a ${job.kind} job`);
            return;
          }
          const error = job.controller.signal.aborted
            ? apiError('cancelled', (err as Error).message)
            : toApiError(err);
          this.emit({ type: 'job.failed', jobId, kind: job.kind, error });
        },
      );
    });
    return { jobId };
  }

  /**
   * A request's work as a job (HostContext.runJob): the request waits for the value while the
   * job's events tell the status bar, and job.cancel stops it with a `cancelled` error.
   */
  private runJob<R>(
    kind: JobKind,
    options: JobOptions,
    work: (signal: AbortSignal, jobId: string) => Promise<R>,
    summary: (value: R) => JobResult,
  ): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.startJob(kind, options, async (_push, signal, jobId) => {
        try {
          const value = await work(signal, jobId);
          resolve(value);
          return summary(value);
        } catch (err) {
          reject(
            signal.aborted && !isBackendAbort(err)
              ? new HostError(apiError('cancelled', `${kind} job ${jobId} was cancelled`))
              : err,
          );
          throw err;
        }
      });
    });
  }

  private cancel(jobId: string): { cancelled: true } {
    const job = this.jobs.get(jobId);
    if (!job) throw new HostError(apiError('not-found', `params.jobId: no running job ${jobId}`));
    job.controller.abort();
    return { cancelled: true };
  }

  private async modelDir(ref: string): Promise<string> {
    const dir = path.normalize(path.isAbsolute(ref) ? ref : path.join(this.runsDir, ref));
    // checked on its real path; the ref as given stays the model's name (history, caches)
    await this.paths.existing(dir, 'params.model', 'dir');
    if (!(await exists(path.join(dir, 'config.json')))) {
      throw new HostError(
        apiError('not-found', `params.model: ${dir} is not a model directory (no config.json)`),
      );
    }
    return dir;
  }

  /** A lease on a model from the cache (HostContext.loadModel): release it, never dispose it. */
  private async loadModel(ref: string): Promise<ModelLease> {
    return this.models.acquire(await this.modelDir(ref));
  }

  private async startGenerate(p: ParsedParams<'generate.start'>): Promise<{ jobId: string }> {
    const { generateTokens } = await import('../engine/generate');
    const loaded = await this.loadModel(p.model);
    const job = this.newJob('generate');
    const jobId = job.id;
    setImmediate(async () => {
      this.emit({ type: 'job.started', jobId, kind: 'generate', subject: path.basename(p.model) });
      try {
        const it = generateTokens(
          loaded.model,
          loaded.tokenizer,
          loaded.tokenizer.encode(p.prompt),
          p.sampling ?? {},
          job.controller.signal,
        );
        for (;;) {
          const r = await it.next();
          if (r.done) {
            this.jobs.delete(jobId);
            if (!job.ended) {
              this.emit({ type: 'job.done', jobId, kind: 'generate', result: r.value });
            }
            break;
          }
          if (job.ended) break;
          this.emit({ type: 'generate.token', jobId, ...r.value });
        }
      } catch (err) {
        this.jobs.delete(jobId);
        if (!job.ended) {
          const abort = isBackendAbort(err);
          this.emit({
            type: 'job.failed',
            jobId,
            kind: 'generate',
            error: abort ? backendAbortError(err) : toApiError(err),
          });
          if (abort) this.restartAfterAbort(err, 'a generate job');
        }
      } finally {
        this.jobs.delete(jobId);
        loaded.release();
      }
    });
    return { jobId };
  }

  /** A `score` job: the request waits for the scores; job.cancel stops it between batches. */
  private async score(p: ParsedParams<'score'>): Promise<Result<'score'>> {
    const dir = await this.modelDir(p.model);
    const { scoreContinuation, scoreText } = await import('../engine/score');
    return this.runJob(
      'score',
      { subject: path.basename(dir) },
      async (signal) => {
        const loaded = await this.models.acquire(dir);
        try {
          signal.throwIfAborted();
          return 'text' in p
            ? await scoreText(loaded.model, loaded.tokenizer, p.text, { signal })
            : await scoreContinuation(loaded.model, loaded.tokenizer, p.prompt, p.continuation, {
                signal,
              });
        } finally {
          loaded.release();
        }
      },
      (r) => ({ type: 'score.result', request: 'score', tokens: r.tokens.length }),
    );
  }
}

/** What a request or job gets when the backend crashed under it. */
function backendAbortError(err: unknown): ApiError {
  return apiError(
    'engine',
    `the compute backend crashed (${abortReason(err)}); the engine is restarting, try again`,
    { backendAbort: true },
  );
}

/** What a job still running gets when the backend crashed under another request or job. */
function bystanderError(kind: JobKind, reason: string): ApiError {
  return apiError(
    'engine',
    `the compute backend crashed (${reason}) under another request; the engine is restarting` +
      (CHECKPOINTED_JOB_KINDS.includes(kind)
        ? '; the run keeps its last checkpoint and can be resumed'
        : ', try again'),
    { backendAbort: true },
  );
}

/** What a request gets while the host is on its way out after a backend abort. */
function restartingError(reason: string): ApiError {
  return apiError(
    'engine',
    `the compute backend crashed (${reason}); the engine is restarting, try again in a moment`,
    { backendAbort: true },
  );
}

/** The backend's own words for an abort ("Aborted()"), short. */
function abortReason(err: unknown): string {
  const raw =
    err instanceof BackendAbortError ? err.raw : String((err as Error)?.message ?? err ?? '');
  return raw.trim().slice(0, 200) || 'aborted';
}

function toApiError(err: unknown): ApiError {
  if (err instanceof HostError) return err.apiError;
  if (isApiError(err)) return err;
  const e = err as Error;
  // the engine's errors are written for users (they name the file or flag at fault)
  return apiError('engine', e?.message ?? String(err));
}

/**
 * Reads `--workspace DIR`, `--backend NAME` (or GPT_STUDIO_WORKSPACE / GPT_STUDIO_BACKEND), and
 * which paths requests may name: `--paths unrestricted` (Electron, whose paths come from native
 * dialogs) or the default allow-list, the workspace plus each `--allow-path DIR`.
 */
export function hostArgs(argv: readonly string[], env: NodeJS.ProcessEnv) {
  const get = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const allow = argv.flatMap((a, i) => (a === '--allow-path' && argv[i + 1] ? [argv[i + 1]!] : []));
  const paths: PathAccess =
    get('--paths') === 'unrestricted' ? { mode: 'unrestricted' } : { mode: 'allow-list', allow };
  return {
    workspace: get('--workspace') ?? env.GPT_STUDIO_WORKSPACE ?? './workspace',
    backend: (get('--backend') ?? env.GPT_STUDIO_BACKEND ?? 'auto') as BackendPreference,
    paths,
  };
}

/** Electron's utilityProcess channel (present only there). */
interface ParentPort {
  on(event: 'message', fn: (e: { data: unknown }) => void): void;
  postMessage(msg: unknown): void;
}

/** The message Electron's main sends before quitting (a fork's channel closing says the same). */
export const SHUTDOWN = 'shutdown';

/**
 * The child-process entry: wires an EngineHost to the fork IPC channel, or to Electron's
 * `process.parentPort` when started by `utilityProcess.fork` (the same messages either way).
 */
export function runHostProcess() {
  const args = hostArgs(process.argv.slice(2), process.env);
  const parentPort = (process as unknown as { parentPort?: ParentPort }).parentPort;
  if (parentPort) {
    const host = new EngineHost({ ...args, send: (msg) => parentPort.postMessage(msg) });
    parentPort.on('message', (e) => {
      // the app is quitting: stop jobs (training saves a checkpoint), then exit
      if ((e.data as { type?: unknown } | null)?.type === SHUTDOWN) {
        void host.shutdown().then(() => process.exit(0));
        return;
      }
      void host.handle(e.data);
    });
    return;
  }
  if (!process.send) throw new Error('the engine host must be started with child_process.fork');
  // messages not yet handed to the channel, so a restart after a backend abort sends them first
  let unsent = 0;
  let drained: Array<() => void> = [];
  const send = (msg: ReplyMessage) => {
    if (!process.connected) return;
    unsent++;
    process.send!(msg, undefined, undefined, () => {
      if (--unsent > 0) return;
      for (const done of drained) done();
      drained = [];
    });
  };
  const flush = () =>
    unsent === 0 ? Promise.resolve() : new Promise<void>((resolve) => drained.push(resolve));
  const host = new EngineHost({ ...args, send, flush });
  process.on('message', (m) => void host.handle(m));
  // Ctrl-C in a terminal reaches the whole process group: the server decides when the host stops
  process.on('SIGINT', () => {});
  // the server closed the channel: stop jobs (training saves a checkpoint), then exit
  process.on('disconnect', () => void host.shutdown().then(() => process.exit(0)));
}
