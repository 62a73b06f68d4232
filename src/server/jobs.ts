/**
 * The engine host's job runner: background work with an id, progress coalesced to ≤ ~10 events/s,
 * cancel through an AbortSignal, at most one training-class job at a time, and job.started /
 * job.done / job.failed around each. What HostContext.startJob and runJob are made of.
 */
import * as path from 'node:path';
import {
  apiError,
  type ApiError,
  type ApiEvent,
  type JobKind,
  type JobRef,
  type RunningJob,
} from '../common/api';
import { isBackendAbort } from '../engine/backendAbort';
import { coalesce, type Coalescer } from './coalescer';
import { HostError, type JobOptions, type JobResult, type ProgressEvent } from './context';
import { backendAbortError, toApiError } from './errors';

interface Job {
  id: string;
  kind: JobKind;
  runId?: string;
  /** What it works on when it writes no run (JobOptions.subject). */
  subject?: string;
  /** The model folders it reads or writes, resolved. */
  models: string[];
  controller: AbortController;
  /** Already failed by a backend abort elsewhere: its own end sends nothing. */
  ended?: boolean;
}

export type JobWork = (
  push: (e: ProgressEvent) => void,
  signal: AbortSignal,
  jobId: string,
) => Promise<JobResult>;

export class JobRunner {
  private readonly jobs = new Map<string, Job>();
  private training: Job | null = null;
  private nextJob = 1;
  private readonly coalescer: Coalescer<ProgressEvent>;

  constructor(
    private readonly emit: (event: ApiEvent) => void,
    /** A job's work hit a backend abort: the host restarts. */
    private readonly onBackendAbort: (err: unknown, where: string) => void,
    progressIntervalMs = 100,
  ) {
    this.coalescer = coalesce<ProgressEvent>(progressIntervalMs);
  }

  /** How many jobs run now. */
  get size() {
    return this.jobs.size;
  }

  /** The jobs running now (those a backend abort already failed are over). */
  list(): RunningJob[] {
    return [...this.jobs.values()]
      .filter((j) => !j.ended)
      .map((j) => ({
        jobId: j.id,
        kind: j.kind,
        ...(j.runId ? { runId: j.runId } : {}),
        ...(j.subject ? { subject: j.subject } : {}),
      }));
  }

  /** The id of the job writing this run, if one runs. */
  jobFor(runId: string): string | undefined {
    return [...this.jobs.values()].find((j) => j.runId === runId)?.id;
  }

  /** The id of a running job that reads or writes the model folder `dir`, if one does. */
  jobUsing(dir: string): string | undefined {
    const want = path.resolve(dir);
    return [...this.jobs.values()].find((j) => j.models.includes(want))?.id;
  }

  /** Whether a job was failed by a backend abort elsewhere (its work should stop). */
  ended(jobId: string): boolean {
    return this.jobs.get(jobId)?.ended === true;
  }

  private newJob(kind: JobKind, runId?: string, models: string[] = []): Job {
    const job: Job = {
      id: `job-${process.pid}-${this.nextJob++}`,
      kind,
      ...(runId ? { runId } : {}),
      models: models.map((m) => path.resolve(m)),
      controller: new AbortController(),
    };
    this.jobs.set(job.id, job);
    return job;
  }

  private claimTraining(kind: JobKind, runId: string | undefined, models?: string[]): Job {
    if (this.training) {
      throw new HostError(
        apiError(
          'busy',
          `a training job (${this.training.id}${this.training.runId ? `, run "${this.training.runId}"` : ''}) is running; cancel it or wait for it to finish`,
          { jobId: this.training.id },
        ),
      );
    }
    const job = this.newJob(kind, runId, models);
    this.training = job;
    return job;
  }

  /** Starts a job in the background; its events and end arrive as job events. */
  start(kind: JobKind, options: JobOptions, work: JobWork): JobRef {
    const job = options.exclusive
      ? this.claimTraining(kind, options.runId, options.models)
      : this.newJob(kind, options.runId, options.models);
    if (options.subject) job.subject = options.subject;
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
            this.onBackendAbort(err, `a ${job.kind} job`);
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
   * job's events tell the status bar, and jobs.cancel stops it with a `cancelled` error.
   */
  run<R>(
    kind: JobKind,
    options: JobOptions,
    work: (signal: AbortSignal, jobId: string) => Promise<R>,
    summary: (value: R) => JobResult,
  ): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.start(kind, options, async (_push, signal, jobId) => {
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

  cancel(jobId: string): { cancelled: true } {
    const job = this.jobs.get(jobId);
    if (!job) throw new HostError(apiError('not-found', `params.jobId: no running job ${jobId}`));
    job.controller.abort();
    return { cancelled: true };
  }

  /**
   * Fails every job still running with `error(kind)`, without cancelling it (after a backend abort
   * a training run must not save a checkpoint read from the broken backend): they end with the
   * process, and their own ends send nothing.
   */
  failAll(error: (kind: JobKind) => ApiError): void {
    for (const j of [...this.jobs.values()]) {
      if (j.ended) continue;
      j.ended = true;
      this.emit({ type: 'job.failed', jobId: j.id, kind: j.kind, error: error(j.kind) });
    }
  }

  /** Cancels every job and waits (up to `maxMs`) for them to save and end. */
  async cancelAll(maxMs: number): Promise<void> {
    for (const j of this.jobs.values()) j.controller.abort();
    const until = Date.now() + maxMs;
    while (this.jobs.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 25));
  }
}
