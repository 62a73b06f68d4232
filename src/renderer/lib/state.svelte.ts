/**
 * The shell's live state, fed by the engine: its info and backend, the runs, and the running job
 * (from job.* events). One connection for the whole renderer.
 */
import type { ApiEvent, BackendInfo, JobKind, RunSummary } from '../../common/api';
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
  phase: 'starting' | 'running' | 'done' | 'failed';
}

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
});

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
  !!j &&
  (j.kind === 'pretrain' || j.kind === 'resume') &&
  j.phase !== 'done' &&
  j.phase !== 'failed';

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
        app.job.phase = e.type === 'job.done' ? 'done' : 'failed';
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
    if (s === 'open') {
      void refreshInfo();
      void refreshRuns();
    }
  });
}
