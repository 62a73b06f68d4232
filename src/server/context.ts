/**
 * What the engine host offers each feature's request handlers (./features/*): the workspace,
 * events, background jobs with progress and cancel, and model loading. Handlers throw `HostError`
 * (or any Error, reported as an engine error) and never crash the host.
 */
import type {
  ApiError,
  ApiEvent,
  EventOf,
  JobKind,
  JobRef,
  ParsedParams,
  RequestName,
  Result,
} from '../common/api';
import type { WeightsChoice } from '../common/console';
import type { ModelLease } from './modelCache';
import type { PathGuard } from './paths';

export type { ModelLease };

export class HostError extends Error {
  constructor(readonly apiError: ApiError) {
    super(apiError.message);
  }
}

export type Handler<K extends RequestName> = (
  params: ParsedParams<K>,
) => Promise<Result<K>> | Result<K>;
export type Handlers = { [K in RequestName]?: Handler<K> };

export type ProgressEvent = EventOf<'job.progress'>['event'];
export type JobResult = EventOf<'job.done'>['result'];

export interface JobOptions {
  /** The run (or fine-tune) this job writes, shown in the status bar and runs list. */
  runId?: string;
  /** Training-class work: at most one at a time; a second gets a `busy` error. */
  exclusive?: boolean;
  /** What the job works on when it writes no run (a model, a dataset), for the status bar. */
  subject?: string;
  /** The model folders it reads or writes (absolute): models.delete refuses them meanwhile. */
  models?: string[];
}

export interface HostContext {
  /** The workspace's absolute path (datasets/, runs/, finetunes/, models/ live under it). */
  readonly workspace: string;
  readonly runsDir: string;
  /** The app's bundled resources (samples/, models/). */
  readonly resourcesDir: string;
  emit(event: ApiEvent): void;
  /**
   * Starts background work as a job and returns its id at once. `push` sends progress events
   * (`step`, `tokenizer`, `….step`, `….progress` are coalesced to ≤ ~10/s); the work's return value
   * becomes job.done's result, a throw becomes job.failed (code `cancelled` once the signal fired).
   */
  startJob(
    kind: JobKind,
    options: JobOptions,
    work: (
      push: (e: ProgressEvent) => void,
      signal: AbortSignal,
      jobId: string,
    ) => Promise<JobResult>,
  ): JobRef;
  /**
   * Runs a request's work as a job while the request waits for it: job.started (with `subject`) at
   * once, then job.done with `summary(value)` or job.failed, so the status bar shows it and
   * `jobs.cancel` aborts `signal`. Resolves with the work's value (the request's result); once
   * cancelled, rejects with a `cancelled` error.
   */
  runJob<R>(
    kind: JobKind,
    options: JobOptions,
    work: (signal: AbortSignal, jobId: string) => Promise<R>,
    summary: (value: R) => JobResult,
  ): Promise<R>;
  /** The id of the job writing this run, if one runs. */
  jobFor(runId: string): string | undefined;
  /** The id of a running job that reads or writes the model folder `dir`, if one does. */
  jobUsing(dir: string): string | undefined;
  /**
   * Whether a running job was already failed by a backend abort elsewhere: the host is about to
   * exit, so its work should stop touching the backend.
   */
  jobEnded(jobId: string): boolean;
  /**
   * A model reference (absolute dir, or a run id under runs/) → its directory; 404 if none. Its
   * errors name `field` (default 'params.model').
   */
  modelDir(ref: string, field?: string): Promise<string>;
  /** Which paths requests may name: every path from a request goes through it. */
  readonly paths: PathGuard;
  /** Removes an ended upload's copy (a path this host handed out); any other path is left alone. */
  releaseUpload(file: string): Promise<void>;
  /**
   * A model directory, loaded or from the host's cache of loaded models. The model is shared:
   * call `release()` once done with it (in a finally), never `model.dispose()`.
   */
  loadModel(ref: string): Promise<ModelLease>;
  /**
   * Sets how the model's weights are held from now on (console.load: auto, f32, f16 or q8) and
   * loads it so; later loadModel calls on it get it so held.
   */
  loadModelAs(ref: string, weights: WeightsChoice): Promise<ModelLease>;
}
