/**
 * Shared fixtures for the engine tests (model, train, generate, checkpoint…): tiny configs and
 * GPT-2 small's, a toy corpus, temp dirs, deterministic random weights and numeric comparison
 * helpers.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'vitest';
import type { GPTConfig } from '../../src/engine/model/config';
import { CheckpointError } from '../../src/engine/checkpoint/safetensors';
import { paramShapes } from '../../src/engine/model/params';
import { CharTokenizer } from '../../src/engine/tokenizer';
import { Rng } from '../../src/engine/util/rng';

/** A very small GPT-2: V=32 T=16 L=2 H=2 C=16 (≈ 7k parameters). */
/** Debian's Python, which the PyTorch and numpy cross-checks use. */
export const PYTHON = '/usr/bin/python3';

/**
 * Whether Debian's Python can import every one of `modules` (found, not imported: importing torch
 * only to ask costs seconds per test file).
 */
export function pythonHas(...modules: string[]): boolean {
  const code = `import importlib.util as u, sys; sys.exit(0 if all(u.find_spec(m) for m in sys.argv[1:]) else 1)`;
  return spawnSync(PYTHON, ['-c', code, ...modules]).status === 0;
}

export function tinyConfig(overrides: Partial<GPTConfig> = {}): GPTConfig {
  return {
    vocabSize: 32,
    blockSize: 16,
    nLayer: 2,
    nHead: 2,
    nEmbd: 16,
    dropout: 0,
    layerNormEpsilon: 1e-5,
    activation: 'gelu_new',
    bias: true,
    ...overrides,
  };
}

/** The checkpoint tests' tiny GPT-2: V=50 T=16 L=2 H=2 C=8. */
export function tinyCheckpointConfig(overrides: Partial<GPTConfig> = {}): GPTConfig {
  return tinyConfig({ vocabSize: 50, nEmbd: 8, ...overrides });
}

/** OpenAI's GPT-2 small (124M parameters), as config.json gives it. */
export const GPT2_SMALL: GPTConfig = {
  vocabSize: 50257,
  blockSize: 1024,
  nLayer: 12,
  nHead: 12,
  nEmbd: 768,
  dropout: 0.1,
  layerNormEpsilon: 1e-5,
  activation: 'gelu_new',
  bias: true,
};
export const GPT2_SMALL_PARAMS = 124_439_808;

/** A few lines of text with a small alphabet (≈ 30 distinct characters). */
export const TOY_TEXT =
  'the cat sat on the mat. the dog sat on the log. a cat and a dog met on a mat by the log.\n' +
  'to be or not to be, that is the question; whether tis nobler in the mind to suffer.\n';

/** TOY_TEXT repeated, so a block-16 model has a few hundred windows to sample from. */
export function toyCorpus(repeat = 6): string {
  return TOY_TEXT.repeat(repeat);
}

export function charTokenizer(text: string = TOY_TEXT): CharTokenizer {
  return CharTokenizer.fromCodePoints(Array.from(text, (c) => c.codePointAt(0)!));
}

/** A fresh temp dir; call the returned cleanup (or remove `dir`) when done. */
export async function tempDir(prefix = 'gpt-studio-engine-'): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

export async function removeDir(dir: string | undefined): Promise<void> {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
}

/** Writes `text` to dir/name and returns the path. */
export async function writeText(dir: string, name: string, text: string | Uint8Array) {
  const file = path.join(dir, name);
  await fs.writeFile(file, text);
  return file;
}

export function sha256File(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/**
 * Random parameters with a larger scale than GPT-2's init (std `scale`; LayerNorm weights
 * 1 ± scale/2, biases ±scale/2), so activations, attention patterns and gradients are far from
 * trivial. Seeded and deterministic.
 */
export function randomWeights(
  cfg: GPTConfig,
  seed: number,
  scale = 0.3,
): Map<string, Float32Array> {
  const rng = new Rng(seed);
  const out = new Map<string, Float32Array>();
  for (const [name, shape] of paramShapes(cfg)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    const isLnWeight = /ln_(1|2|f)\.weight$/.test(name);
    for (let i = 0; i < data.length; i++) {
      if (shape.length === 2) data[i] = rng.normal() * scale;
      else data[i] = (isLnWeight ? 1 : 0) + (rng.next() - 0.5) * scale;
    }
    out.set(name, data);
  }
  return out;
}

/** Deterministic PRNG (mulberry32) of uniform draws in [0, 1), so failures reproduce. */
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

/** Random parameters in the HF layout; LayerNorm weights near 1, everything else small. */
export function randomParams(cfg: GPTConfig, seed = 1): Map<string, Float32Array> {
  const rand = rng(seed);
  const params = new Map<string, Float32Array>();
  for (const [name, shape] of paramShapes(cfg)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    const isLnWeight = /ln_\w+\.weight$/.test(name);
    for (let i = 0; i < data.length; i++) {
      data[i] = (isLnWeight ? 1 : 0) + (rand() - 0.5) * 0.4;
    }
    params.set(name, data);
  }
  return params;
}

/** Deterministic token ids in [0, vocab). */
export function randomIds(n: number, vocab: number, seed: number): number[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => rng.int(vocab));
}

/** Deterministic floats ~ N(0, scale²). */
export function randomFloats(n: number, seed: number, scale = 1): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.normal() * scale);
}

export function logSoftmax64(row: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]!);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(row as ArrayLike<number>, (v) => v - lse);
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/** ‖a − b‖₂ / ‖b‖₂ (Infinity for NaNs). */
export function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  const r = Math.sqrt(num) / Math.sqrt(den);
  return Number.isNaN(r) ? Infinity : r;
}

/** True when every element satisfies |a − b| ≤ atol + rtol·|b|. */
export function allClose(a: ArrayLike<number>, b: ArrayLike<number>, rtol: number, atol: number) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (!(Math.abs(a[i]! - b[i]!) <= atol + rtol * Math.abs(b[i]!))) return false;
  }
  return true;
}

/** The CheckpointError `p` rejects with; the test fails if it resolves or rejects otherwise. */
export async function checkpointError(p: Promise<unknown>): Promise<CheckpointError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(CheckpointError);
    return err as CheckpointError;
  }
  throw new Error('expected a CheckpointError');
}

/** Every file under dir (relative paths), recursively. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(path.relative(dir, p));
    }
  };
  await walk(dir);
  return out.sort();
}

/** sha256 of every file under dir, keyed by relative path. */
export async function hashTree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const f of await listFiles(dir)) out[f] = sha256File(path.join(dir, f));
  return out;
}

/** A tiny pretraining setup (char tokenizer, 1 layer, C=16, T=16) for the run-level tests. */
export const TINY_MODEL = { nLayer: 1, nHead: 2, nEmbd: 16, blockSize: 16 } as const;
export const TINY_TRAIN = {
  batchSize: 4,
  gradAccum: 1,
  steps: 12,
  lr: 3e-3,
  minLr: 3e-4,
  warmup: 3,
  evalEvery: 4,
  evalIters: 2,
  saveEvery: 0,
  sampleEvery: 6,
  sampleTokens: 8,
  seed: 1,
  valFraction: 0.1,
} as const;

/**
 * Expects two float arrays to hold the same bits. A byte comparison: vitest's toEqual walks a
 * typed array element by element (~1.4 s for 400k floats).
 */
export function expectSameFloats(
  got: Float32Array | undefined,
  want: Float32Array,
  label = '',
): void {
  expect(got, label).toBeDefined();
  const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  if (got!.length === want.length && bytes(got!).equals(bytes(want))) return;
  const i = want.findIndex((v, j) => !Object.is(v, got![j]));
  expect(
    { length: got!.length, at: i, value: got![i] },
    `${label}: first difference at element ${i}`,
  ).toEqual({ length: want.length, at: i, value: want[i] });
}
