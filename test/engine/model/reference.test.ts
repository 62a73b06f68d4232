/**
 * The engine's GPT-2 against scripts/gpt2_reference.py, an independent PyTorch implementation that
 * reads the saved Hugging Face directory; and save → load round trips. Both LayerNorm layouts
 * (GPT-2's pre-LN, GPT-1's post-LN) are held to it: logits, loss and every gradient. The PyTorch
 * part is skipped where torch is not installed.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../../src/engine/tf';
import { initBackend } from '../../../src/engine/backend';
import { exportModel } from '../../../src/engine/checkpoint/export';
import { loadModelDir, saveModelDir } from '../../../src/engine/checkpoint/modelDir';
import type { Layout } from '../../../src/engine/model/config';
import { GPT } from '../../../src/engine/model/gpt';
import {
  charTokenizer,
  maxAbs,
  maxAbsDiff,
  randomIds,
  randomWeights,
  relError,
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

interface Reference {
  logits: number[][][];
  logprobs: number[][];
  /** With targets: the mean cross-entropy and its gradient by GPT-2 parameter name. */
  loss?: number;
  grads?: Record<string, number[]>;
}

function pytorch(modelDir: string, ids: number[][], targets?: number[][]): Reference {
  const py = spawnSync(PYTHON, [SCRIPT, modelDir], {
    input: JSON.stringify({ ids, ...(targets ? { targets } : {}) }),
    maxBuffer: 1 << 26,
  });
  expect(py.status, py.stderr?.toString()).toBe(0);
  return JSON.parse(py.stdout.toString()) as Reference;
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
      'logits match the PyTorch reference to 1e-4 (and with the KV cache)',
      async () => {
        const ref = pytorch(modelDir, ROWS);
        for (const [b, row] of ROWS.entries()) {
          const want = Float32Array.from(ref.logits[b]!.flat());
          expect(want).toHaveLength(row.length * V);
          const tol = 1e-4 * Math.max(1, maxAbs(want));
          expect(maxAbs(want)).toBeGreaterThan(1); // far from a trivial, uniform model
          const ours = await engineLogits(model, row);
          expect(maxAbsDiff(ours, want), `row ${b}`).toBeLessThan(tol);
          expect(maxAbsDiff(await cachedLogits(model, row), want), `row ${b}, cached`).toBeLessThan(
            tol,
          );
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

describe('both LayerNorm layouts against PyTorch (the same weights)', () => {
  const B = 2;
  const ids = [randomIds(T, V, 41), randomIds(T, V, 42)];
  // next-token targets, a few of them left out (−1)
  const targets = ids.map((row, b) => row.map((_, t) => (t === 3 + b ? -1 : row[(t + 1) % T]!)));
  const made = new Map<Layout, { model: GPT; dir: string }>();
  beforeAll(async () => {
    for (const layout of ['gpt2', 'gpt1'] as const) {
      const cfg = tinyConfig({
        vocabSize: V,
        blockSize: T,
        nLayer: 2,
        nHead: 2,
        nEmbd: 16,
        layout,
      });
      const model = new GPT(cfg, randomWeights(cfg, 43, 0.3));
      const modelDir = path.join(dir, `layout-${layout}`);
      await saveModelDir(modelDir, model, charTokenizer());
      made.set(layout, { model, dir: modelDir });
    }
  });
  afterAll(() => {
    for (const { model } of made.values()) model.dispose();
  });

  for (const layout of ['gpt2', 'gpt1'] as const) {
    it.skipIf(!hasTorch)(
      `${layout}: logits (plain and KV-cached), loss and every gradient match`,
      async () => {
        const { model, dir: modelDir } = made.get(layout)!;
        const ref = pytorch(modelDir, ids, targets);
        for (const [b, row] of ids.entries()) {
          const want = Float32Array.from(ref.logits[b]!.flat());
          const tol = 1e-4 * Math.max(1, maxAbs(want));
          expect(maxAbs(want)).toBeGreaterThan(1);
          expect(maxAbsDiff(await engineLogits(model, row), want), `row ${b}`).toBeLessThan(tol);
          expect(maxAbsDiff(await cachedLogits(model, row), want), `row ${b} cached`).toBeLessThan(
            tol,
          );
        }
        const x = tf.tensor2d(ids, [B, T], 'int32');
        const y = tf.tensor2d(targets, [B, T], 'int32');
        const { loss, grads, report } = await model.lossAndGrads(x, model.lmLoss(y));
        try {
          expect(Math.abs((await loss.data())[0]! - ref.loss!)).toBeLessThan(1e-5 * ref.loss!);
          // every parameter has its gradient, and only the layout's own (no ln_f in GPT-1's)
          expect([...grads.keys()].sort()).toEqual(Object.keys(ref.grads!).sort());
          expect(grads.has('ln_f.weight')).toBe(layout === 'gpt2');
          for (const [name, g] of grads) {
            const want = ref.grads![name]!;
            expect(relError((await g.data()) as Float32Array, want), name).toBeLessThan(1e-4);
          }
        } finally {
          tf.dispose([x, y, loss, ...grads.values(), ...Object.values(report)]);
        }
      },
    );
  }

  it('the layouts compute different models from the same weights', async () => {
    const a = await engineLogits(made.get('gpt2')!.model, ids[0]!);
    const b = await engineLogits(made.get('gpt1')!.model, ids[0]!);
    expect(maxAbsDiff(a, b)).toBeGreaterThan(0.1);
  });

  it.skipIf(!hasTorch)(
    "GPT-1's layout exports as an openai-gpt folder that the reference reads the same",
    async () => {
      const { model, dir: modelDir } = made.get('gpt1')!;
      const out = path.join(dir, 'gpt1-openai-gpt');
      const r = await exportModel({ model: modelDir, out, format: 'hf' });
      expect(r.notes.join(' ')).toMatch(/openai-gpt/);
      const ref = pytorch(out, [ids[0]!]);
      const want = Float32Array.from(ref.logits[0]!.flat());
      expect(maxAbsDiff(await engineLogits(model, ids[0]!), want)).toBeLessThan(
        1e-4 * Math.max(1, maxAbs(want)),
      );
    },
  );
});
