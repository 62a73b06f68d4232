/**
 * The console's in-context evaluation run, kept outside the panel so it goes on (and is shown
 * again) when the user switches tabs or pages while it runs: its job's progress, points and result.
 */
import type { IclEvalResult, IclPoint, LabeledDatasetInfo } from '../../common/console';
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

/** Stops following the previous run. */
let unfollow = () => {};

/** Follows the run's job (`console.eval.start`'s) until it ends, wherever the user goes. */
export function followEval(jobId: string): void {
  unfollow();
  evalRun.jobId = jobId;
  unfollow = api.followJob(jobId, {
    progress(ev) {
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
    },
    done(r) {
      if (!('type' in r) || r.type !== 'console.eval.result') return;
      evalRun.result = r;
      evalRun.points = r.points;
      evalRun.chance = r.chance;
      evalRun.phase = 'done';
    },
    failed(error) {
      evalRun.phase = error.code === 'cancelled' ? 'cancelled' : 'failed';
      if (evalRun.phase === 'failed') evalRun.error = error.message;
    },
  });
}

/** Clears the previous run's numbers for a new one on `model`. */
export function resetEval(model: string): void {
  unfollow();
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

/**
 * The evaluation's form, kept outside the panel (which is mounted again for each model), so the
 * file read, its columns, the label words and the settings stay when the user switches models.
 */
export const iclForm = $state({
  /** The path `info` was read from: it applies while the panel's path is this one. */
  file: '',
  info: null as LabeledDatasetInfo | null,
  textColumn: '',
  labelColumn: '',
  words: [] as Array<{ label: string; word: string; use: boolean }>,
  format: '{input} => {output}',
  shotsText: 'auto',
  limit: 100,
  seed: 1,
  /** A fine-tuned classifier scored beside the run ('' = none). */
  compare: '',
});
