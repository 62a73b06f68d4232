/**
 * The engine host: runs in its own Node process (forked by the server, or Electron's
 * utilityProcess), so engine work never blocks the server or the UI. This file is its dispatch
 * (each request validated, then handed to its feature's handler in ./features), the job runner
 * behind HostContext (./jobs.ts) and the transport to its parent; a backend abort ends it with
 * BACKEND_ABORT_EXIT_CODE so the parent starts a fresh one.
 *
 * Messages in and out are plain JSON objects: in `{id, type:'invoke', name, params}`; out
 * `{id, type:'result'|'error', …}` and `{type:'event', event}`.
 */
import * as path from 'node:path';
import {
  apiError,
  BACKEND_ABORT_EXIT_CODE,
  invokeMessageSchema,
  jsonSafe,
  parseRequest,
  type ApiEvent,
  type ReplyMessage,
  type RequestName,
} from '../common/api';
import type { WeightsChoice } from '../common/console';
import { SHUTDOWN_MESSAGE } from '../common/hostProcess';
import { getBackendReport, initBackend, type BackendPreference } from '../engine/backend';
import { isBackendAbort } from '../engine/backendAbort';
import { describeSweep, sweepLeftovers } from '../engine/util/leftovers';
import { exists } from '../engine/util/fs';
import { HostError, type Handlers, type HostContext } from './context';
import {
  abortReason,
  backendAbortError,
  bystanderError,
  restartingError,
  toApiError,
} from './errors';
import { appHandlers, defaultResourcesDir } from './features/app';
import { checkpointHandlers } from './features/checkpoints';
import { hubHandlers } from './features/hub';
import { hubCacheDir } from '../engine/hub/cache';
import { consoleHandlers } from './features/console';
import { datasetHandlers } from './features/datasets';
import { finetuneHandlers } from './features/finetune';
import { pretrainHandlers } from './features/pretrain';
import { JobRunner } from './jobs';
import { defaultModelCacheBytes, ModelCache, type ModelLease } from './modelCache';
import { PathGuard, type PathAccess } from './paths';
import { Uploads, type UploadLimits } from './uploads';

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
   * Ends the process after a backend abort, so the parent (the server or Electron's main, through
   * src/common/hostProcess.ts) starts a fresh host (default `process.exit`; tests pass a spy).
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

export class EngineHost {
  private readonly jobs: JobRunner;
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
  /** How the console asked each model's weights to be held (by absolute folder). */
  private readonly weights = new Map<string, WeightsChoice>();
  /** Set by a backend abort: the host answers nothing more and exits. */
  private restarting: string | null = null;

  constructor(private readonly opts: HostOptions) {
    this.workspace = path.resolve(opts.workspace);
    this.resourcesDir = path.resolve(opts.resourcesDir ?? defaultResourcesDir());
    this.jobs = new JobRunner(
      (e) => this.emit(e),
      (err, where) => this.restartAfterAbort(err, where),
      opts.progressIntervalMs ?? 100,
    );
    this.paths = new PathGuard(
      opts.paths ?? { mode: 'allow-list', allow: [] },
      this.workspace,
      this.resourcesDir,
      [hubCacheDir()],
    );
    this.context = {
      workspace: this.workspace,
      runsDir: this.runsDir,
      resourcesDir: this.resourcesDir,
      emit: (e) => this.emit(e),
      startJob: (kind, options, work) => this.jobs.start(kind, options, work),
      runJob: (kind, options, work, summary) => this.jobs.run(kind, options, work, summary),
      jobFor: (runId) => this.jobs.jobFor(runId),
      jobUsing: (dir) => this.jobs.jobUsing(dir),
      jobEnded: (jobId) => this.jobs.ended(jobId),
      modelDir: (ref, field) => this.modelDir(ref, field),
      paths: this.paths,
      releaseUpload: (file) => this.uploads.release(file),
      loadModel: (ref) => this.loadModel(ref),
      loadModelAs: async (ref, weights) => {
        const dir = await this.modelDir(ref);
        this.weights.set(path.resolve(dir), weights);
        return this.models.acquire(dir);
      },
    };
    this.uploads = new Uploads(path.join(this.workspace, 'uploads'), opts.uploadLimits);
    this.models = new ModelCache({
      load: async (dir) => {
        const { loadModelDir } = await import('../engine/checkpoint/modelDir');
        return loadModelDir(dir, { weights: this.weightsOf(dir) });
      },
      variant: (dir) => this.weightsOf(dir),
      budgetBytes: () =>
        opts.modelCacheBytes ?? defaultModelCacheBytes(getBackendReport()?.memoryLimitBytes),
    });
    this.handlers = {
      'jobs.cancel': (p) => this.jobs.cancel(p.jobId),
      'jobs.list': () => this.jobs.list(),
      ...appHandlers(this.context, this.uploads),
      ...pretrainHandlers(this.context),
      ...datasetHandlers(this.context),
      ...finetuneHandlers(this.context),
      ...consoleHandlers(this.context),
      ...checkpointHandlers(this.context),
      ...hubHandlers(this.context),
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
      this.jobs.failAll((kind) => bystanderError(kind, reason));
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

  emit(event: ApiEvent) {
    this.opts.send({ type: 'event', event: jsonSafe(event) });
  }

  /** Cancels every job and waits (up to `maxMs`) for them to save and end: the host is closing. */
  async shutdown(maxMs = 8000) {
    await this.jobs.cancelAll(maxMs);
    // cached models go now; one still leased by a job that outlived maxMs goes when released
    this.models.clear();
    // unfinished uploads are closed and removed rather than left for the next start's sweep
    await this.uploads.closeAll();
  }

  private async modelDir(ref: string, field = 'params.model'): Promise<string> {
    const dir = path.normalize(path.isAbsolute(ref) ? ref : path.join(this.runsDir, ref));
    // checked on its real path; the ref as given stays the model's name (history, caches)
    await this.paths.existing(dir, field, 'dir');
    if (!(await exists(path.join(dir, 'config.json')))) {
      throw new HostError(
        apiError('not-found', `${field}: ${dir} is not a model directory (no config.json)`),
      );
    }
    return dir;
  }

  /** How the console asked a model's weights to be held (console.load); auto until it does. */
  private weightsOf(dir: string): WeightsChoice {
    return this.weights.get(path.resolve(dir)) ?? 'auto';
  }

  /** A lease on a model from the cache (HostContext.loadModel): release it, never dispose it. */
  private async loadModel(ref: string): Promise<ModelLease> {
    return this.models.acquire(await this.modelDir(ref));
  }
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
      if ((e.data as { type?: unknown } | null)?.type === SHUTDOWN_MESSAGE.type) {
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
