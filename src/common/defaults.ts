/**
 * The training defaults and model presets every side shares: the engine trains with them, the CLI
 * prints them in --help, and the pretrain wizard starts from them. Plain data, no runtime.
 */

/** Pretraining hyperparameters. */
export interface TrainConfig {
  batchSize: number;
  gradAccum: number;
  steps: number;
  lr: number;
  minLr: number;
  warmup: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  gradClip: number;
  evalEvery: number;
  evalIters: number;
  saveEvery: number;
  sampleEvery: number;
  sampleTokens: number;
  seed: number;
  valFraction: number;
}

/** nanoGPT's defaults for a small character model. */
export const DEFAULT_TRAIN: Readonly<TrainConfig> = {
  batchSize: 16,
  gradAccum: 1,
  steps: 1000,
  lr: 1e-3,
  minLr: 1e-4,
  warmup: 100,
  weightDecay: 0.1,
  beta1: 0.9,
  beta2: 0.99,
  gradClip: 1,
  evalEvery: 100,
  evalIters: 10,
  saveEvery: 200,
  sampleEvery: 200,
  sampleTokens: 120,
  seed: 1337,
  valFraction: 0.1,
};

export type PresetName = 'tiny' | 'small' | 'gpt1';

export interface ModelShape {
  nLayer: number;
  nHead: number;
  nEmbd: number;
  blockSize: number;
}

/** tiny ≈ 1M, small ≈ 10M (nanoGPT's shakespeare_char), gpt1 = GPT-1's 117M shape. */
export const MODEL_PRESETS: Readonly<Record<PresetName, Readonly<ModelShape>>> = {
  tiny: { nLayer: 4, nHead: 4, nEmbd: 128, blockSize: 128 },
  small: { nLayer: 6, nHead: 6, nEmbd: 384, blockSize: 256 },
  gpt1: { nLayer: 12, nHead: 12, nEmbd: 768, blockSize: 512 },
};
