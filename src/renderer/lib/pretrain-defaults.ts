/**
 * The wizard's hyperparameters: the engine's defaults (src/common/defaults.ts), each with the key
 * of its one-line explanation.
 */
import type { BackendInfo } from '../../common/api';
import {
  DEFAULT_TRAIN,
  MODEL_PRESETS as SHARED_PRESETS,
  type ModelLayout,
  type ModelShape,
  type PresetName,
  type TrainConfig,
} from '../../common/defaults';

export const TRAIN_DEFAULTS: TrainConfig = { ...DEFAULT_TRAIN };
export type TrainSettings = TrainConfig;

/**
 * The fields the Training step shows, in order, with their input step. The validation share is
 * not one of them: it is the workspace's setting, in percent (the Data page's slider), shown
 * after these.
 */
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
  { key: 'seed', step: 1, min: 0 },
];

/**
 * The data-parallel workers a run gets: the wizard's choice, else the backend's default (the
 * physical cores on wasm and cpu, 1 on the backends that thread themselves).
 */
export function trainWorkers(chosen: number | undefined, backend: BackendInfo | null): number {
  return chosen ?? backend?.trainWorkers ?? 1;
}

/** GPT-1's own values, for reference beside each default (its paper, section 4.1). */
export const GPT1_VALUES: Partial<Record<keyof TrainSettings, string>> = {
  lr: '2.5e-4',
  warmup: '2000',
  weightDecay: '0.01',
  batchSize: '64 × 512',
};

/** A model's shape and LayerNorm layout, as the wizard sends it to the engine. */
export type ModelChoice = ModelShape & { layout: ModelLayout };

/** The presets' shapes and layouts, as the wizard sends them (without their descriptions). */
export const MODEL_PRESETS = Object.fromEntries(
  Object.entries(SHARED_PRESETS).map(([name, p]) => [
    name,
    { nLayer: p.nLayer, nHead: p.nHead, nEmbd: p.nEmbd, blockSize: p.blockSize, layout: p.layout },
  ]),
) as Record<PresetName, ModelChoice>;
export type { ModelShape } from '../../common/defaults';
export type PresetKey = PresetName;
