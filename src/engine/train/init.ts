/**
 * The model a pretraining run starts from when it does not start from scratch (`pretrain
 * --from`): a model folder's weights, architecture and tokenizer, e.g. an imported checkpoint of
 * the cluster export's train.py.
 */
import * as path from 'node:path';
import { loadGpt2Weights, readHfConfig } from '../checkpoint/gpt2';
import { checkModelFiles } from '../checkpoint/source';
import type { GPTConfig } from '../model/config';
import { loadTokenizer } from '../tokenizer';
import type { Tokenizer } from '../tokenizer/types';
import { TrainingError } from './runDir';

export interface StartModel {
  config: GPTConfig;
  tokenizer: Tokenizer;
  params: Map<string, Float32Array>;
}

/** Reads `dir` to start a run from; `dropout` replaces config.json's when given. */
export async function readStartModel(dir: string, dropout?: number): Promise<StartModel> {
  const from = path.resolve(dir);
  await checkModelFiles(from);
  const configFile = path.join(from, 'config.json');
  const config = await readHfConfig(configFile);
  if (dropout !== undefined) config.dropout = dropout;
  const tokenizer = await loadTokenizer(from);
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new TrainingError(
      `${configFile}: vocab_size ${config.vocabSize} is smaller than the tokenizer's ${tokenizer.vocabSize} tokens`,
    );
  }
  const { params } = await loadGpt2Weights(path.join(from, 'model.safetensors'), config);
  return { config, tokenizer, params };
}
