/**
 * memory-12x640: the training-memory estimate against a real run at a size that matters. The
 * wizard's tiny preset widened to 12 layers × 640 (about 60M parameters with BPE's default
 * vocabulary) at batch 1 used to pass the memory check and then abort the wasm module in AdamW's
 * step. Here it trains two steps and evaluates once on wasm; the wasm heap (which only grows) must
 * stay within the estimate, and the estimate under twice the heap. The small configurations are
 * checked the same way in test/engine/model/memory.test.ts.
 */
import * as tf from '../src/engine/tf';
import { DEFAULT_BPE_VOCAB } from '../src/common/defaults';
import type { GPTConfig } from '../src/engine/model/config';
import { GPT } from '../src/engine/model/gpt';
import { estimateTrainingMemory, presetConfig } from '../src/engine/model/presets';
import { DEFAULT_TRAIN, evaluate, newOptimizer, trainStep } from '../src/engine/train/pretrain';
import { Rng } from '../src/engine/util/rng';
import type { Check, OurResult } from './cases';

const MiB = 2 ** 20;

export function wideConfig(): GPTConfig {
  return { ...presetConfig('tiny', DEFAULT_BPE_VOCAB), nLayer: 12, nEmbd: 640 };
}

export async function benchMemory(name: string, backend: string): Promise<OurResult> {
  if (backend !== 'wasm') {
    return {
      name,
      backend,
      peakRssMB: 0,
      notes: [`skipped: measures the wasm heap (got ${backend})`],
    };
  }
  const cfg = wideConfig();
  const t = { ...DEFAULT_TRAIN, batchSize: 1, gradAccum: 1, evalIters: 1 };
  const est = estimateTrainingMemory(cfg, t.batchSize, t.gradAccum);
  const data = Int32Array.from({ length: 20_000 }, (_, i) => (i * 7919) % cfg.vocabSize);
  const t0 = performance.now();
  const model = GPT.init(cfg, 1);
  const opt = newOptimizer(model, t);
  const rng = new Rng(1);
  for (let step = 0; step < 2; step++) {
    const r = await trainStep(model, opt, data, rng, t, step, 1e-3);
    if (!Number.isFinite(r.loss)) throw new Error(`loss ${r.loss} at step ${step}`);
  }
  await evaluate(model, data, t, cfg.blockSize);
  const seconds = (performance.now() - t0) / 1000;
  model.dispose();
  opt.dispose();
  const heap = (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.length;
  const heapMB = Math.round(heap / MiB);
  const estimateMB = Math.round(est.totalBytes / MiB);
  const checks: Check[] = [
    {
      what: 'heapMB<=estimateMB',
      op: '<=',
      target: estimateMB,
      value: heapMB,
      ok: heap <= est.totalBytes,
    },
    {
      what: 'estimateMB<2×heapMB',
      op: '<',
      target: 2 * heapMB,
      value: estimateMB,
      ok: est.totalBytes < 2 * heap,
    },
  ];
  return {
    name,
    backend,
    seconds: Math.round(seconds * 10) / 10,
    peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
    checks,
    notes: [
      `${est.params.toLocaleString('en-US')} parameters, batch 1: wasm heap ${heapMB} MiB after two steps and an evaluation, estimate ${estimateMB} MiB (${est.peak})`,
    ],
  };
}
