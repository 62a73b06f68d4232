/**
 * A pretraining run's directory: the newest model at the top level (a Hugging Face GPT-2 dir),
 * checkpoint-<step>/ folders (model, optimizer.safetensors, state.json with step, RNG, schedule),
 * the tokenized corpus (train.bin/val.bin), metrics.jsonl and samples.jsonl.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { TrainConfig } from '../../common/defaults';
import type { ZeroShotConfig } from '../../common/zeroShot';
import { saveGpt2Weights } from '../checkpoint/gpt2';
import { writeSafetensors, type Tensor } from '../checkpoint/safetensors';
import type { GPT } from '../model/gpt';
import { writeJsonAtomic } from '../util/atomic';
import type { AdamW } from './optimizer';

export interface RunState {
  version: 1;
  step: number;
  rng: number[];
  adamT: number;
  train: TrainConfig;
  tokens: { dtype: string; train: number; val: number };
  corpus: Array<{ path: string; bytes: number }>;
  /** The library datasets the corpus came from, by the names the user knows them by. */
  datasets?: CorpusDataset[];
  /** The labelled sets scored zero-shot every N steps (kept by resume). */
  zeroShot?: ZeroShotConfig;
  trainLoss: number | null;
  valLoss: number | null;
  bestValLoss: number | null;
  elapsedMs: number;
  status: 'running' | 'completed' | 'cancelled' | 'failed';
  /** Why the run failed, when it did. */
  error?: string;
  backend: string;
  createdAt: string;
  updatedAt: string;
}

/** A library dataset a run trained on: its name and the files it was imported from. */
export interface CorpusDataset {
  id: string;
  name: string;
  files: string[];
}

export class TrainingError extends Error {}

/** Records a failure in the top-level state.json, which otherwise stays as last saved. */
export async function markFailed(runDir: string, message: string) {
  try {
    const saved = await readState(runDir);
    await writeJsonAtomic(path.join(runDir, 'state.json'), {
      ...saved,
      status: 'failed',
      error: message,
      updatedAt: new Date().toISOString(),
    });
  } catch {
    // no readable state to annotate: leave the directory as it is
  }
}

/** How many checkpoint-<step> folders a run keeps. */
const KEEP_CHECKPOINTS = 2;

/**
 * Writes checkpoint-<step>/ (model, optimizer, state) into a temp folder and renames it into place,
 * so a checkpoint folder is always whole. Then refreshes the top level (the run's Hugging Face
 * model dir and its state.json), each file atomically, and prunes older checkpoints.
 */
export async function saveCheckpoint(runDir: string, model: GPT, opt: AdamW, state: RunState) {
  const meta = { step: String(state.step), format: 'pt' };
  const weights = await model.weights();
  const final = path.join(runDir, `checkpoint-${state.step}`);
  const tmp = path.join(runDir, `.checkpoint-${state.step}.${process.pid}.tmp`);
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.mkdir(tmp, { recursive: true });
  await saveGpt2Weights(path.join(tmp, 'model.safetensors'), model.config, weights, {
    metadata: meta,
  });
  const { m, v } = await opt.state();
  const tensors: Record<string, Tensor> = {};
  opt.names.forEach((n, i) => {
    tensors[`exp_avg.${n}`] = { dtype: 'F32', shape: opt.shapes[i]!, data: m.get(n)! };
    tensors[`exp_avg_sq.${n}`] = { dtype: 'F32', shape: opt.shapes[i]!, data: v.get(n)! };
  });
  await writeSafetensors(path.join(tmp, 'optimizer.safetensors'), tensors, meta);
  await writeJsonAtomic(path.join(tmp, 'state.json'), state);
  await fs.rm(final, { recursive: true, force: true });
  await fs.rename(tmp, final);

  await saveGpt2Weights(path.join(runDir, 'model.safetensors'), model.config, weights, {
    metadata: meta,
  });
  await writeJsonAtomic(path.join(runDir, 'state.json'), state);
  for (const old of (await listCheckpoints(runDir)).slice(KEEP_CHECKPOINTS)) {
    await fs.rm(old.dir, { recursive: true, force: true });
  }
}

/** The run's complete checkpoint folders, newest first. */
export async function listCheckpoints(
  runDir: string,
): Promise<Array<{ step: number; dir: string }>> {
  const names = await fs.readdir(runDir).catch(() => [] as string[]);
  return names
    .map((n) => /^checkpoint-(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ step: Number(m[1]), dir: path.join(runDir, m[0]) }))
    .sort((a, b) => b.step - a.step);
}

export async function readState(runDir: string): Promise<RunState> {
  const file = path.join(runDir, 'state.json');
  let raw: string;
  try {
    raw = await fs.readFile(file, 'utf8');
  } catch {
    throw new TrainingError(`${runDir}: not a run directory (no state.json)`);
  }
  try {
    const s = JSON.parse(raw) as RunState;
    if (s.version !== 1 || typeof s.step !== 'number') throw new Error('unknown format');
    return s;
  } catch (err) {
    throw new TrainingError(`${file}: unreadable run state (${(err as Error).message})`);
  }
}

/**
 * Drops metrics (or samples) logged after the checkpoint being resumed, so none repeat, and a
 * line cut short by a crash.
 */
export async function truncateMetrics(runDir: string, step: number, name = 'metrics.jsonl') {
  const file = path.join(runDir, name);
  const text = await fs.readFile(file, 'utf8').catch(() => null);
  if (text === null) return;
  const keep = text.split('\n').filter((l) => {
    try {
      return l.trim() !== '' && (JSON.parse(l) as { step: number }).step <= step;
    } catch {
      return false;
    }
  });
  await fs.writeFile(file, keep.map((l) => l + '\n').join(''));
}
