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
import { loadGpt2Weights, readHfConfig, saveGpt2Weights, writeHfConfig } from './gpt2';

export interface LoadedModel {
  dir: string;
  model: GPT;
  tokenizer: Tokenizer;
  config: GPTConfig;
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
export async function loadModelDir(dir: string): Promise<LoadedModel> {
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
  const { params } = await loadGpt2Weights(weightsFile, config);
  return { dir, model: new GPT(config, params), tokenizer, config };
}
