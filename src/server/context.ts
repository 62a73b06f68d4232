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
import type { LoadedModel } from '../engine/checkpoint/modelDir';

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
  /** The id of the job writing this run, if one runs. */
  jobFor(runId: string): string | undefined;
  /** A model reference (absolute dir, or a run id under runs/) → its directory; 404 if none. */
  modelDir(ref: string): Promise<string>;
  /** Loads a model directory; the caller disposes `model`. */
  loadModel(ref: string): Promise<LoadedModel>;
}
