/**
 * The engine's GPT-2 against scripts/gpt2_reference.py, an independent PyTorch implementation that
 * reads the saved Hugging Face directory; and save → load round trips. The PyTorch part is skipped
 * where torch is not installed.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../../src/engine/tf';
import { initBackend } from '../../../src/engine/backend';
import { loadModelDir, saveModelDir } from '../../../src/engine/checkpoint/modelDir';
import { GPT } from '../../../src/engine/model/gpt';
import type { BmmStrategy } from '../../../src/engine/model/ops';
import {
  charTokenizer,
  maxAbs,
  maxAbsDiff,
  randomIds,
  randomWeights,
  removeDir,
  tempDir,
  tinyConfig,
  pythonHas,
} from '../helpers';

const PYTHON = '/usr/bin/python3';
const SCRIPT = path.resolve('scripts/gpt2_reference.py');
const hasTorch = pythonHas('torch', 'numpy');

let dir: string;
beforeAll(async () => {
  await initBackend('wasm');
  dir = await tempDir();
});
afterAll(async () => {
  await removeDir(dir);
});

const V = 50;
const T = 16;
const ROWS = [randomIds(T, V, 1), randomIds(5, V, 2), randomIds(T, V, 3)];

/** Logits [T·V] of one row, from the plain forward (hidden → tied head). */
async function engineLogits(model: GPT, row: number[]): Promise<Float32Array> {
  const x = tf.tensor2d([row], undefined, 'int32');
  const l = tf.tidy(() => model.lmHead(model.hidden(x)));
  const out = (await l.data()) as Float32Array;
  tf.dispose([x, l]);
  return out;
}

/** The same logits fed one token at a time through the KV cache. */
async function cachedLogits(model: GPT, row: number[]): Promise<Float32Array> {
  const out = new Float32Array(row.length * model.config.vocabSize);
  let cache: Parameters<GPT['forwardCached']>[1] = null;
  for (const [t, id] of row.entries()) {
    const x = tf.tensor2d([[id]], undefined, 'int32');
    const r = model.forwardCached(x, cache, true);
    if (cache) tf.dispose([...cache.k, ...cache.v]);
    cache = r.cache;
    out.set((await r.logits.data()) as Float32Array, t * model.config.vocabSize);
    tf.dispose([x, r.logits]);
  }
  if (cache) tf.dispose([...cache.k, ...cache.v]);
  return out;
}

function pytorch(
  modelDir: string,
  ids: number[][],
): { logits: number[][][]; logprobs: number[][] } {
  const py = spawnSync(PYTHON, [SCRIPT, modelDir], {
    input: JSON.stringify({ ids }),
    maxBuffer: 1 << 26,
  });
  expect(py.status, py.stderr?.toString()).toBe(0);
  return JSON.parse(py.stdout.toString()) as { logits: number[][][]; logprobs: number[][] };
}

for (const activation of ['gelu_new', 'gelu'] as const) {
  describe(`GPT-2 with activation '${activation}' (V=${V} T=${T} L=2 H=2 C=16)`, () => {
    const cfg = tinyConfig({
      vocabSize: V,
      blockSize: T,
      nLayer: 2,
      nHead: 2,
      nEmbd: 16,
      activation,
    });
    let modelDir: string;
    let model: GPT;
    beforeAll(async () => {
      model = new GPT(cfg, randomWeights(cfg, activation === 'gelu' ? 21 : 22, 0.3));
      modelDir = path.join(dir, activation);
      await saveModelDir(modelDir, model, charTokenizer());
    });
    afterAll(() => model.dispose());

    it.skipIf(!hasTorch)(
      'logits match the PyTorch reference to 1e-4 (both attention strategies, and the KV cache)',
      async () => {
        const ref = pytorch(modelDir, ROWS);
        for (const [b, row] of ROWS.entries()) {
          const want = Float32Array.from(ref.logits[b]!.flat());
          expect(want).toHaveLength(row.length * V);
          const tol = 1e-4 * Math.max(1, maxAbs(want));
          expect(maxAbs(want)).toBeGreaterThan(1); // far from a trivial, uniform model
          for (const strategy of ['batched', 'unrolled'] as BmmStrategy[]) {
            model.bmm = strategy;
            const ours = await engineLogits(model, row);
            expect(maxAbsDiff(ours, want), `row ${b}, ${strategy}`).toBeLessThan(tol);
            expect(
              maxAbsDiff(await cachedLogits(model, row), want),
              `row ${b}, ${strategy}, cached`,
            ).toBeLessThan(tol);
          }
        }
      },
    );

    it('save → loadModelDir gives the same config, tokenizer and bit-identical logits', async () => {
      const loaded = await loadModelDir(modelDir);
      try {
        expect(loaded.config).toEqual(cfg);
        expect(loaded.tokenizer.decode(loaded.tokenizer.encode('the cat'))).toBe('the cat');
        expect(loaded.tokenizer.vocabSize).toBe(charTokenizer().vocabSize);
        const a = await model.weights();
        const b = await loaded.model.weights();
        for (const [name, w] of a) {
          expect(Buffer.from(b.get(name)!.buffer).equals(Buffer.from(w.buffer)), name).toBe(true);
        }
        loaded.model.bmm = model.bmm;
        for (const row of ROWS) {
          expect(
            maxAbsDiff(await engineLogits(loaded.model, row), await engineLogits(model, row)),
          ).toBe(0);
        }
      } finally {
        loaded.model.dispose();
      }
    });
  });
}
