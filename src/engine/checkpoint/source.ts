/**
 * Reading a model folder as files (no tfjs): config.json (with whatever extra fields it carries,
 * e.g. id2label), the weights with any fine-tuned head, the tokenizer, and, for a training run,
 * its state.json. Export and import both start from here; every check names the file at fault.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { loadTokenizer, type BpeTokenizer, type CharTokenizer } from '../tokenizer';
import type { GPTConfig } from '../model/config';
import { fromHfConfigJson, loadGpt2Weights, type ExtraTensor } from './gpt2';
import { CheckpointError } from './safetensors';
import { exists } from '../util/fs';
import { readManifest } from '../data/dataset/library';
import type { CorpusDataset } from '../train/runDir';

export interface RunInfo {
  step?: number;
  trainLoss?: number | null;
  valLoss?: number | null;
  bestValLoss?: number | null;
  train?: Record<string, unknown>;
  corpus?: Array<{ path: string; bytes: number }>;
  /** The library datasets of the corpus (recorded at the start, or found beside its shards). */
  datasets?: CorpusDataset[];
  /** The batch sampler's state and AdamW's step count at `step` (a pretraining run's). */
  rng?: number[];
  adamT?: number;
  /** The run's tokenized corpus beside it (train.bin, val.bin). */
  tokens?: { dtype: string; train: number; val: number };
  createdAt?: string;
  updatedAt?: string;
  backend?: string;
  elapsedMs?: number;
}

export interface SourceModel {
  dir: string;
  config: GPTConfig;
  /** config.json as written, for the fields beyond GPT-2's (id2label, label2id, gpt_studio…). */
  rawConfig: Record<string, unknown>;
  params: Map<string, Float32Array>;
  extra: Map<string, ExtraTensor>;
  tokenizer: BpeTokenizer | CharTokenizer;
  /** state.json of a pretraining run (or a fine-tune), when the folder is one. */
  run: RunInfo | null;
}

/** Says why a folder is not a loadable GPT-2 directory, or nothing when it is. */
export async function checkModelFiles(dir: string): Promise<void> {
  const stat = await fs.stat(dir).catch(() => undefined);
  if (!stat) throw new Error(`model folder not found: ${dir}`);
  if (!stat.isDirectory()) throw new Error(`not a folder: ${dir}`);
  if (!(await exists(path.join(dir, 'config.json')))) {
    throw new Error(`${dir}: not a Hugging Face model folder (no config.json)`);
  }
  if (await exists(path.join(dir, 'model.safetensors'))) return;
  if (await exists(path.join(dir, 'model.safetensors.index.json'))) {
    throw new Error(
      `${dir}: sharded checkpoints (model.safetensors.index.json) are not supported; GPT-2 models fit one model.safetensors`,
    );
  }
  if (await exists(path.join(dir, 'pytorch_model.bin'))) {
    throw new Error(
      `${dir}: only pytorch_model.bin is present; it is refused because loading it means unpickling, ` +
        'and unpickling can run arbitrary code. Convert it to model.safetensors ' +
        '(e.g. transformers: model.save_pretrained(dir, safe_serialization=True)) and try again.',
    );
  }
  for (const other of ['tf_model.h5', 'flax_model.msgpack', 'model.ckpt.index']) {
    if (await exists(path.join(dir, other))) {
      throw new Error(`${dir}: only ${other} is present; model.safetensors is needed`);
    }
  }
  throw new Error(`${dir}: model.safetensors is missing`);
}

/**
 * A run made before its datasets were recorded: the library datasets whose folders hold its
 * shards (text-000.txt beside a manifest.json), when they are still there.
 */
async function libraryDatasets(
  corpus: Array<{ path: string }>,
): Promise<{ datasets?: CorpusDataset[] }> {
  const out: CorpusDataset[] = [];
  for (const folder of new Set(corpus.map((f) => path.dirname(f.path)))) {
    const m = await readManifest(folder).catch(() => null);
    if (!m) return {};
    out.push({ id: m.id, name: m.name, files: m.files.map((f) => f.name) });
  }
  return out.length > 0 ? { datasets: out } : {};
}

async function readRunInfo(dir: string): Promise<RunInfo | null> {
  const file = path.join(dir, 'state.json');
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    return null;
  }
  try {
    const s = JSON.parse(text) as unknown;
    if (!s || typeof s !== 'object' || Array.isArray(s)) return null;
    const run = s as RunInfo;
    return run.datasets ? run : { ...run, ...(await libraryDatasets(run.corpus ?? [])) };
  } catch {
    return null; // a state being rewritten: the model itself is still fine to export
  }
}

/** A model folder without its weights: what an import needs before it streams them across. */
export type SourceInfo = Omit<SourceModel, 'params' | 'extra'>;

export async function readSourceModel(dir: string): Promise<SourceModel> {
  const info = await readSourceInfo(dir);
  const { params, extra } = await loadGpt2Weights(path.join(dir, 'model.safetensors'), info.config);
  return { ...info, params, extra };
}

/** Checks a model folder and reads everything but its weights. */
export async function readSourceInfo(dir: string): Promise<SourceInfo> {
  await checkModelFiles(dir);
  const configFile = path.join(dir, 'config.json');
  let rawConfig: Record<string, unknown>;
  try {
    rawConfig = JSON.parse(await fs.readFile(configFile, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new CheckpointError(`cannot read config: ${(err as Error).message}`, configFile);
  }
  const config = fromHfConfigJson(rawConfig, configFile);
  const tokenizer = await loadTokenizer(dir);
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new CheckpointError(
      `field 'vocab_size' is ${config.vocabSize}, smaller than the tokenizer's ${tokenizer.vocabSize} tokens`,
      configFile,
    );
  }
  return { dir, config, rawConfig, tokenizer, run: await readRunInfo(dir) };
}

/** config.json fields that travel with the weights (labels, task, special ids). */
export function carriedConfigFields(raw: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of ['id2label', 'label2id', 'gpt_studio', 'bos_token_id', 'eos_token_id']) {
    if (raw[k] !== undefined) out[k] = raw[k];
  }
  return out;
}
