/**
 * The one vocabulary for where a job or a run stands, used by the Pretrain page, the Runs page and
 * the status bar alike (i18n keys `jobState.<word>`): a run the user stopped, saved at its last
 * step, is "stopped" everywhere, whatever the engine wrote ('cancelled' in state.json, a
 * `cancelled` error or a result that says so). Pure.
 */
import type { EventOf } from './messages';
import type { RunSummary } from './schema';

export const JOB_STATES = [
  'starting',
  'running',
  'paused',
  'completed',
  'stopped',
  'failed',
  'interrupted',
] as const;
export type JobStateWord = (typeof JOB_STATES)[number];
/** How a job ended. */
export type JobEnd = Extract<JobStateWord, 'completed' | 'stopped' | 'failed'>;

const RUN_STATUS: Record<RunSummary['status'], JobStateWord> = {
  running: 'running',
  completed: 'completed',
  cancelled: 'stopped',
  failed: 'failed',
  interrupted: 'interrupted',
};

/** A run's recorded status (runs.list, state.json) as the word the user sees. */
export function runState(status: RunSummary['status']): JobStateWord {
  return RUN_STATUS[status];
}

/** A fine-tune's or training's recorded outcome ('cancelled': stopped early, saved). */
export function outcomeState(outcome: 'completed' | 'cancelled'): JobEnd {
  return outcome === 'cancelled' ? 'stopped' : 'completed';
}

/** How a job ended, from its job.done or job.failed event. */
export function jobEnd(e: EventOf<'job.done'> | EventOf<'job.failed'>): JobEnd {
  if (e.type === 'job.failed') return e.error.code === 'cancelled' ? 'stopped' : 'failed';
  const r = e.result as { stopped?: unknown; outcome?: unknown; stoppedBy?: unknown };
  return r.stopped === 'cancelled' || r.outcome === 'cancelled' || r.stoppedBy === 'cancelled'
    ? 'stopped'
    : 'completed';
}
