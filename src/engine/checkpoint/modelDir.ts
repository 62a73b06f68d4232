/**
 * A model directory is a Hugging Face GPT-2 directory: config.json, model.safetensors,
 * generation_config.json and the tokenizer files. Every file is written atomically.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { GPT } from '../model/gpt';
import { loadTokenizer } from '../tokenizer';
import type { Tokenizer } from '../tokenizer/types';
import { writeJsonAtomic } from '../util/atomic';
import type { GPTConfig } from '../model/config';
import type { WeightsInfo } from '../../common/console';
import { backendMemoryBudget, getBackendReport } from '../backend';
import { planWeights, type WeightChoice } from '../weights/format';
import { loadWeightStore } from '../weights/load';
import { measureNumerics, referenceIds } from '../weights/numerics';
import { ReferenceForward } from '../weights/reference';
import { machineMemoryBudget } from './config';
import {
  loadGpt2Weights,
  openGpt2Weights,
  readHfConfig,
  saveGpt2Weights,
  writeHfConfig,
} from './gpt2';

export interface LoadedModel {
  dir: string;
  model: GPT;
  tokenizer: Tokenizer;
  config: GPTConfig;
  /** How the weights are held (float32 unless an inference load asked otherwise). */
  weights: WeightsInfo;
}

export interface LoadModelOptions {
  /**
   * For inference: hold the weights as f32, f16 or q8, or auto (the widest that fits the
   * backend's memory with room for the KV cache and activations), checked before anything is
   * read. Unset: float32 variables, as training needs, unchecked.
   */
  weights?: WeightChoice;
  /** Measure f16/q8 against float32 on the reference text (default true). */
  numerics?: boolean;
  signal?: AbortSignal;
}

export async function saveModelWeights(
  dir: string,
  model: GPT,
  metadata: Record<string, string> = {},
): Promise<void> {
  await saveGpt2Weights(path.join(dir, 'model.safetensors'), model.config, await model.weights(), {
    metadata,
  });
}

export async function saveModelDir(
  dir: string,
  model: GPT,
  tokenizer: Tokenizer,
  metadata: Record<string, string> = {},
): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await tokenizer.save(dir);
  const eos = tokenizer.eosId ?? null;
  await writeHfConfig(path.join(dir, 'config.json'), model.config, {
    bos_token_id: eos,
    eos_token_id: eos,
  });
  await writeJsonAtomic(path.join(dir, 'generation_config.json'), {
    bos_token_id: eos,
    eos_token_id: eos,
    transformers_version: '4.46.0',
  });
  await saveModelWeights(dir, model, metadata);
}

/** Loads a model directory (config.json + model.safetensors + tokenizer). */
export async function loadModelDir(dir: string, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  const configFile = path.join(dir, 'config.json');
  try {
    await fs.access(configFile);
  } catch {
    throw new Error(`${dir}: not a model directory (no config.json)`);
  }
  const weightsFile = path.join(dir, 'model.safetensors');
  try {
    await fs.access(weightsFile);
  } catch {
    const hasBin = await fs
      .access(path.join(dir, 'pytorch_model.bin'))
      .then(() => true)
      .catch(() => false);
    throw new Error(
      hasBin
        ? `${dir}: only pytorch_model.bin is present; it is refused because unpickling can run code. Convert it to model.safetensors.`
        : `${dir}: model.safetensors is missing`,
    );
  }
  const config = await readHfConfig(configFile);
  const tokenizer = await loadTokenizer(dir);
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new Error(
      `${configFile}: vocab_size ${config.vocabSize} is smaller than the tokenizer's ${tokenizer.vocabSize} tokens`,
    );
  }
  const choice = opts.weights ?? 'f32';
  const plan = opts.weights
    ? planWeights(
        config,
        opts.weights,
        backendMemoryBudget() ?? machineMemoryBudget(),
        path.basename(dir),
        {
          packedCopies: getBackendReport()?.name === 'wasm',
        },
      )
    : { format: 'f32' as const };
  if (plan.format === 'f32') {
    const { params } = await loadGpt2Weights(weightsFile, config);
    const model = new GPT(config, params);
    const weights = { format: 'f32' as const, choice, bytes: model.weightBytes(), numerics: null };
    return { dir, model, tokenizer, config, weights };
  }
  const f = await openGpt2Weights(weightsFile, config);
  const ids = opts.numerics === false ? null : referenceIds(tokenizer, config);
  // the float32 reference runs on the same pass over the file as the load
  const reference = ids && ids.ids.length >= 2 ? new ReferenceForward(config, ids.ids) : null;
  try {
    await f.checkTiedHead();
    const store = await loadWeightStore(f, config, plan.format, {
      reference,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    let model: GPT;
    try {
      model = new GPT(config, store.small, store);
    } catch (err) {
      store.dispose();
      throw err;
    }
    try {
      const numerics = reference ? await measureNumerics(f, model, reference, ids!) : null;
      const weights = { format: plan.format, choice, bytes: model.weightBytes(), numerics };
      return { dir, model, tokenizer, config, weights };
    } catch (err) {
      model.dispose();
      throw err;
    }
  } finally {
    reference?.dispose();
    await f.close();
  }
}
