import type { GPTConfig } from '../checkpoint/config';
import { countParams } from './gpt';
import { MODEL_PRESETS, type PresetName } from '../../common/defaults';

export type { PresetName };

export const PRESETS = MODEL_PRESETS;

export function presetConfig(name: PresetName, vocabSize: number, dropout = 0): GPTConfig {
  const p = PRESETS[name];
  if (!p) throw new Error(`unknown preset "${name}" (choose ${Object.keys(PRESETS).join(', ')})`);
  return {
    vocabSize,
    blockSize: p.blockSize,
    nLayer: p.nLayer,
    nHead: p.nHead,
    nEmbd: p.nEmbd,
    dropout,
    layerNormEpsilon: 1e-5,
    activation: 'gelu_new',
    bias: true,
  };
}

export interface MemoryEstimate {
  params: number;
  /** Weights, gradients, AdamW moments and the optimizer's flat copies. */
  stateBytes: number;
  /** Activations kept for the backward pass of one micro-batch. */
  activationBytes: number;
  totalBytes: number;
}

/** A deliberately generous estimate of one training step's peak memory. */
export function estimateTrainingMemory(cfg: GPTConfig, microBatch: number): MemoryEstimate {
  const params = countParams(cfg);
  const { nLayer: L, nEmbd: C, nHead: H, blockSize: T, vocabSize: V } = cfg;
  const tokens = microBatch * T;
  const stateBytes = params * 4 * 7;
  const perLayer = tokens * (C * 14 + 4 * C * 4) + microBatch * H * T * T * 4;
  const head = tokens * V * 4;
  const activationBytes = Math.round((L * perLayer + head + tokens * C * 4) * 4 * 1.25);
  return { params, stateBytes, activationBytes, totalBytes: stateBytes + activationBytes };
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return `${(n / 1024).toFixed(0)} KiB`;
}

/**
 * Refuses a run that would not fit, naming a configuration that does: a smaller micro-batch with
 * more gradient accumulation (same effective batch), else a shorter context.
 */
export function checkMemory(
  cfg: GPTConfig,
  microBatch: number,
  gradAccum: number,
  limitBytes: number,
  backend: string,
): void {
  const est = estimateTrainingMemory(cfg, microBatch);
  if (est.totalBytes <= limitBytes) return;
  const need = formatBytes(est.totalBytes);
  const have = formatBytes(limitBytes);
  for (let b = Math.floor(microBatch / 2); b >= 1; b = Math.floor(b / 2)) {
    if (estimateTrainingMemory(cfg, b).totalBytes <= limitBytes) {
      const accum = Math.ceil((microBatch * gradAccum) / b);
      throw new Error(
        `This run needs about ${need} but the ${backend} backend has ${have}. ` +
          `Try --batch-size ${b} --grad-accum ${accum} (the same effective batch).`,
      );
    }
  }
  for (let t = Math.floor(cfg.blockSize / 2); t >= 16; t = Math.floor(t / 2)) {
    if (estimateTrainingMemory({ ...cfg, blockSize: t }, 1).totalBytes <= limitBytes) {
      throw new Error(
        `This run needs about ${need} but the ${backend} backend has ${have}. ` +
          `Try --batch-size 1 --grad-accum ${microBatch * gradAccum} --block-size ${t}.`,
      );
    }
  }
  throw new Error(
    `This model needs about ${need} but the ${backend} backend has ${have}, even with a batch of 1. ` +
      `Choose a smaller preset.`,
  );
}
