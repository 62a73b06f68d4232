/**
 * The wizard's model step (estimate, a measured probe of a few real training steps) and the Runs
 * page's reads (logged metrics; sizes on disk of runs, fine-tunes and imports).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { ModelSource } from '../../common/api';
import type { ModelEstimate, RunInfo, RunMetrics } from '../../common/datasets';
import { folderBytes } from '../../engine/checkpoint/stage';
import type { PresetName } from '../../engine/model/presets';
import type { HostContext } from '../context';
import { modelKind, paramsFromConfig, workspaceModelRoots } from '../models';

type Overrides = Partial<{
  nLayer: number;
  nHead: number;
  nEmbd: number;
  blockSize: number;
  dropout: number;
  layout: 'gpt1' | 'gpt2';
}>;

async function modelConfig(vocabSize: number, preset: PresetName | undefined, o: Overrides = {}) {
  const { presetConfig } = await import('../../engine/model/presets');
  const base = presetConfig(preset ?? 'tiny', vocabSize, o.dropout ?? 0);
  const clean = Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  return { ...base, ...clean, vocabSize };
}

export async function estimateModel(p: {
  vocabSize: number;
  preset?: PresetName;
  model?: Overrides;
  batchSize?: number;
  gradAccum?: number;
  workers?: number;
}): Promise<ModelEstimate> {
  const { estimateTrainingMemory, checkMemory } = await import('../../engine/model/presets');
  const { getBackendReport } = await import('../../engine/backend');
  const { resolveWorkers } = await import('../../engine/train/parallel/cores');
  const cfg = await modelConfig(p.vocabSize, p.preset, p.model);
  const batch = p.batchSize ?? 16;
  const report = getBackendReport();
  const backend = report?.name ?? 'unknown';
  // each worker holds a replica and its share of the batch: on wasm in a heap of its own
  const { workers } = resolveWorkers(p.workers, backend, batch);
  const rows = Math.ceil(batch / workers);
  const est = estimateTrainingMemory(cfg, rows, p.gradAccum ?? 1);
  const limit = report?.memoryLimitBytes ?? Number.MAX_SAFE_INTEGER;
  const limitBytes = backend === 'wasm' ? limit : Math.floor(limit / workers);
  let advice: string | undefined;
  try {
    checkMemory(cfg, rows, p.gradAccum ?? 1, limitBytes, backend);
  } catch (err) {
    advice = (err as Error).message;
  }
  return {
    params: est.params,
    config: {
      nLayer: cfg.nLayer,
      nHead: cfg.nHead,
      nEmbd: cfg.nEmbd,
      blockSize: cfg.blockSize,
      vocabSize: cfg.vocabSize,
    },
    memory: {
      stateBytes: est.stateBytes,
      activationBytes: est.activationBytes,
      totalBytes: est.totalBytes,
    },
    limitBytes,
    backend,
    ...(workers > 1 ? { workers } : {}),
    fits: advice === undefined,
    ...(advice ? { advice } : {}),
    ...(cfg.nEmbd % cfg.nHead !== 0
      ? { error: `width ${cfg.nEmbd} must be divisible by the number of heads ${cfg.nHead}` }
      : {}),
  };
}

export interface ProbeOptions {
  shards: string[];
  tokenizerDir: string;
  preset?: PresetName;
  model?: Overrides;
  train?: { batchSize?: number; gradAccum?: number; lr?: number; seed?: number; workers?: number };
  steps: number;
  signal: AbortSignal;
  onStep: (step: number, ms: number) => void;
}

/** A few real training steps of the chosen model on the chosen backend, timed. */
export async function probeModel(o: ProbeOptions) {
  const tf = await import('../../engine/tf');
  const { loadTokenizer, readCorpusChunks } = await import('../../engine/tokenizer');
  const { GPT } = await import('../../engine/model/gpt');
  const { DEFAULT_TRAIN, checkBackendMemory, newOptimizer, trainingAdvice } =
    await import('../../engine/train/pretrain');
  const { explainBackendAbort, isBackendAbort } = await import('../../engine/backendAbort');
  const { Rng } = await import('../../engine/util/rng');
  const { countParams } = await import('../../engine/model/params');
  const { getBackendReport } = await import('../../engine/backend');
  const { planWorkers } = await import('../../engine/train/parallel/pool');
  const { openTrainer } = await import('../../engine/train/parallel/trainer');
  const tokenizer = await loadTokenizer(o.tokenizerDir);
  const cfg = await modelConfig(tokenizer.vocabSize, o.preset, o.model);
  if (cfg.nEmbd % cfg.nHead !== 0) {
    throw new Error(`width ${cfg.nEmbd} must be divisible by the number of heads ${cfg.nHead}`);
  }
  const t = { ...DEFAULT_TRAIN, ...o.train };
  const backend = getBackendReport()?.name ?? tf.getBackend();
  const { workers } = planWorkers(t.workers, backend, t.batchSize);
  checkBackendMemory(cfg, t, workers);
  // enough text for the batches: the start of the data, repeated if it is short
  const ids: number[] = [];
  for await (const text of readCorpusChunks(o.shards, 64 * 1024)) {
    ids.push(...tokenizer.encode(text));
    if (ids.length > 20_000) break;
  }
  const need = cfg.blockSize + 2;
  if (ids.length === 0) throw new Error('the dataset has no tokens');
  while (ids.length < need) ids.push(...ids.slice(0, need));
  const data = Int32Array.from(ids);
  const rng = new Rng(t.seed);
  const times: number[] = [];
  let model: InstanceType<typeof GPT> | undefined;
  let opt: ReturnType<typeof newOptimizer> | undefined;
  let trainer: Awaited<ReturnType<typeof openTrainer>> | undefined;
  try {
    model = GPT.init(cfg, t.seed);
    opt = newOptimizer(model, t);
    trainer = await openTrainer(model, opt, workers, backend);
    for (let s = 0; s < o.steps; s++) {
      o.signal.throwIfAborted();
      const t0 = performance.now();
      const r = await trainer.step(data, rng, t, s, t.lr, o.signal);
      if (r.aborted) o.signal.throwIfAborted();
      const ms = performance.now() - t0;
      times.push(ms);
      o.onStep(s + 1, ms);
    }
  } catch (err) {
    // a wasm abort becomes a message that says what to change
    throw explainBackendAbort(err, 'The probe', trainingAdvice(cfg, t));
  } finally {
    await trainer?.close();
    try {
      model?.dispose();
      opt?.dispose();
    } catch (e) {
      if (!isBackendAbort(e)) throw e; // after an abort the backend cannot free anything
    }
  }
  // the first step allocates and warms up: it is left out when there are others
  const timed = times.length > 1 ? times.slice(1) : times;
  const secondsPerStep = timed.reduce((a, b) => a + b, 0) / timed.length / 1000;
  const tokensPerStep = t.batchSize * t.gradAccum * cfg.blockSize;
  return {
    type: 'probe.result' as const,
    steps: times.length,
    secondsPerStep,
    tokensPerStep,
    tokensPerSecond: tokensPerStep / secondsPerStep,
    params: countParams(cfg),
    backend: tf.getBackend(),
    workers,
  };
}

/** At most `max` points, evenly spaced, always keeping the last. */
function thin<T>(xs: T[], max: number): T[] {
  if (xs.length <= max) return xs;
  const every = xs.length / max;
  const out: T[] = [];
  for (let i = 0; i < max; i++) out.push(xs[Math.floor(i * every)]!);
  out[out.length - 1] = xs[xs.length - 1]!;
  return out;
}

async function jsonLines(file: string): Promise<Array<Record<string, unknown>>> {
  const text = await fs.readFile(file, 'utf8').catch(() => '');
  const out: Array<Record<string, unknown>> = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a line cut short by a crash
    }
  }
  return out;
}

const n = (v: unknown) => (typeof v === 'number' ? v : NaN);

export async function runMetrics(runsDir: string, id: string): Promise<RunMetrics> {
  const dir = path.join(runsDir, id);
  const lines = await jsonLines(path.join(dir, 'metrics.jsonl'));
  const steps = lines
    .filter((l) => l.type === 'step')
    .map((l) => ({
      step: n(l.step),
      trainLoss: n(l.trainLoss),
      lr: n(l.lr),
      tokensPerSecond: n(l.tokensPerSecond),
    }));
  const evals = lines
    .filter((l) => l.type === 'eval')
    .map((l) => ({ step: n(l.step), valLoss: n(l.valLoss), trainLoss: n(l.trainLoss) }));
  const zeroShot = lines
    .filter((l) => l.type === 'zeroshot')
    .map((l) => ({
      step: n(l.step),
      set: String(l.set ?? ''),
      task:
        l.task === 'multiple-choice' ? ('multiple-choice' as const) : ('classification' as const),
      accuracy: n(l.accuracy),
      correct: n(l.correct),
      n: n(l.n),
      chance: n(l.chance),
      majority: n(l.majority),
    }));
  const samples = (await jsonLines(path.join(dir, 'samples.jsonl'))).map((l) => ({
    step: n(l.step),
    prompt: String(l.prompt ?? ''),
    text: String(l.text ?? ''),
  }));
  return { id, steps: thin(steps, 2000), evals, zeroShot, samples: samples.slice(-20) };
}

const readJson = (file: string) =>
  fs
    .readFile(file, 'utf8')
    .then((t) => JSON.parse(t) as Record<string, unknown>)
    .catch(() => null);

/** How long a folder's model trained, and how a fine-tune ended; null when it is not a model. */
async function training(dir: string, source: ModelSource) {
  if (source === 'run') {
    const state = await readJson(path.join(dir, 'state.json'));
    return state ? { elapsedMs: n(state.elapsedMs) || 0 } : null;
  }
  if (!(await readJson(path.join(dir, 'config.json')))) return null;
  const meta = source === 'finetune' ? await readJson(path.join(dir, 'finetune.json')) : null;
  const result = (meta?.result ?? null) as { elapsedMs?: unknown; outcome?: unknown } | null;
  const outcome = result?.outcome;
  return {
    elapsedMs: n(result?.elapsedMs) || 0,
    ...(outcome === 'completed' || outcome === 'cancelled'
      ? { outcome: outcome as RunInfo['outcome'] }
      : {}),
  };
}

/** Every run (with a state.json), fine-tune and imported model of the workspace, sized. */
export async function runsInfo(
  ctx: Pick<HostContext, 'workspace' | 'runsDir'>,
): Promise<RunInfo[]> {
  const out: RunInfo[] = [];
  for (const [root, source] of workspaceModelRoots(ctx)) {
    const names = await fs.readdir(root).catch(() => [] as string[]);
    for (const id of names) {
      const dir = path.join(root, id);
      const t = await training(dir, source);
      if (!t) continue;
      const config = await readJson(path.join(dir, 'config.json'));
      out.push({
        id,
        dir,
        kind: modelKind(source),
        params: config ? paramsFromConfig(config) : null,
        ...t,
        bytes: await folderBytes(dir),
      });
    }
  }
  return out;
}
