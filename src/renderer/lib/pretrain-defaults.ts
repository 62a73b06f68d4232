/**
 * The wizard's hyperparameters: nanoGPT's defaults for a small model (= DEFAULT_TRAIN in
 * src/engine/train/pretrain.ts, checked by a test), each with the key of its one-line explanation.
 */
export const TRAIN_DEFAULTS = {
  steps: 1000,
  batchSize: 16,
  gradAccum: 1,
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
export type TrainSettings = typeof TRAIN_DEFAULTS;

/** The fields the Training step shows, in order, with their input step. */
export const TRAIN_FIELDS: Array<{ key: keyof TrainSettings; step: number; min: number }> = [
  { key: 'steps', step: 1, min: 1 },
  { key: 'batchSize', step: 1, min: 1 },
  { key: 'gradAccum', step: 1, min: 1 },
  { key: 'lr', step: 0.0001, min: 0 },
  { key: 'minLr', step: 0.00001, min: 0 },
  { key: 'warmup', step: 1, min: 0 },
  { key: 'weightDecay', step: 0.01, min: 0 },
  { key: 'beta1', step: 0.01, min: 0 },
  { key: 'beta2', step: 0.001, min: 0 },
  { key: 'gradClip', step: 0.1, min: 0 },
  { key: 'evalEvery', step: 1, min: 0 },
  { key: 'evalIters', step: 1, min: 1 },
  { key: 'sampleEvery', step: 1, min: 0 },
  { key: 'saveEvery', step: 1, min: 0 },
  { key: 'valFraction', step: 0.01, min: 0 },
  { key: 'seed', step: 1, min: 0 },
];

/** GPT-1's own values, for reference beside each default (its paper, section 4.1). */
export const GPT1_VALUES: Partial<Record<keyof TrainSettings, string>> = {
  lr: '2.5e-4',
  warmup: '2000',
  weightDecay: '0.01',
  batchSize: '64 × 512',
};

/** The model presets (= PRESETS in src/engine/model/presets.ts). */
export interface ModelShape {
  nLayer: number;
  nHead: number;
  nEmbd: number;
  blockSize: number;
}
export const MODEL_PRESETS: Record<'tiny' | 'small' | 'gpt1', ModelShape> = {
  tiny: { nLayer: 4, nHead: 4, nEmbd: 128, blockSize: 128 },
  small: { nLayer: 6, nHead: 6, nEmbd: 384, blockSize: 256 },
  gpt1: { nLayer: 12, nHead: 12, nEmbd: 768, blockSize: 512 },
};
export type PresetKey = keyof typeof MODEL_PRESETS;
