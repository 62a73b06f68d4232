import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { GPTConfig } from '../../../src/engine/checkpoint/config';
import { expectedParamShapes } from '../../../src/engine/checkpoint/gpt2';

export async function tempDir(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'gpt-studio-ckpt-'));
}

/** Deterministic PRNG (mulberry32), so failures reproduce. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function tinyConfig(overrides: Partial<GPTConfig> = {}): GPTConfig {
  return {
    vocabSize: 50,
    blockSize: 16,
    nLayer: 2,
    nHead: 2,
    nEmbd: 8,
    dropout: 0,
    layerNormEpsilon: 1e-5,
    activation: 'gelu_new',
    bias: true,
    ...overrides,
  };
}

/** Random parameters in the HF layout; LayerNorm weights near 1, everything else small. */
export function randomParams(cfg: GPTConfig, seed = 1): Map<string, Float32Array> {
  const rand = rng(seed);
  const params = new Map<string, Float32Array>();
  for (const [name, shape] of expectedParamShapes(cfg)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    const isLnWeight = /ln_\w+\.weight$/.test(name);
    for (let i = 0; i < data.length; i++) {
      data[i] = (isLnWeight ? 1 : 0) + (rand() - 0.5) * 0.4;
    }
    params.set(name, data);
  }
  return params;
}
