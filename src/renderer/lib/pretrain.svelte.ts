/**
 * The live view of the pretraining run in progress, kept for the whole renderer: the run goes on
 * (and its curves keep growing) while the user browses other pages. Fed by job events; on
 * reconnect or page load it catches up from the run's logged metrics.
 */
import type { EventOf, ModelInfo, RunSummary } from '../../common/api';
import { jobEnd, type JobEnd } from '../../common/jobState';
import type { TokenizerInfo } from '../../common/datasets';
import {
  MODEL_PRESETS,
  TRAIN_DEFAULTS,
  type ModelChoice,
  type PresetKey,
} from './pretrain-defaults';
import { DEFAULT_BPE_VOCAB } from '../../common/defaults';
import { ZERO_SHOT_DEFAULTS, type ZeroShotPoint } from '../../common/zeroShot';
import { api, onJobsResync } from './state.svelte';

export interface SampleView {
  step: number;
  prompt: string;
  text: string;
}

/** The view before any run, which each new run starts from too. */
function idle() {
  return {
    jobId: null as string | null,
    runId: null as string | null,
    /** Under way, or how it ended, in the one vocabulary (common/jobState.ts). */
    phase: 'idle' as 'idle' | 'starting' | 'running' | JobEnd,
    paused: false,
    error: '',
    step: 0,
    totalSteps: 0,
    params: 0,
    tokensPerSecond: 0,
    etaMs: 0,
    elapsedMs: 0,
    trainLoss: null as number | null,
    valLoss: null as number | null,
    train: [] as Array<[number, number]>,
    val: [] as Array<[number, number]>,
    lr: [] as Array<[number, number]>,
    /** The tracked sets' zero-shot accuracies (common/zeroShot.ts). */
    zeroShot: [] as ZeroShotPoint[],
    samples: [] as SampleView[],
  };
}

export const live = $state(idle());

const TRAINING = new Set(['pretrain', 'resume']);

let unfollow = () => {};

/** Shows the training job `jobId` from its start, and follows its events until it ends. */
function reset(jobId: string, runId: string | null) {
  Object.assign(live, idle(), { jobId, runId, phase: 'starting' });
  unfollow();
  unfollow = api.followJob(jobId, {
    progress: onProgress,
    done(result) {
      live.paused = false;
      live.phase = jobEnd({ type: 'job.done', jobId, kind: 'pretrain', result });
    },
    failed(error) {
      live.paused = false;
      live.phase = jobEnd({ type: 'job.failed', jobId, kind: 'pretrain', error });
      live.error = error.message;
    },
  });
}

/** Loads what the run logged so far (a resumed run, or a page opened mid-run). */
export async function loadHistory(runId: string): Promise<void> {
  try {
    const m = await api.invoke('runs.metrics', { id: runId });
    if (live.runId !== runId) return;
    const after = (xs: Array<[number, number]>) => (xs.length ? xs[0]![0] : Infinity);
    const firstLive = Math.min(after(live.train), after(live.val));
    const old = <T extends { step: number }>(xs: T[]) => xs.filter((x) => x.step < firstLive);
    live.train = [
      ...old(m.steps).map((s) => [s.step, s.trainLoss] as [number, number]),
      ...live.train,
    ];
    live.lr = [...old(m.steps).map((s) => [s.step, s.lr] as [number, number]), ...live.lr];
    live.val = [...old(m.evals).map((e) => [e.step, e.valLoss] as [number, number]), ...live.val];
    live.samples = [...old(m.samples), ...live.samples];
    const logged = old(m.zeroShot ?? []);
    const key = (p: ZeroShotPoint) => `${p.step}\u0000${p.set}`;
    const seen = logged.map(key);
    live.zeroShot = [...logged, ...live.zeroShot.filter((p) => !seen.includes(key(p)))];
    const last = m.steps.at(-1);
    if (last && live.step < last.step) {
      live.step = last.step;
      live.trainLoss = last.trainLoss;
    }
    // a resumed run shows its last measured val loss until the next evaluation
    const lastEval = m.evals.at(-1);
    if (live.valLoss === null && lastEval && Number.isFinite(lastEval.valLoss)) {
      live.valLoss = lastEval.valLoss;
    }
  } catch {
    // no metrics yet
  }
}

/** Attaches to a training job already running (the page was opened or reloaded mid-run). */
export async function attach(jobId: string, runId: string, step: number, total: number) {
  if (live.jobId === jobId) return;
  reset(jobId, runId);
  live.phase = 'running';
  live.step = step;
  live.totalSteps = total;
  await loadHistory(runId);
  const { jobIds } = await api
    .invoke('pretrain.paused', {})
    .catch(() => ({ jobIds: [] as string[] }));
  live.paused = jobIds.includes(jobId);
}

function onProgress(ev: EventOf<'job.progress'>['event']) {
  switch (ev.type) {
    case 'start':
      live.phase = 'running';
      live.step = ev.step;
      live.totalSteps = ev.totalSteps;
      live.params = ev.params;
      return;
    case 'step':
      live.phase = 'running';
      live.step = ev.step;
      live.totalSteps = ev.totalSteps;
      live.trainLoss = ev.trainLoss;
      live.tokensPerSecond = ev.tokensPerSecond;
      live.etaMs = ev.etaMs;
      live.elapsedMs = ev.elapsedMs;
      live.train = [...live.train, [ev.step, ev.trainLoss]];
      live.lr = [...live.lr, [ev.step, ev.lr]];
      return;
    case 'eval':
      live.valLoss = ev.valLoss;
      live.val = [...live.val, [ev.step, ev.valLoss]];
      return;
    case 'sample':
      live.samples = [...live.samples, { step: ev.step, prompt: ev.prompt, text: ev.text }];
      return;
    case 'zeroshot': {
      const { type: _type, ...point } = ev;
      live.zeroShot = [...live.zeroShot, point];
      return;
    }
    case 'pretrain.paused':
      live.paused = ev.paused;
      return;
    default:
      return;
  }
}

// every training job that starts is shown, whoever started it (the wizard, Runs, another window)
api.on('job.started', (e) => {
  if (!TRAINING.has(e.kind)) return;
  reset(e.jobId, e.runId ?? null);
  wizard.monitor = true;
  if (e.kind === 'resume' && e.runId) void loadHistory(e.runId);
});

/** How a run the page lost sight of ended, from what its run recorded. */
function endedAs(status: RunSummary['status'] | undefined): JobEnd {
  if (status === 'completed' || status === 'failed') return status;
  // stopped, or interrupted (the server or the engine went away under it): it can be continued
  return 'stopped';
}

// after a reconnect: the run shown may have ended meanwhile (a restarted server stops it)
onJobsResync(async (running) => {
  const jobId = live.jobId;
  if (!jobId || !(live.phase === 'running' || live.phase === 'starting')) return;
  if (running.some((j) => j.jobId === jobId)) {
    const { jobIds } = await api
      .invoke('pretrain.paused', {})
      .catch(() => ({ jobIds: [] as string[] }));
    if (live.jobId === jobId) live.paused = jobIds.includes(jobId);
    return;
  }
  unfollow();
  const runs = await api.invoke('runs.list', {}).catch(() => [] as RunSummary[]);
  if (live.jobId !== jobId) return;
  const run = runs.find((r) => r.id === live.runId);
  live.paused = false;
  live.phase = endedAs(run?.status);
  if (run && run.step > live.step) live.step = run.step;
});

export async function setPaused(paused: boolean): Promise<void> {
  if (!live.jobId) return;
  const r = await api.invoke('pretrain.pause', { jobId: live.jobId, paused });
  live.paused = r.paused;
}

export async function stop(): Promise<void> {
  if (live.jobId) await api.invoke('jobs.cancel', { jobId: live.jobId });
}

/** The wizard's choices, kept while the user visits other pages. */
export const wizard = $state({
  step: 1,
  datasets: [] as string[],
  tokenizerKind: 'char' as 'char' | 'bpe',
  vocabSize: DEFAULT_BPE_VOCAB,
  tokenizer: null as TokenizerInfo | null,
  preset: 'tiny' as PresetKey | 'custom',
  model: { ...MODEL_PRESETS.tiny, dropout: 0 } as ModelChoice & { dropout: number },
  /**
   * A workspace model to start from (its weights, size and tokenizer), or null for a new model
   * with random weights, shaped by `model` and using `tokenizer`.
   */
  from: null as ModelInfo | null,
  train: { ...TRAIN_DEFAULTS },
  probe: null as { secondsPerStep: number; tokensPerSecond: number; key: string } | null,
  name: '',
  /** Zero-shot tracking (optional): a labelled table, its label words, every N steps. */
  zeroShot: {
    enabled: false,
    file: '',
    words: [] as Array<{ label: string; word: string; use: boolean }>,
    template: '{input} => {output}',
    every: ZERO_SHOT_DEFAULTS.every as number,
    limit: ZERO_SHOT_DEFAULTS.limit as number,
  },
  /** Show the run monitor rather than the wizard. */
  monitor: false,
});

export function resetWizard(): void {
  wizard.step = 1;
  wizard.tokenizer = null;
  wizard.probe = null;
  wizard.name = '';
  wizard.monitor = false;
}
