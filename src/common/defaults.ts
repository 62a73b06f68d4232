/**
 * The training and sampling defaults and the model presets every side shares: the engine uses
 * them, the CLI prints them in --help (without loading TensorFlow.js), and the pretrain wizard
 * starts from them. Plain data, no runtime.
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
  /**
   * Data-parallel worker threads on the wasm and cpu backends, each training its share of every
   * batch (1, or absent: the one-thread path; other backends always use 1). The CLI and the wizard
   * default to the machine's physical cores. A run repeats exactly for the same count.
   */
  workers?: number;
}

/** The most data-parallel training workers a run may ask for. */
export const MAX_TRAIN_WORKERS = 64;

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

/** The BPE vocabulary size when none is given (the CLI, the wizard, the host). */
export const DEFAULT_BPE_VOCAB = 2048;

export type PresetName = 'tiny' | 'small' | 'gpt1';

export interface ModelShape {
  nLayer: number;
  nHead: number;
  nEmbd: number;
  blockSize: number;
}

/**
 * Where a model's LayerNorms sit: 'gpt2' pre-LayerNorm with a final ln_f (the default), 'gpt1'
 * post-LayerNorm with none, as GPT-1 was.
 */
export type ModelLayout = 'gpt1' | 'gpt2';
export const MODEL_LAYOUTS: readonly ModelLayout[] = ['gpt2', 'gpt1'];
export const DEFAULT_LAYOUT: ModelLayout = 'gpt2';

/**
 * tiny ≈ 1M, small ≈ 10M (nanoGPT's shakespeare_char), gpt1 = GPT-1's 117M shape and layout
 * (post-LayerNorm, a 512 context).
 */
export const MODEL_PRESETS: Readonly<
  Record<PresetName, Readonly<ModelShape & { layout: ModelLayout; description: string }>>
> = {
  tiny: {
    nLayer: 4,
    nHead: 4,
    nEmbd: 128,
    blockSize: 128,
    layout: 'gpt2',
    description: '4 layers, 128 dims',
  },
  small: {
    nLayer: 6,
    nHead: 6,
    nEmbd: 384,
    blockSize: 256,
    layout: 'gpt2',
    description: '6 layers, 384 dims',
  },
  gpt1: {
    nLayer: 12,
    nHead: 12,
    nEmbd: 768,
    blockSize: 512,
    layout: 'gpt1',
    description: "GPT-1's 12×768, post-LayerNorm",
  },
};

/** Sampling defaults (temperature 0 = greedy, topK 0 and topP 1 = off, penalty 1 = off). */
export const SAMPLING_DEFAULTS = {
  maxNewTokens: 200,
  temperature: 0.8,
  topK: 0,
  topP: 1,
  repetitionPenalty: 1,
  seed: 1337,
} as const;
