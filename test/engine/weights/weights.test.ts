/**
 * Inference weights held as f16 or q8 (src/engine/weights): a tiny random GPT-2 loaded each way
 * generates and scores through the decoder's kernels without a float32 copy of its matrices, and its numerics against float32 on the reference text stay within bounds
 * (f16 ≈ 1e-3, q8 ≈ 2e-2 nats); the float32 reference streamed a block at a time equals the whole
 * float32 model; the format choice and its refusals; and a stored model refuses training.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import * as tf from '../../../src/engine/tf';
import { initBackend } from '../../../src/engine/backend';
import { openGpt2Weights, toHfConfigJson } from '../../../src/engine/checkpoint/gpt2';
import { loadModelDir, type LoadedModel } from '../../../src/engine/checkpoint/modelDir';
import { generate } from '../../../src/engine/generate';
import { WasmDecoder } from '../../../src/engine/model/wasmDecoder';
import { scoreTargets, scoreText } from '../../../src/engine/score';
import { planWeights, weightBytes } from '../../../src/engine/weights/format';
import { kernelHeap } from '../../../src/engine/weights/kernels';
import {
  referenceIds,
  referenceLogprobs,
  REFERENCE_TEXT,
} from '../../../src/engine/weights/numerics';
import { charTok, makeRun } from '../checkpoint/fixtures';
import { GPT2_SMALL, logSoftmax64, maxAbsDiff, tempDir } from '../helpers';

let root: string;
let dir: string;
let f32: LoadedModel;
beforeAll(async () => {
  await initBackend('wasm');
  root = await tempDir();
  dir = path.join(root, 'tiny');
  // C = 40: rows of 40 inputs pad to 48 (f16) and 64 (q8); two heads of 20
  await makeRun(dir, charTok(), { cfg: { nEmbd: 40, nHead: 2, nLayer: 2, blockSize: 48 } });
  f32 = await loadModelDir(dir, { weights: 'f32' });
});
afterAll(async () => {
  f32.model.dispose();
  await fs.rm(root, { recursive: true, force: true });
});

/** log P(ids[t+1] | ids[..t]) from the whole float32 model's forward. */
function f32Logprobs(ids: number[]): Float64Array {
  const logits = tf.tidy(() =>
    f32.model.lmHead(f32.model.hidden(tf.tensor2d([ids], undefined, 'int32'))),
  );
  const V = f32.config.vocabSize;
  const rows = logits.dataSync();
  logits.dispose();
  return Float64Array.from({ length: ids.length - 1 }, (_, t) => {
    return logSoftmax64(rows.subarray(t * V, (t + 1) * V))[ids[t + 1]!]!;
  });
}

describe('stored weights', () => {
  for (const [format, bound] of [
    ['f16', 1e-3],
    ['q8', 2e-2],
  ] as const) {
    it(`${format}: generates through the kernels, no float32 matrices, numerics within ${bound}`, async () => {
      const heapBefore = kernelHeap().bytesInUse;
      const loaded = await loadModelDir(dir, { weights: format });
      const { model } = loaded;
      try {
        expect(model.store?.format).toBe(format);
        // no tf variable of a matrix: only LayerNorms, biases and W_p
        expect(
          [...model.params.keys()].filter((n) =>
            /wte|c_attn\.weight|c_fc\.weight|c_proj\.weight/.test(n),
          ),
        ).toEqual([]);
        expect(loaded.weights).toMatchObject({
          format,
          choice: format,
          bytes: weightBytes(loaded.config, format),
        });

        // the reported numerics = the decoder's logprobs against the whole float32 model
        const n = loaded.weights.numerics!;
        expect(n).toMatchObject({ reference: 'f32', text: true, tokens: 15 });
        const { ids } = referenceIds(loaded.tokenizer, loaded.config);
        const dec = WasmDecoder.create(model)!;
        const got = dec.logprobs(ids);
        dec.dispose();
        const want = f32Logprobs(ids);
        const diffs = Array.from(got, (g, i) => Math.abs(g - want[i]!));
        expect(n.meanAbsDiff).toBeCloseTo(diffs.reduce((a, b) => a + b) / diffs.length, 4);
        expect(n.maxAbsDiff).toBeCloseTo(Math.max(...diffs), 4);
        expect(n.meanAbsDiff).toBeLessThan(bound);
        expect(n.maxAbsDiff).toBeLessThan(5 * bound);
        expect(n.meanAbsDiff).toBeGreaterThan(0); // it is not float32

        // generation: the decoder's kernels; greedy tokens mostly agree with float32
        const o = { maxNewTokens: 24, temperature: 0, seed: 1 };
        const a = await generate(model, loaded.tokenizer, 'the cat', o);
        const b = await generate(f32.model, f32.tokenizer, 'the cat', o);
        expect(a.ids).toHaveLength(24);
        const same = a.ids.findIndex((id, i) => id !== b.ids[i]);
        expect(same === -1 || same >= 4, `${a.ids} vs ${b.ids}`).toBe(true);

        // scoring: the decoder's kernels over each row, nothing dequantised into tf
        const items = [
          { context: [ids[0]!], target: ids.slice(1, 6) },
          { context: ids.slice(0, 3), target: ids.slice(3, 5) },
        ];
        // (the float32 model's first calls cache its causal masks)
        const r = await scoreText(f32.model, f32.tokenizer, REFERENCE_TEXT);
        const [u1, u2] = await scoreTargets(f32.model, items);
        const before = tf.memory().numTensors;
        const dequantize = vi.spyOn(model.store!, 'dequantize');
        const s = await scoreText(model, loaded.tokenizer, REFERENCE_TEXT);
        const [t1, t2] = await scoreTargets(model, items);
        expect(dequantize).not.toHaveBeenCalled();
        expect(tf.memory().numTensors).toBe(before);
        expect(maxAbsDiff(s.logprobs, r.logprobs)).toBeLessThan(5 * bound);
        expect(maxAbsDiff(t1!.logprobs, u1!.logprobs)).toBeLessThan(5 * bound);
        expect(maxAbsDiff(t2!.logprobs, u2!.logprobs)).toBeLessThan(5 * bound);

        await expect(model.weights()).rejects.toThrow(
          new RegExp(`held as ${format} for inference`),
        );
        expect(() => model.transformer).toThrow(/need it loaded as f32/);
      } finally {
        model.dispose();
      }
      expect(kernelHeap().bytesInUse).toBe(heapBefore);
    });
  }

  it('the float32 reference, streamed a slice at a time, is the whole float32 model', async () => {
    const { ids } = referenceIds(f32.tokenizer, f32.config);
    const f = await openGpt2Weights(path.join(dir, 'model.safetensors'), f32.config);
    try {
      const streamed = await referenceLogprobs(f, f32.config, ids);
      expect(maxAbsDiff(streamed, f32Logprobs(ids))).toBeLessThan(1e-4);
    } finally {
      await f.close();
    }
  });

  it('a tokenizer that cannot encode the reference text scores a fixed id sequence', () => {
    const tok = charTok('abc ');
    const r = referenceIds(tok, { blockSize: 8, vocabSize: 50 });
    expect(r.text).toBe(false);
    expect(r.ids).toHaveLength(8);
    expect(referenceIds(f32.tokenizer, f32.config).text).toBe(true);
  });
});

describe('choosing the format', () => {
  const GiB = 2 ** 30;
  const XL = { ...GPT2_SMALL, nLayer: 48, nHead: 25, nEmbd: 1600 };
  const wasm = (gib: number) => ({ bytes: gib * GiB, holder: 'the wasm backend' });

  it('auto: the widest that fits with room for the cache; else refuses with every number', () => {
    expect(planWeights(GPT2_SMALL, 'auto', wasm(4), 'gpt2', { packedCopies: true }).format).toBe(
      'f32',
    );
    expect(planWeights(XL, 'auto', wasm(4), 'gpt2-xl', { packedCopies: true }).format).toBe('f16');
    expect(planWeights(XL, 'auto', wasm(3), 'gpt2-xl').format).toBe('q8');
    expect(() => planWeights(XL, 'auto', wasm(2), 'gpt2-xl', { packedCopies: true })).toThrow(
      /^gpt2-xl needs [\d.]+ GiB at f32, [\d.]+ GiB at f16, [\d.]+ GiB at q8 \(weights, KV cache and activations\); the wasm backend has 2 GiB$/,
    );
    // gpt2-xl's weights: 5.8 GiB as float32, 2.9 as f16, 1.6 as q8
    expect(weightBytes(XL, 'f32') / GiB).toBeCloseTo(5.8, 1);
    expect(weightBytes(XL, 'f16') / GiB).toBeCloseTo(2.9, 1);
    expect(weightBytes(XL, 'q8') / GiB).toBeCloseTo(1.55, 1);
  });

  it('an explicit format that does not fit is refused, naming those that would', () => {
    expect(() => planWeights(XL, 'f32', wasm(4), 'gpt2-xl', { packedCopies: true })).toThrow(
      /^gpt2-xl needs [\d.]+ GiB at f32 \(weights, KV cache and activations\); the wasm backend has 4 GiB: load it as f16 \([\d.]+ GiB\) or q8 \([\d.]+ GiB\) instead$/,
    );
    expect(planWeights(XL, 'q8', wasm(4), 'gpt2-xl').format).toBe('q8');
  });

  it('loadModelDir refuses up front, before reading the weights', async () => {
    const xl = path.join(root, 'xl');
    await fs.mkdir(xl);
    await charTok().save(xl);
    await fs.writeFile(path.join(xl, 'config.json'), JSON.stringify(toHfConfigJson(XL)));
    await fs.writeFile(path.join(xl, 'model.safetensors'), 'not read');
    await expect(loadModelDir(xl, { weights: 'f32' })).rejects.toThrow(
      /^xl needs [\d.]+ GiB at f32 .*the wasm backend has 4 GiB: load it as f16 .* or q8 .* instead$/,
    );
  });
});
