/**
 * The engine's defaults, as --help shows them. Copied here so that --help and usage errors answer
 * without loading TensorFlow.js (which takes most of a second); test/cli/defaults.test.ts checks
 * that these equal the engine's DEFAULT_TRAIN, DEFAULT_SAMPLING and PRESETS.
 */

/** = DEFAULT_TRAIN in src/engine/train/pretrain.ts (the fields the CLI exposes). */
export const TRAIN_DEFAULTS = {
  batchSize: 16,
  gradAccum: 1,
  steps: 1000,
  lr: 1e-3,
  minLr: 1e-4,
  warmup: 100,
  weightDecay: 0.1,
  evalEvery: 100,
  evalIters: 10,
  saveEvery: 200,
  sampleEvery: 200,
  sampleTokens: 120,
  seed: 1337,
  valFraction: 0.1,
} as const;

/** = DEFAULT_SAMPLING in src/engine/generate.ts (the fields the CLI exposes). */
export const SAMPLING_DEFAULTS = {
  maxNewTokens: 200,
  temperature: 0.8,
  topK: 0,
  topP: 1,
  repetitionPenalty: 1,
  seed: 1337,
} as const;

/** = PRESETS in src/engine/model/presets.ts. */
export const PRESETS = {
  tiny: { nLayer: 4, nHead: 4, nEmbd: 128, blockSize: 128, description: '4 layers, 128 dims' },
  small: { nLayer: 6, nHead: 6, nEmbd: 384, blockSize: 256, description: '6 layers, 384 dims' },
  gpt1: { nLayer: 12, nHead: 12, nEmbd: 768, blockSize: 512, description: "GPT-1's 12×768" },
} as const;

export type PresetName = keyof typeof PRESETS;

/** BPE vocabulary size when --tokenizer bpe / --type bpe is given without --vocab-size. */
export const DEFAULT_BPE_VOCAB = 2048;
