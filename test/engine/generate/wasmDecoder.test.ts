/**
 * The wasm decoder (model/wasmDecoder.ts): its JS kernels against the same computation in tf ops,
 * and whole decodes against the block function's forward (GPT.forwardCached without a cache, and
 * GPT.hidden → the LM head) — odd head sizes, prompts in several chunks, a prompt through the
 * generic path, a re-prefill, new weights mid-session — plus its errors, its clean-up, and the
 * generic path on another backend.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../../src/engine/tf';
import { initBackend } from '../../../src/engine/backend';
import { generate } from '../../../src/engine/generate';
import type { GPTConfig } from '../../../src/engine/model/config';
import { GPT } from '../../../src/engine/model/gpt';
import { geluForward, layerNormForward } from '../../../src/engine/model/ops';
import {
  attendRows,
  biasGeluRows,
  erfc,
  layerNormRows,
} from '../../../src/engine/model/rowKernels';
import { WasmDecoder } from '../../../src/engine/model/wasmDecoder';
import {
  charTokenizer,
  maxAbs,
  maxAbsDiff,
  randomFloats,
  randomIds,
  randomWeights,
  tinyConfig,
} from '../helpers';

beforeAll(async () => {
  await initBackend('wasm');
});

describe('JS kernels = tf ops', () => {
  it('layerNormRows, odd widths, with row offsets', () => {
    for (const [rows, n] of [
      [5, 13],
      [3, 128],
      [1, 7],
    ] as const) {
      const x = randomFloats(rows * n, n, 2);
      for (let i = 0; i < x.length; i++) x[i] = x[i]! + 3; // a mean far from 0
      const g = randomFloats(n, 1, 0.5).map((v) => v + 1);
      const b = randomFloats(n, 2, 0.5);
      const want = tf.tidy(() =>
        layerNormForward(
          tf.tensor2d(x, [rows, n]),
          tf.tensor1d(g),
          tf.tensor1d(b),
          1e-5,
        ).y.dataSync(),
      );
      const got = new Float32Array(rows * n);
      layerNormRows(x, got, rows, n, g, b, 1e-5);
      expect(maxAbsDiff(got, want)).toBeLessThan(1e-5);
      // one row read from an offset and written at another
      const one = new Float32Array(n + 3);
      layerNormRows(x, one, 1, n, g, b, 1e-5, (rows - 1) * n, 3);
      expect(maxAbsDiff(one.subarray(3), want.subarray((rows - 1) * n))).toBeLessThan(1e-5);
    }
  });

  it('erfc to 2e-7 relative over [-3, 3] (against its Taylor series)', () => {
    const erf = (x: number) => {
      let term = x;
      let sum = x;
      for (let n = 1; n < 80; n++) {
        term *= (-x * x) / n;
        sum += term / (2 * n + 1);
      }
      return (2 / Math.sqrt(Math.PI)) * sum;
    };
    for (let x = -3; x <= 3; x += 0.01) {
      const want = 1 - erf(x);
      expect(Math.abs(erfc(x) - want) / want, `x = ${x}`).toBeLessThan(2e-7);
    }
    expect(erfc(0)).toBeCloseTo(1, 7);
    expect(erfc(10)).toBeLessThan(1e-40);
    expect(erfc(-10)).toBe(2);
  });

  for (const kind of ['gelu', 'gelu_new'] as const) {
    it(`biasGeluRows '${kind}' = geluForward(x + bias), odd widths, large |x|`, () => {
      const rows = 3;
      const n = 19;
      const x = randomFloats(rows * n, 7, 3);
      x.set([-12, -6, -3, -1e-3, 0, 1e-3, 3, 6, 12], 0);
      const bias = randomFloats(n, 8, 0.5);
      bias.fill(0, 0, 9);
      const want = tf.tidy(() => {
        const xb = tf.add(tf.tensor2d(x, [rows, n]), tf.tensor1d(bias));
        return geluForward(xb, kind).y.dataSync();
      });
      const got = Float32Array.from(x);
      biasGeluRows(got, rows, n, bias, kind);
      expect(maxAbsDiff(got, want)).toBeLessThan(1e-5);
    });
  }

  for (const hs of [5, 8, 3]) {
    it(`attendRows = softmax(q kᵀ/√hs + causal mask) v, head size ${hs}, 3 rows after 4`, () => {
      const nHead = 3;
      const block = 9;
      const rows = 3;
      const past = 4;
      const len = past + rows;
      const C = nHead * hs;
      // q inside rows of 3C (as in qkv), the cache [2][nHead][block][hs] after an offset of 5
      const qkv = randomFloats(rows * 3 * C, hs, 1);
      const cache = new Float32Array(5 + 2 * nHead * block * hs);
      cache.set(randomFloats(2 * nHead * block * hs, hs + 1, 1), 5);
      const kOff = 5;
      const vOff = 5 + nHead * block * hs;
      const got = new Float32Array(rows * C);
      attendRows(
        qkv,
        0,
        3 * C,
        cache,
        kOff,
        vOff,
        got,
        rows,
        past,
        nHead,
        hs,
        block,
        new Float64Array(block),
      );

      const want = tf.tidy(() => {
        const q = tf.transpose(
          tf.reshape(tf.slice(tf.tensor2d(qkv, [rows, 3 * C]), [0, 0], [rows, C]), [
            rows,
            nHead,
            hs,
          ]),
          [1, 0, 2],
        );
        const kv = tf.tensor4d(cache.slice(5), [2, nHead, block, hs]);
        const k = tf.reshape(tf.slice(kv, [0, 0, 0, 0], [1, nHead, len, hs]), [nHead, len, hs]);
        const v = tf.reshape(tf.slice(kv, [1, 0, 0, 0], [1, nHead, len, hs]), [nHead, len, hs]);
        const mask = new Float32Array(rows * len);
        for (let r = 0; r < rows; r++)
          for (let j = past + r + 1; j < len; j++) mask[r * len + j] = -1e9;
        const att = tf.add(
          tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(hs)),
          tf.tensor2d(mask, [rows, len]),
        );
        const y = tf.matMul(tf.softmax(att), v); // [nHead, rows, hs]
        return tf.reshape(tf.transpose(y, [1, 0, 2]), [rows * C]).dataSync();
      });
      expect(maxAbsDiff(got, want)).toBeLessThan(1e-5);
    });
  }
});

/** Logits [V] of the last of `ids` from the generic full forward. */
function fullForward(model: GPT, ids: number[]): Float32Array {
  const x = tf.tensor2d([ids], undefined, 'int32');
  const out = model.forwardCached(x, null, true);
  const row = out.logits.dataSync() as Float32Array;
  tf.dispose([x, out.logits, ...out.cache.k, ...out.cache.v]);
  return row;
}

function expectClose(got: Float32Array, want: Float32Array, what: string): void {
  expect(got).toHaveLength(want.length);
  expect(maxAbsDiff(got, want), what).toBeLessThan(1e-5 * Math.max(1, maxAbs(want)));
}

const CONFIGS: Array<[string, Partial<GPTConfig>]> = [
  ['gelu_new, head size 8', { vocabSize: 37, blockSize: 12, nLayer: 2, nHead: 3, nEmbd: 24 }],
  [
    'gelu, head size 7',
    { vocabSize: 29, blockSize: 10, nLayer: 3, nHead: 2, nEmbd: 14, activation: 'gelu' },
  ],
  [
    'gelu, head size 1',
    { vocabSize: 5, blockSize: 6, nLayer: 1, nHead: 4, nEmbd: 4, activation: 'gelu' },
  ],
  [
    "GPT-1's post-LayerNorm layout, head size 5",
    { vocabSize: 31, blockSize: 11, nLayer: 2, nHead: 2, nEmbd: 10, layout: 'gpt1' },
  ],
];

describe('WasmDecoder = GPT.forwardCached', () => {
  for (const [name, overrides] of CONFIGS) {
    const cfg = tinyConfig(overrides);
    const T = cfg.blockSize;

    it(`${name}: prompt in chunks of 2, then one token at a time to the block size`, () => {
      const model = new GPT(cfg, randomWeights(cfg, 11));
      const ids = randomIds(T, cfg.vocabSize, 12);
      const dec = WasmDecoder.create(model, { chunkRows: 2 })!;
      expect(dec).not.toBeNull();
      const first = Math.min(5, T - 1);
      expectClose(
        dec.prefill(ids.slice(0, first)),
        fullForward(model, ids.slice(0, first)),
        'prefill',
      );
      expect(dec.length).toBe(first);
      for (let n = first + 1; n <= T; n++) {
        expectClose(dec.step(ids[n - 1]!), fullForward(model, ids.slice(0, n)), `step to ${n}`);
      }
      expect(dec.length).toBe(T);
      expect(() => dec.step(0)).toThrow(/exceeds the context/);
      // a new window (as generate() makes when the context fills) reuses the decoder
      const win = ids.slice(T - Math.floor(T / 2));
      expectClose(dec.prefill(win), fullForward(model, win), 're-prefill');
      expectClose(
        dec.step(ids[0]!),
        fullForward(model, [...win, ids[0]!]),
        'step after re-prefill',
      );
      dec.dispose();
      model.dispose();
    });

    it(`${name}: a prompt through the generic forward continues the same`, () => {
      const model = new GPT(cfg, randomWeights(cfg, 21));
      const ids = randomIds(T, cfg.vocabSize, 22);
      const generic = WasmDecoder.create(model, { jsAttentionLimit: 0 })!;
      const js = WasmDecoder.create(model)!;
      const first = T - 3;
      const want = fullForward(model, ids.slice(0, first));
      expectClose(generic.prefill(ids.slice(0, first)), want, 'generic prefill');
      expectClose(js.prefill(ids.slice(0, first)), want, 'js prefill');
      for (let n = first + 1; n <= T; n++) {
        const a = generic.step(ids[n - 1]!);
        const b = js.step(ids[n - 1]!);
        expectClose(a, fullForward(model, ids.slice(0, n)), `step to ${n}`);
        expect(maxAbsDiff(a, b)).toBeLessThan(1e-5 * Math.max(1, maxAbs(b)));
      }
      generic.dispose();
      js.dispose();
      model.dispose();
    });
  }

  it('follows new weights (a training step assigns new buffers) and the head with them', async () => {
    const cfg = tinyConfig(CONFIGS[0]![1]);
    const model = new GPT(cfg, randomWeights(cfg, 31));
    const ids = randomIds(8, cfg.vocabSize, 32);
    const dec = WasmDecoder.create(model)!;
    dec.prefill(ids.slice(0, 4));
    dec.step(ids[4]!);
    await model.setWeights(randomWeights(cfg, 33));
    expectClose(dec.prefill(ids), fullForward(model, ids), 'after setWeights');
    dec.dispose();
    model.dispose();
  });

  it('refuses bad input and use after dispose; frees every buffer', () => {
    const cfg = tinyConfig(CONFIGS[0]![1]);
    const model = new GPT(cfg, randomWeights(cfg, 41));
    const before = tf.memory().numTensors;
    const dec = WasmDecoder.create(model)!;
    expect(() => dec.step(1)).toThrow(/prefill first/);
    expect(() => dec.prefill([])).toThrow(/no tokens/);
    expect(() => dec.prefill(new Array<number>(cfg.blockSize + 1).fill(0))).toThrow(/exceeds/);
    expect(() => dec.prefill([cfg.vocabSize])).toThrow(/out of range/);
    expect(() => dec.prefill([1.5])).toThrow(/out of range/);
    dec.prefill([1, 2]);
    dec.dispose();
    dec.dispose(); // twice is fine
    expect(tf.memory().numTensors).toBe(before);
    expect(() => dec.step(1)).toThrow(/after dispose/);

    const dec2 = WasmDecoder.create(model)!;
    dec2.prefill([1, 2]);
    model.dispose();
    expect(() => dec2.step(3)).toThrow(/disposed/);
    dec2.dispose();
    expect(WasmDecoder.create(model)).toBeNull();
  });
});

describe('other backends', () => {
  afterAll(async () => {
    await initBackend('wasm');
  });

  it('cpu: no decoder; generate() takes the tf-op KV cache, the same tokens as no cache', async () => {
    await initBackend('cpu');
    const tok = charTokenizer();
    const cfg = tinyConfig({ vocabSize: tok.vocabSize, blockSize: 8, nEmbd: 16 });
    const model = new GPT(cfg, randomWeights(cfg, 51, 0.1));
    expect(WasmDecoder.create(model)).toBeNull();
    const before = tf.memory().numTensors;
    const o = { maxNewTokens: 20, temperature: 1, seed: 5 };
    const cached = await generate(model, tok, 'the cat', { ...o, useCache: true });
    const plain = await generate(model, tok, 'the cat', { ...o, useCache: false });
    expect(cached.ids).toHaveLength(20);
    expect(cached.ids).toEqual(plain.ids);
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });
});
