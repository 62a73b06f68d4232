/**
 * The shell's live state, fed by the engine: its info and backend, the runs, and the running job
 * (from job.* events). One connection for the whole renderer.
 */
import type { ApiEvent, BackendInfo, JobKind, RunningJob, RunSummary } from '../../common/api';
import { jobEnd, type JobEnd } from '../../common/jobState';
import { connect, type ConnectionState } from './api';

export interface JobState {
  jobId: string;
  kind: JobKind;
  runId?: string;
  /** What a job that writes no run works on (a model, a dataset). */
  subject?: string;
  step: number;
  totalSteps: number;
  trainLoss: number | null;
  memoryMB: number | null;
  /** Under way, or how it ended (the one vocabulary: common/jobState.ts). */
  phase: 'starting' | 'running' | JobEnd;
}

/** Whether the job is still under way. */
export const jobGoing = (j: JobState | null): boolean =>
  !!j && (j.phase === 'starting' || j.phase === 'running');

export const connection = connect();
export const api = connection.client;

export const app = $state({
  connection: 'connecting' as ConnectionState,
  version: '',
  workspace: '',
  backend: null as BackendInfo | null,
  runs: null as RunSummary[] | null,
  runsError: '',
  job: null as JobState | null,
  /** Whether the jobs shown are known true: false while disconnected, until jobs.list answers. */
  jobsKnown: false,
});

/**
 * Whether a job's state is known, so its controls (pause, stop, cancel) can act. While the page
 * is not connected to the engine, the job may have ended (or the server restarted): its state is
 * unknown and its controls are disabled until the reconnect has asked what still runs.
 */
export const jobStateKnown = (): boolean => app.connection === 'open' && app.jobsKnown;

type Resync = (running: RunningJob[]) => void | Promise<void>;
const resyncs: Resync[] = [];

/** Calls `fn` with the jobs running now after each (re)connect, before job controls act again. */
export function onJobsResync(fn: Resync): void {
  resyncs.push(fn);
}

/** After a (re)connect: what runs now, so nothing shows a job that ended while the page was away. */
async function resyncJobs(): Promise<void> {
  try {
    const running = await api.invoke('jobs.list', {});
    const job = app.job;
    if (job && jobGoing(job) && !running.some((j) => j.jobId === job.jobId)) app.job = null;
    await Promise.all(resyncs.map((fn) => fn(running)));
  } catch {
    // the connection closed again: the next open asks again
    if (app.connection !== 'open') return;
  }
  app.jobsKnown = true;
}

export async function refreshRuns(): Promise<void> {
  try {
    const runs = await api.invoke('runs.list', {});
    app.runs = runs;
    app.runsError = '';
    // a job already running when the page opened (no job.started seen)
    const running = runs.find((r) => r.status === 'running' && r.jobId);
    if (running && !app.job) {
      app.job = {
        jobId: running.jobId!,
        kind: 'pretrain',
        runId: running.id,
        step: running.step,
        totalSteps: running.totalSteps,
        trainLoss: running.trainLoss,
        memoryMB: null,
        phase: 'running',
      };
    }
  } catch (err) {
    app.runsError = (err as Error).message;
  }
}

async function refreshInfo(): Promise<void> {
  try {
    const info = await api.invoke('app.info', {});
    app.version = info.version;
    app.workspace = info.workspace;
    app.backend = info.backend ?? (await api.invoke('backend.report', {}));
  } catch {
    // shown as "starting…" until the next connection
  }
}

const isSideJob = (k: JobKind) => k === 'dataset.import' || k === 'tokenizer.train';
const isTraining = (j: JobState | null) =>
  !!j && (j.kind === 'pretrain' || j.kind === 'resume') && jobGoing(j);

function onEvent(e: ApiEvent): void {
  switch (e.type) {
    case 'job.started':
      // a generation or a scoring request does not hide a job with progress from the status bar
      if ((e.kind === 'generate' || e.kind === 'score') && app.job?.phase === 'running') return;
      // a side job (an import, a tokenizer) does not hide a training run from the status bar
      if (isSideJob(e.kind) && isTraining(app.job)) return;
      app.job = {
        jobId: e.jobId,
        kind: e.kind,
        ...(e.runId ? { runId: e.runId } : {}),
        ...(e.subject ? { subject: e.subject } : {}),
        step: 0,
        totalSteps: 0,
        trainLoss: null,
        memoryMB: null,
        phase: 'starting',
      };
      // a scoring request writes no run
      if (e.kind !== 'score') void refreshRuns();
      return;
    case 'job.progress': {
      const job = app.job;
      if (!job || job.jobId !== e.jobId) return;
      const ev = e.event;
      if (ev.type === 'start' || ev.type === 'step' || ev.type === 'finetune.step') {
        Object.assign(job, { step: ev.step, totalSteps: ev.totalSteps, phase: 'running' });
        if (ev.type === 'step')
          Object.assign(job, { trainLoss: ev.trainLoss, memoryMB: ev.memoryMB });
        if (ev.type === 'finetune.step') job.trainLoss = ev.loss;
      } else if (ev.type === 'eval') {
        void refreshRuns();
      }
      return;
    }
    case 'job.done':
    case 'job.failed':
      if (app.job?.jobId === e.jobId) {
        app.job.phase = jobEnd(e);
        if (e.type === 'job.done' && 'step' in e.result) app.job.step = e.result.step;
      }
      if (e.kind !== 'score') void refreshRuns();
      return;
    default:
      return;
  }
}

export function startState(): void {
  api.onAny(onEvent);
  connection.onState((s) => {
    app.connection = s;
    if (s !== 'open') app.jobsKnown = false;
    if (s === 'open') {
      void refreshInfo();
      // the runs after the jobs: a run still running whose job ended is not taken for a live one
      void resyncJobs().then(refreshRuns);
    }
  });
}
