/**
 * webgpu through Dawn (npm `webgpu`) in Node, checked against wasm. Runs wherever a WebGPU adapter
 * exists; on a GPU-less Linux box that means Mesa's lavapipe (scripts/install-webgpu-deps.sh).
 * Own file = own vitest fork, because tfjs backends are process-global.
 */
import { describe, expect, it } from 'vitest';
import '@tensorflow/tfjs'; // registers the gradient functions tf.variableGrads needs
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend';

async function hasAdapter(): Promise<boolean> {
  try {
    const { create } = await import('webgpu');
    return (await create([]).requestAdapter()) !== null;
  } catch {
    return false;
  }
}
const adapter = await hasAdapter();

/** Deterministic pseudo-random floats in [-1, 1). */
function fill(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

const X = fill(8 * 16, 1);
const W = fill(16 * 12, 2);
const TARGET = fill(8 * 12, 3).map((v) => (v > 0 ? 1 : 0));

/** matmul, softmax, and d(loss)/dW of a cross-entropy-ish loss — all read with await t.data(). */
async function compute(): Promise<Record<'matmul' | 'softmax' | 'grad' | 'loss', Float32Array>> {
  const x = tf.tensor2d(X, [8, 16]);
  const w = tf.variable(tf.tensor2d(W, [16, 12]), true, `w_${tf.getBackend()}`);
  const target = tf.tensor2d(TARGET, [8, 12]);
  const logits = tf.matMul(x, w);
  const probs = tf.softmax(logits);
  const { value, grads } = tf.variableGrads(
    () => tf.neg(tf.mean(tf.mul(target, tf.log(tf.add(tf.softmax(tf.matMul(x, w)), 1e-7))))),
    [w],
  );
  const grad = grads[w.name];
  if (!grad) throw new Error('no gradient for w');
  const out = {
    matmul: (await logits.data()) as Float32Array,
    softmax: (await probs.data()) as Float32Array,
    grad: (await grad.data()) as Float32Array,
    loss: (await value.data()) as Float32Array,
  };
  tf.dispose([x, w, target, logits, probs, value, grad]);
  return out;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] ?? NaN) - (b[i] ?? NaN)));
  return m;
}

describe('webgpu backend (Dawn) vs wasm', () => {
  it.skipIf(!adapter)('matmul + softmax + variableGrads agree to 1e-4', async () => {
    const t0 = performance.now();
    const gpu = await initBackend('webgpu');
    expect(gpu).toMatchObject({ name: 'webgpu', tfBackend: 'webgpu' });
    expect(gpu.attempts).toEqual([
      { name: 'webgpu', status: 'selected', detail: expect.any(String) as string },
    ]);
    expect(gpu.memoryLimitBytes).toBeGreaterThan(0);
    expect(gpu.maxTensorBytes).toBeGreaterThanOrEqual(128 * 1024 ** 2); // WebGPU's guaranteed minimum
    expect(gpu.notes.join(' ')).toMatch(/await t\.data\(\)/);
    const onGpu = await compute();
    const gpuMs = performance.now() - t0;

    // Node has no OffscreenCanvas, so synchronous reads fail on webgpu: engine code must await.
    const t = tf.matMul(tf.ones([2, 2]), tf.ones([2, 2]));
    const warn = console.warn;
    console.warn = () => {};
    try {
      expect(() => t.dataSync()).toThrow();
    } finally {
      console.warn = warn;
      t.dispose();
    }

    const wasm = await initBackend('wasm');
    expect(wasm.tfBackend).toBe('wasm');
    const onWasm = await compute();

    for (const key of ['matmul', 'softmax', 'grad', 'loss'] as const) {
      expect(maxAbsDiff(onGpu[key], onWasm[key]), key).toBeLessThan(1e-4);
    }
    // sanity: softmax rows sum to 1, and the gradient is not all zeros
    expect(onGpu.softmax.slice(0, 12).reduce((s, v) => s + v, 0)).toBeCloseTo(1, 5);
    expect(onGpu.grad.some((v) => Math.abs(v) > 1e-6)).toBe(true);
    console.log(`webgpu (${gpu.device}): init + compute ${gpuMs.toFixed(0)} ms`);
  });
});
