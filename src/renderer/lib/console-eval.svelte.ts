/**
 * The console's in-context evaluation run, kept outside the panel so it goes on (and is shown
 * again) when the user switches tabs or pages while it runs: its job's progress, points and result.
 */
import type { IclEvalResult, IclPoint } from '../../common/console';
import { api } from './state.svelte';

export const evalRun = $state({
  jobId: null as string | null,
  /** The model evaluated (a models.list ref). */
  model: '',
  phase: 'idle' as 'idle' | 'running' | 'done' | 'cancelled' | 'failed',
  progress: { done: 0, total: 0, etaMs: 0, k: 0 },
  planned: [] as number[],
  chance: null as number | null,
  points: [] as IclPoint[],
  result: null as IclEvalResult | null,
  error: '',
});

let watching = false;

/** Follows the run's job events (once for the whole renderer). */
export function watchEval(): void {
  if (watching) return;
  watching = true;
  api.on('job.progress', (e) => {
    if (e.jobId !== evalRun.jobId) return;
    const ev = e.event;
    if (ev.type === 'console.eval.start') {
      evalRun.planned = ev.shots;
      evalRun.chance = ev.chance;
      evalRun.progress.total = ev.shots.length * ev.evalSize;
    } else if (ev.type === 'console.eval.progress') {
      evalRun.progress = { done: ev.done, total: ev.total, etaMs: ev.etaMs, k: ev.k };
    } else if (ev.type === 'console.eval.point') {
      const { type: _t, ...point } = ev;
      evalRun.points = [...evalRun.points.filter((p) => p.k !== point.k), point];
    }
  });
  api.on('job.done', (e) => {
    const r = e.result;
    if (e.jobId !== evalRun.jobId || !('type' in r) || r.type !== 'console.eval.result') return;
    evalRun.result = r;
    evalRun.points = r.points;
    evalRun.chance = r.chance;
    evalRun.phase = 'done';
  });
  api.on('job.failed', (e) => {
    if (e.jobId !== evalRun.jobId) return;
    evalRun.phase = e.error.code === 'cancelled' ? 'cancelled' : 'failed';
    if (evalRun.phase === 'failed') evalRun.error = e.error.message;
  });
}

/** Clears the previous run's numbers for a new one on `model`. */
export function resetEval(model: string): void {
  evalRun.jobId = null;
  evalRun.model = model;
  evalRun.phase = 'idle';
  evalRun.progress = { done: 0, total: 0, etaMs: 0, k: 0 };
  evalRun.planned = [];
  evalRun.chance = null;
  evalRun.points = [];
  evalRun.result = null;
  evalRun.error = '';
}
