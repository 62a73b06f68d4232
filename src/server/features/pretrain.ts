/**
 * The engine host's handlers for the pretrain feature (src/common/pretrain.ts): the wizard's model
 * step (presets, the estimate, a timed probe), training runs on library datasets with a trained
 * tokenizer (started or continued, pausable between steps), and run management under
 * workspace/runs (list, details, metrics, sizes, delete).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import {
  apiError,
  type ParsedParams,
  type PresetInfo,
  type RunDetails,
  type RunSummary,
} from '../../common/api';
import type { GPTConfig } from '../../engine/model/config';
import { PauseGate } from '../../engine/train/pause';
import { exists } from '../../engine/util/fs';
import {
  HostError,
  type Handlers,
  type HostContext,
  type JobResult,
  type ProgressEvent,
} from '../context';
import { estimateModel, probeModel, runMetrics, runsInfo } from './runs';
import { datasetLibrary } from './datasets';

/** What a model to start from fixes, besides its tokenizer: a run from it cannot set them. */
const FIXED_BY_MODEL = ['nLayer', 'nHead', 'nEmbd', 'blockSize', 'layout'] as const;

const badRequest = (message: string) => new HostError(apiError('bad-request', message));

export function pretrainHandlers(ctx: HostContext): Handlers {
  const { dataset, tokenizer, shardsOf } = datasetLibrary(ctx);
  /** Pause gates of the training jobs this feature started, by job id. */
  const gates = new Map<string, PauseGate>();

  const notFound = (id: string) =>
    new HostError(apiError('not-found', `params.id: run "${id}" not found`));
  /** A run's folder, which must hold a run (state.json). */
  const runDir = async (id: string) => {
    const dir = path.join(ctx.runsDir, id);
    if (!(await exists(path.join(dir, 'state.json')))) throw notFound(id);
    return dir;
  };

  /** A training job with a pause gate of its own; `reads`: other model folders it reads. */
  const pausable = (
    kind: 'pretrain' | 'resume',
    runId: string,
    train: (
      pause: PauseGate,
      onEvent: (e: ProgressEvent) => void,
      signal: AbortSignal,
    ) => Promise<JobResult>,
    reads: string[] = [],
  ) =>
    ctx.startJob(
      kind,
      { runId, exclusive: true, models: [path.join(ctx.runsDir, runId), ...reads] },
      (push, signal, jobId) => {
        const gate = new PauseGate();
        gates.set(jobId, gate);
        return train(gate, push, signal).finally(() => gates.delete(jobId));
      },
    );

  const start = async (p: ParsedParams<'pretrain.start'>) => {
    const dir = path.join(ctx.runsDir, p.name);
    if (await exists(path.join(dir, 'state.json'))) {
      throw new HostError(
        apiError('bad-request', `params.name: run "${p.name}" already exists; choose another name`),
      );
    }
    const corpus = await shardsOf(p.datasets);
    // the model card names the user's datasets and files, not the library's text shards
    const datasets = await Promise.all(
      p.datasets.map(async (id) => {
        const m = await dataset(id);
        return { id: m.id, name: m.name, files: m.files.map((f) => f.name) };
      }),
    );
    const from = await startModel(p);
    const tokenizerDir = from?.dir ?? (await tokenizer(p.tokenizer!)).dir;
    const zeroShot = p.zeroShot ? await zeroShotFiles(p.zeroShot) : undefined;
    const { pretrain } = await import('../../engine/train/pretrain');
    return pausable(
      'pretrain',
      p.name,
      (pause, onEvent, signal) =>
        pretrain({
          corpus,
          datasets,
          out: dir,
          tokenizer: { dir: tokenizerDir },
          ...(from ? { from: from.dir } : {}),
          ...(p.preset ? { preset: p.preset } : {}),
          ...(p.model ? { model: p.model } : {}),
          ...(p.train ? { train: p.train } : {}),
          ...(zeroShot ? { zeroShot } : {}),
          onEvent,
          signal,
          pause,
        }),
      from ? [from.dir] : [],
    );
  };

  /**
   * The model folder a run starts from (`params.from`), checked, with its config; null for a new
   * model, which then needs a tokenizer. The model fixes its size, layout and tokenizer, so a
   * request that also sets one of them is refused, naming the field.
   */
  const startModel = async (
    p: Pick<ParsedParams<'pretrain.start'>, 'from' | 'tokenizer' | 'preset' | 'model'>,
  ) => {
    if (p.from === undefined) {
      if (p.tokenizer === undefined) {
        throw badRequest(
          'params.tokenizer: required: a trained tokenizer for a new model, or params.from: a model to start from',
        );
      }
      return null;
    }
    const fixed = FIXED_BY_MODEL.find((k) => p.model?.[k] !== undefined);
    const clash =
      p.tokenizer !== undefined
        ? 'params.tokenizer'
        : p.preset !== undefined
          ? 'params.preset'
          : fixed && `params.model.${fixed}`;
    if (clash) {
      throw badRequest(
        `${clash}: does not apply with params.from: the model ${p.from} fixes its size, layout and tokenizer`,
      );
    }
    const dir = await ctx.modelDir(p.from, 'params.from');
    const { checkModelFiles } = await import('../../engine/checkpoint/source');
    const { readHfConfig } = await import('../../engine/checkpoint/gpt2');
    try {
      await checkModelFiles(dir);
      return { dir, config: await readHfConfig(path.join(dir, 'config.json')) };
    } catch (err) {
      throw badRequest(`params.from: ${(err as Error).message}`);
    }
  };

  /**
   * The zero-shot sets with their files as real paths this host may read, each read once here so
   * that a bad table or label is refused before the job starts, naming the file.
   */
  const zeroShotFiles = async (z: NonNullable<ParsedParams<'pretrain.start'>['zeroShot']>) => {
    const checked = {
      ...z,
      sets: await Promise.all(
        z.sets.map(async (s, i) => ({
          ...s,
          name: s.name ?? path.basename(s.file),
          file: await ctx.paths.existing(s.file, `params.zeroShot.sets.${i}.file`, 'file'),
        })),
      ),
    };
    const { openZeroShot } = await import('../../engine/train/zeroShot');
    try {
      await openZeroShot(checked);
    } catch (err) {
      throw new HostError(apiError('bad-request', `params.zeroShot: ${(err as Error).message}`));
    }
    return checked;
  };

  const resume = async (p: ParsedParams<'pretrain.continue'>) => {
    const dir = await runDir(p.id);
    const { resume } = await import('../../engine/train/pretrain');
    return pausable('resume', p.id, (pause, onEvent, signal) =>
      resume({
        run: dir,
        ...(p.steps !== undefined ? { steps: p.steps } : {}),
        onEvent,
        signal,
        pause,
      }),
    );
  };

  const readRun = async (id: string): Promise<RunDetails> => {
    const { readState } = await import('../../engine/train/pretrain');
    const dir = path.join(ctx.runsDir, id);
    let s;
    try {
      s = await readState(dir);
    } catch {
      throw new HostError(apiError('not-found', `run "${id}" not found in ${ctx.runsDir}`));
    }
    const jobId = ctx.jobFor(id);
    const status =
      s.status === 'running' && !jobId
        ? 'interrupted'
        : jobId
          ? 'running'
          : (s.status as 'completed');
    const modelConfig = await fs
      .readFile(path.join(dir, 'config.json'), 'utf8')
      .then((t) => JSON.parse(t) as Record<string, unknown>)
      .catch(() => null);
    return {
      id,
      dir,
      status,
      step: s.step,
      totalSteps: s.train.steps,
      trainLoss: s.trainLoss,
      valLoss: s.valLoss,
      bestValLoss: s.bestValLoss,
      createdAt: s.createdAt,
      updatedAt: s.updatedAt,
      ...(jobId ? { jobId } : {}),
      ...(s.error ? { error: s.error } : {}),
      train: { ...s.train },
      modelConfig,
      corpus: s.corpus,
    };
  };

  const listRuns = async (): Promise<RunSummary[]> => {
    const names = await fs.readdir(ctx.runsDir).catch(() => [] as string[]);
    const out: RunSummary[] = [];
    for (const n of names) {
      try {
        const { train: _t, modelConfig: _m, corpus: _c, ...summary } = await readRun(n);
        out.push(summary);
      } catch {
        // not a run folder
      }
    }
    return out.sort((a, b) => b.updatedAt.localeCompare(a.updatedAt));
  };

  return {
    'models.presets': async (): Promise<PresetInfo[]> => {
      const { PRESETS } = await import('../../engine/model/presets');
      return (Object.keys(PRESETS) as Array<keyof typeof PRESETS>).map((name) => ({
        name,
        ...PRESETS[name],
      }));
    },
    'models.estimate': (p) => estimateModel(p),
    'models.probe': async (p) => {
      const shards = await shardsOf(p.datasets);
      const from = await startModel(p);
      const tokenizerDir = from?.dir ?? (await tokenizer(p.tokenizer!)).dir;
      // a model to start from is timed at its own shape (the steps' time does not need its weights)
      const model = from ? { ...p.model, ...shapeOf(from.config) } : p.model;
      return ctx.startJob('model.probe', { exclusive: true }, (push, signal) =>
        probeModel({
          shards,
          tokenizerDir,
          ...(p.preset ? { preset: p.preset } : {}),
          ...(model ? { model } : {}),
          ...(p.train ? { train: p.train } : {}),
          steps: p.steps ?? 4,
          signal,
          onStep: (step, ms) => push({ type: 'probe.step', step, steps: p.steps ?? 4, ms }),
        }),
      );
    },
    'pretrain.start': (p) => start(p),
    'pretrain.continue': (p) => resume(p),
    'pretrain.pause': (p) => {
      const gate = gates.get(p.jobId);
      if (!gate) {
        throw new HostError(
          apiError('not-found', `params.jobId: no pausable training job ${p.jobId}`),
        );
      }
      if (p.paused) gate.pause();
      else gate.resume();
      ctx.emit({
        type: 'job.progress',
        jobId: p.jobId,
        event: { type: 'pretrain.paused', paused: gate.paused },
      });
      return { paused: gate.paused };
    },
    'pretrain.paused': () => ({
      jobIds: [...gates].filter(([, g]) => g.paused).map(([id]) => id),
    }),
    'runs.list': () => listRuns(),
    'runs.get': (p) => readRun(p.id),
    'runs.metrics': async (p) => {
      await runDir(p.id);
      return runMetrics(ctx.runsDir, p.id);
    },
    'runs.info': () => runsInfo(ctx),
    'runs.delete': async (p) => {
      const dir = await runDir(p.id);
      const job = ctx.jobFor(p.id);
      if (job) {
        throw new HostError(
          apiError('busy', `run "${p.id}" is being trained (${job}); stop it before deleting it`, {
            jobId: job,
          }),
        );
      }
      await fs.rm(dir, { recursive: true, force: true });
      return { deleted: true };
    },
  };
}

/** A model config's shape and layout, as the wizard's model fields say them. */
function shapeOf(c: Pick<GPTConfig, (typeof FIXED_BY_MODEL)[number]>) {
  return {
    nLayer: c.nLayer,
    nHead: c.nHead,
    nEmbd: c.nEmbd,
    blockSize: c.blockSize,
    layout: c.layout ?? 'gpt2',
  };
}
