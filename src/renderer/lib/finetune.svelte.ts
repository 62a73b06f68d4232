/**
 * The fine-tune wizard's state, kept for the whole session (leaving the page loses nothing): the
 * choices of the four steps, the data preview, and the running or finished job, fed by its
 * finetune.* events.
 */
import {
  GPT1_FINETUNE,
  taskFields,
  type AblationResult,
  type ColumnMap,
  type FinetunePreview,
  type FinetuneResult,
  type FinetuneSettings,
  type FinetuneTask,
  type GptBertModel,
  type GptBertResult,
  type TableColumns,
} from '../../common/finetune';
import type { EventOf, ModelInfo } from '../../common/api';
import { finetuneDefaults, type FinetuneDefaults } from '../../common/finetuneAdvice';
import { api, app, onJobsResync } from './state.svelte';

export interface LossPoint {
  step: number;
  loss: number;
  l2: number;
  l1: number;
}

export interface VariantRun {
  variant: string;
  init: 'pretrained' | 'random';
  lambda: number;
  steps: LossPoint[];
  epochs: Array<{ epoch: number; valAccuracy: number; valLoss: number }>;
}

/** What a fine-tune page job is: one fine-tune, GPT-1's ablation, or GPT vs BERT. */
export type FinetuneJobKind = 'finetune' | 'ablation' | 'gpt-bert';

export interface FinetuneJob {
  jobId: string;
  kind: FinetuneJobKind;
  phase: 'running' | 'done' | 'failed' | 'cancelled';
  /** It ended while the page was not connected: how is not known here. */
  lost?: boolean;
  stopping: boolean;
  totalSteps: number;
  step: number;
  epoch: number;
  epochs: number;
  etaMs: number;
  labels: string[];
  /** One entry per variant (a plain fine-tune has one, named ''). */
  runs: VariantRun[];
  /** Index of the ablation variant running, and how many there are. */
  variantIndex: number;
  variantCount: number;
  /** What it ran with, for the results' diagnosis. */
  run: { lr: number; epochs: number; params?: number };
  result: FinetuneResult | null;
  ablation: AblationResult | null;
  /** GPT vs BERT: the model in the works and whether it is pretraining, then the result. */
  gptBertPhase: { model: GptBertModel; phase: 'pretrain' | 'finetune' } | null;
  gptBert: GptBertResult | null;
  error: string;
  log: string[];
}

export type DataSource = { kind: 'sample' } | { kind: 'file'; name: string; path: string };

export const ft = $state({
  step: 1 as 1 | 2 | 3 | 4,
  models: null as ModelInfo[] | null,
  modelsError: '',
  model: '',
  resources: '',
  task: 'classification' as FinetuneTask,
  data: { kind: 'sample' } as DataSource,
  uploading: null as number | null,
  dataError: '',
  table: null as TableColumns | null,
  columns: {} as ColumnMap,
  valMode: 'split' as 'split' | 'file',
  val: null as { name: string; path: string } | null,
  preview: null as FinetunePreview | null,
  previewError: '',
  previewing: false,
  settings: { ...GPT1_FINETUNE } as FinetuneSettings,
  /** Data-parallel training workers; null: the backend's default (the physical cores on wasm/cpu). */
  workers: null as number | null,
  /** GPT vs BERT: pretraining steps of each model. */
  pretrainSteps: 300,
  /** The model whose size last set the learning rate and epochs (sizeRule). */
  ruleModel: '',
  job: null as FinetuneJob | null,
  startError: '',
});

export const SAMPLE_NAME = 'sentiment-imdb.jsonl';
export const SAMPLE_MODEL = 'austen-tiny';

/** The workers a fine-tune runs on: the one chosen, else the backend's default. */
export function trainWorkers(): number {
  return ft.workers ?? app.backend?.trainWorkers ?? 1;
}

/** A number typed into a field, or `fallback` when it is not one. */
export function numberOr(v: string, fallback: number): number {
  const x = Number(v);
  return Number.isFinite(x) ? x : fallback;
}

export function samplePath(): string {
  return ft.resources ? `${ft.resources}/samples/${SAMPLE_NAME}` : '';
}

export function dataPath(): string {
  return ft.data.kind === 'sample' ? samplePath() : ft.data.path;
}

export function dataName(): string {
  return ft.data.kind === 'sample' ? SAMPLE_NAME : ft.data.name;
}

/** The models one can fine-tune (not the fine-tuned classifiers), the bundled sample first. */
export function baseModels(): ModelInfo[] {
  return baseModelsOf(ft.models ?? []);
}

/** The models of `models` that can be trained further (no classifier head), the sample first. */
export function baseModelsOf(models: ModelInfo[]): ModelInfo[] {
  const list = models.filter((m) => !m.classifier);
  return [
    ...list.filter((m) => m.source === 'sample'),
    ...list.filter((m) => m.source !== 'sample'),
  ];
}

export async function loadModels(): Promise<void> {
  try {
    const [models, info] = await Promise.all([
      api.invoke('models.list', {}),
      api.invoke('app.info', {}),
    ]);
    ft.models = models;
    ft.resources = info.resources;
    ft.modelsError = '';
    const bases = baseModels();
    if (!bases.some((m) => m.ref === ft.model)) {
      ft.model = (bases.find((m) => m.name === SAMPLE_MODEL) ?? bases[0])?.ref ?? '';
    }
  } catch (err) {
    ft.modelsError = (err as Error).message;
  }
}

/** The model chosen in step 1. */
export function selectedModel(): ModelInfo | undefined {
  return ft.models?.find((m) => m.ref === ft.model);
}

/** The size rule's learning rate and epochs for the chosen model. */
export function sizeRule(): FinetuneDefaults | null {
  const m = selectedModel();
  return m ? finetuneDefaults(m.params) : null;
}

/** Sets the learning rate and epochs by the chosen model's size, once per model chosen. */
export function applySizeRule(): void {
  const rule = sizeRule();
  if (!rule || ft.ruleModel === ft.model) return;
  ft.settings.lr = rule.lr;
  ft.settings.epochs = rule.epochs;
  ft.ruleModel = ft.model;
}

/** The guessed mapping, restricted to the task's fields. */
export function mappingFor(task: FinetuneTask, guess: ColumnMap): ColumnMap {
  const out: ColumnMap = {};
  for (const f of taskFields(task)) {
    if (f === 'answers') {
      if (guess.answers) out.answers = guess.answers;
      else if (guess.answersColumn) out.answersColumn = guess.answersColumn;
    } else if (guess[f] !== undefined) {
      out[f] = guess[f];
    }
  }
  return out;
}

export async function loadColumns(): Promise<void> {
  const file = dataPath();
  ft.table = null;
  ft.preview = null;
  ft.dataError = '';
  if (!file) return;
  try {
    ft.table = await api.invoke('finetune.columns', { file });
    ft.columns = mappingFor(ft.task, ft.table.guess);
  } catch (err) {
    ft.dataError = (err as Error).message;
  }
}

export function mappingComplete(): boolean {
  return taskFields(ft.task).every((f) =>
    f === 'answers'
      ? Boolean(ft.columns.answers?.length || ft.columns.answersColumn)
      : Boolean(ft.columns[f]),
  );
}

let previewSeq = 0;
export async function refreshPreview(): Promise<void> {
  const data = dataPath();
  if (!ft.model || !data || !mappingComplete()) {
    ft.preview = null;
    return;
  }
  const seq = ++previewSeq;
  ft.previewing = true;
  try {
    const p = await api.invoke('finetune.preview', {
      model: ft.model,
      task: ft.task,
      columns: $state.snapshot(ft.columns),
      data,
      ...(ft.valMode === 'file' && ft.val ? { valData: ft.val.path } : {}),
      valFraction: ft.settings.valFraction,
    });
    if (seq !== previewSeq) return;
    ft.preview = p;
    ft.previewError = '';
  } catch (err) {
    if (seq !== previewSeq) return;
    ft.preview = null;
    ft.previewError = (err as Error).message;
  } finally {
    if (seq === previewSeq) ft.previewing = false;
  }
}

function runSettings(): FinetuneJob['run'] {
  const params = selectedModel()?.params;
  return {
    lr: ft.settings.lr,
    epochs: ft.settings.epochs,
    ...(params !== undefined ? { params } : {}),
  };
}

const VARIANTS: Record<FinetuneJobKind, number> = { finetune: 1, ablation: 4, 'gpt-bert': 2 };
const START_REQUEST = {
  finetune: 'finetune.start',
  ablation: 'finetune.ablation',
  'gpt-bert': 'finetune.gptBert',
} as const;

function newJob(jobId: string, kind: FinetuneJobKind): FinetuneJob {
  return {
    jobId,
    kind,
    phase: 'running',
    stopping: false,
    totalSteps: 0,
    step: 0,
    epoch: 0,
    epochs: ft.settings.epochs,
    etaMs: NaN,
    labels: [],
    runs: [],
    variantIndex: 0,
    variantCount: VARIANTS[kind],
    run: runSettings(),
    result: null,
    ablation: null,
    gptBertPhase: null,
    gptBert: null,
    error: '',
    log: [],
  };
}

/** Whether GPT vs BERT can start from the chosen model: it needs a run's pretraining record. */
export function gptBertPossible(): boolean {
  return selectedModel()?.source === 'run';
}

export async function start(kind: FinetuneJobKind): Promise<void> {
  ft.startError = '';
  try {
    const params = {
      model: ft.model,
      task: ft.task,
      columns: $state.snapshot(ft.columns),
      data: dataPath(),
      ...(ft.valMode === 'file' && ft.val ? { valData: ft.val.path } : {}),
      settings: $state.snapshot(ft.settings),
      workers: trainWorkers(),
    };
    const { jobId } =
      kind === 'gpt-bert'
        ? await api.invoke(START_REQUEST[kind], { ...params, pretrainSteps: ft.pretrainSteps })
        : await api.invoke(START_REQUEST[kind], params);
    follow(jobId, kind);
  } catch (err) {
    ft.startError = (err as Error).message;
  }
}

export async function stop(): Promise<void> {
  const job = ft.job;
  if (!job || job.phase !== 'running') return;
  job.stopping = true;
  await api.invoke('jobs.cancel', { jobId: job.jobId }).catch(() => {});
}

function runFor(job: FinetuneJob, variant: string | undefined): VariantRun {
  const name = variant ?? '';
  let run = job.runs.find((r) => r.variant === name);
  if (!run) {
    run = {
      variant: name,
      init: ft.settings.init,
      lambda: ft.settings.lambda,
      steps: [],
      epochs: [],
    };
    job.runs.push(run);
  }
  return run;
}

/** The job shown, as long as it is `jobId`'s (a newer one replaces it). */
const shown = (jobId: string) => (ft.job?.jobId === jobId ? ft.job : null);

function onProgress(job: FinetuneJob, ev: EventOf<'job.progress'>['event']): void {
  switch (ev.type) {
    case 'finetune.variant': {
      job.variantIndex = ev.index;
      job.variantCount = ev.count;
      const run = runFor(job, ev.variant);
      run.init = ev.init;
      run.lambda = ev.lambda;
      return;
    }
    case 'finetune.start': {
      const run = runFor(job, ev.variant);
      run.init = ev.init;
      run.lambda = ev.lambda;
      job.totalSteps = ev.totalSteps;
      job.epochs = ev.epochs;
      job.labels = ev.labels;
      job.step = 0;
      return;
    }
    case 'finetune.step':
      runFor(job, ev.variant).steps.push({ step: ev.step, loss: ev.loss, l2: ev.l2, l1: ev.l1 });
      job.step = ev.step;
      job.totalSteps = ev.totalSteps;
      job.epoch = ev.epoch;
      job.etaMs = ev.etaMs;
      return;
    case 'finetune.epoch':
      runFor(job, ev.variant).epochs.push({
        epoch: ev.epoch,
        valAccuracy: ev.valAccuracy,
        valLoss: ev.valLoss,
      });
      return;
    case 'gptbert.phase':
      job.variantIndex = ev.index;
      job.variantCount = ev.count;
      job.gptBertPhase = { model: ev.model, phase: ev.phase };
      return;
    case 'gptbert.step':
      job.step = ev.step;
      job.totalSteps = ev.totalSteps;
      job.etaMs = ev.etaMs;
      return;
    case 'log':
      job.log.push(ev.message);
      return;
    default:
      return;
  }
}

let unfollow = () => {};

/** Shows the job `jobId` and follows its events until it ends. */
function follow(jobId: string, kind: FinetuneJobKind): void {
  unfollow();
  ft.job = newJob(jobId, kind);
  unfollow = api.followJob(jobId, {
    progress(ev) {
      const job = shown(jobId);
      if (job) onProgress(job, ev);
    },
    done(r) {
      const job = shown(jobId);
      if (!job || !('type' in r)) return;
      if (r.type === 'finetune.result') {
        job.result = r;
        job.phase = r.outcome === 'cancelled' ? 'cancelled' : 'done';
        void loadModels();
      } else if (r.type === 'ablation.result') {
        job.ablation = r;
        job.phase = 'done';
      } else if (r.type === 'gptbert.result') {
        job.gptBert = r;
        job.phase = 'done';
      }
    },
    failed(error) {
      const job = shown(jobId);
      if (!job) return;
      job.phase = error.code === 'cancelled' ? 'cancelled' : 'failed';
      job.error = error.message;
    },
  });
}

// after a reconnect: the job shown may have ended meanwhile (a restarted server stops it)
onJobsResync((running) => {
  const job = ft.job;
  if (!job || job.phase !== 'running' || running.some((j) => j.jobId === job.jobId)) return;
  unfollow();
  job.phase = 'cancelled';
  job.lost = true;
  void loadModels();
});

/** Loads the model list (the page calls it each time it opens). */
export function initFinetune(): void {
  void loadModels();
}
