/**
 * GPT-1's own layout (config.layout 'gpt1'): post-LayerNorm blocks, x = LN(x + attn(x)),
 * x = LN(x + mlp(x)), and no final LayerNorm. Its config round trip (old configs are GPT-2's),
 * its parameter count, the gpt1 preset, KV-cached generation (tf ops and the wasm decoder, f32 and
 * f16 weights) against the full forward, and its exports: an openai-gpt folder, no GGUF. The
 * forward and gradients against PyTorch are in ./reference.test.ts.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../../src/engine/tf';
import { initBackend } from '../../../src/engine/backend';
import { exportModel } from '../../../src/engine/checkpoint/export';
import {
  fromHfConfigJson,
  openGpt2Weights,
  toHfConfigJson,
} from '../../../src/engine/checkpoint/gpt2';
import { importModel } from '../../../src/engine/checkpoint/import';
import { loadModelDir, type LoadedModel } from '../../../src/engine/checkpoint/modelDir';
import { SafetensorsReader } from '../../../src/engine/checkpoint/safetensors';
import { generate } from '../../../src/engine/generate';
import { layoutOf } from '../../../src/engine/model/config';
import { GPT } from '../../../src/engine/model/gpt';
import { countParams, paramShapes } from '../../../src/engine/model/params';
import { estimateTrainingMemory, presetConfig } from '../../../src/engine/model/presets';
import { WasmDecoder } from '../../../src/engine/model/wasmDecoder';
import { weightBytes } from '../../../src/engine/weights/format';
import { referenceIds, referenceLogprobs } from '../../../src/engine/weights/numerics';
import { charTok, makeRun } from '../checkpoint/fixtures';
import {
  logSoftmax64,
  maxAbs,
  maxAbsDiff,
  randomIds,
  randomWeights,
  removeDir,
  tempDir,
  tinyConfig,
} from '../helpers';

let root: string;
let runDir: string;
let f32: LoadedModel;
beforeAll(async () => {
  await initBackend('wasm');
  root = await tempDir();
  runDir = path.join(root, 'gpt1-run');
  await makeRun(runDir, charTok(), {
    cfg: { layout: 'gpt1', nEmbd: 40, nHead: 2, nLayer: 2, blockSize: 24 },
  });
  f32 = await loadModelDir(runDir, { weights: 'f32' });
});
afterAll(async () => {
  f32.model.dispose();
  await removeDir(root);
});

/** Logits [n, V] of every position from the plain forward (hidden → tied head). */
function fullLogits(model: GPT, ids: number[]): Float32Array {
  return tf.tidy(() =>
    model.lmHead(model.hidden(tf.tensor2d([ids], undefined, 'int32'))).dataSync(),
  ) as Float32Array;
}

describe('config', () => {
  const gpt1 = tinyConfig({ layout: 'gpt1' });

  it('round-trips the layout through config.json; a config without it is GPT-2', () => {
    const json = toHfConfigJson(gpt1);
    expect(json.layout).toBe('gpt1');
    expect(json.model_type).toBe('gpt2');
    expect(fromHfConfigJson(json, 'c.json')).toEqual(gpt1);
    // GPT-2's config.json stays exactly GPT-2's: no field, and read back as 'gpt2'
    const gpt2 = toHfConfigJson(tinyConfig());
    expect('layout' in gpt2).toBe(false);
    expect(layoutOf(fromHfConfigJson(gpt2, 'c.json'))).toBe('gpt2');
    expect(layoutOf(fromHfConfigJson({ ...gpt2, layout: 'gpt2' }, 'c.json'))).toBe('gpt2');
    expect(() => fromHfConfigJson({ ...gpt2, layout: 'post' }, 'dir/config.json')).toThrow(
      /^dir\/config\.json: field 'layout' must be "gpt1" or "gpt2", got "post"$/,
    );
  });

  it('a saved GPT-1-layout model loads back with its layout, and has no ln_f', async () => {
    expect(f32.config.layout).toBe('gpt1');
    expect([...f32.model.params.keys()].some((n) => n.startsWith('ln_f'))).toBe(false);
    const reader = await SafetensorsReader.open(path.join(runDir, 'model.safetensors'));
    try {
      expect(reader.entries.map((e) => e.name).some((n) => n.includes('ln_f'))).toBe(false);
      expect(reader.entries.map((e) => e.name)).toContain('transformer.h.1.ln_2.weight');
    } finally {
      await reader.close();
    }
  });
});

describe('parameters', () => {
  it('GPT-1 counts 2C fewer (no final LayerNorm), as its tensors and the estimate do', () => {
    const gpt2 = tinyConfig({ nEmbd: 24, nHead: 3 });
    const gpt1 = { ...gpt2, layout: 'gpt1' as const };
    expect(countParams(gpt2) - countParams(gpt1)).toBe(2 * 24);
    expect([...paramShapes(gpt1).keys()].filter((n) => n.startsWith('ln_f'))).toEqual([]);
    const model = GPT.init(gpt1, 1);
    try {
      const sum = model.variables.reduce((a, v) => a + v.size, 0);
      expect(model.numParams()).toBe(sum);
      expect(model.numParams()).toBe(countParams(gpt1));
    } finally {
      model.dispose();
    }
    expect(estimateTrainingMemory(gpt1, 4).params).toBe(countParams(gpt1));
    // its backward keeps one more [B·T, C] per block (the block's input), more than ln_f's 2C
    expect(estimateTrainingMemory(gpt1, 4).totalBytes).toBeGreaterThan(
      estimateTrainingMemory(gpt2, 4).totalBytes,
    );
  });

  it("the gpt1 preset is GPT-1's: 12 × 768, context 512, post-LayerNorm, 116.5M for 40478 tokens", () => {
    const cfg = presetConfig('gpt1', 40478);
    expect(cfg).toMatchObject({ nLayer: 12, nHead: 12, nEmbd: 768, blockSize: 512 });
    expect(cfg.layout).toBe('gpt1');
    expect(countParams(cfg)).toBe(116_534_784);
    expect(layoutOf(presetConfig('tiny', 65))).toBe('gpt2');
    expect(layoutOf(presetConfig('small', 65))).toBe('gpt2');
  });
});

describe('training', () => {
  it('lossAndGrads, with dropout, frees everything it held, also when stopped between blocks', async () => {
    const cfg = tinyConfig({ layout: 'gpt1', dropout: 0.1, nLayer: 3 });
    const model = new GPT(cfg, randomWeights(cfg, 7));
    const x = tf.tensor2d(randomIds(32, cfg.vocabSize, 1), [2, 16], 'int32');
    const y = tf.tensor2d(randomIds(32, cfg.vocabSize, 2), [2, 16], 'int32');
    const step = async (between?: () => Promise<void>) => {
      const r = await model.lossAndGrads(x, model.lmLoss(y), { train: true, seed: 3, between });
      tf.dispose([r.loss, ...r.grads.values(), ...Object.values(r.report)]);
      return r;
    };
    try {
      await step(); // warm the caches (ones, masks)
      const before = tf.memory().numTensors;
      const r = await step();
      expect([...r.grads.keys()].sort()).toEqual([...model.params.keys()].sort());
      expect(tf.memory().numTensors).toBe(before);
      let n = 0;
      const stop = async () => {
        if (++n === 4) throw new Error('stopped');
      };
      await expect(step(stop)).rejects.toThrow('stopped');
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      tf.dispose([x, y]);
      model.dispose();
    }
  });
});

describe('generation', () => {
  it('the KV cache, one token at a time, gives the full forward', () => {
    const cfg = tinyConfig({ layout: 'gpt1', vocabSize: 23, blockSize: 10, nEmbd: 12, nHead: 3 });
    const model = new GPT(cfg, randomWeights(cfg, 5));
    try {
      const ids = randomIds(cfg.blockSize, cfg.vocabSize, 6);
      const want = fullLogits(model, ids);
      const V = cfg.vocabSize;
      let cache: Parameters<GPT['forwardCached']>[1] = null;
      for (const [t, id] of ids.entries()) {
        const x = tf.tensor2d([[id]], undefined, 'int32');
        const r = model.forwardCached(x, cache, true);
        if (cache) tf.dispose([...cache.k, ...cache.v]);
        cache = r.cache;
        const got = r.logits.dataSync() as Float32Array;
        const row = want.subarray(t * V, (t + 1) * V);
        expect(maxAbsDiff(got, row), `position ${t}`).toBeLessThan(1e-5 * Math.max(1, maxAbs(row)));
        tf.dispose([x, r.logits]);
      }
      if (cache) tf.dispose([...cache.k, ...cache.v]);
    } finally {
      model.dispose();
    }
  });

  it('generate with the cache (the wasm decoder) = without it; the decoder scores as the forward', async () => {
    const { model, tokenizer } = f32;
    expect(WasmDecoder.create(model)).not.toBeNull();
    for (const o of [{ temperature: 0 }, { temperature: 1, seed: 4 }]) {
      // 40 new tokens after the prompt: the window (24) slides
      const run = (useCache: boolean) =>
        generate(model, tokenizer, 'It is a truth', { ...o, maxNewTokens: 40, useCache });
      const cached = await run(true);
      const plain = await run(false);
      expect(cached.ids).toHaveLength(40);
      expect(cached.ids).toEqual(plain.ids);
    }
    const ids = randomIds(f32.config.blockSize, f32.config.vocabSize, 8);
    const dec = WasmDecoder.create(model, { chunkRows: 5 })!;
    try {
      const logits = fullLogits(model, ids);
      const V = f32.config.vocabSize;
      const want = ids
        .slice(1)
        .map((id, t) => logSoftmax64(logits.subarray(t * V, (t + 1) * V))[id]!);
      expect(maxAbsDiff(dec.logprobs(ids), want)).toBeLessThan(1e-4);
    } finally {
      dec.dispose();
    }
  });

  it('f16 weights: the streamed float32 reference is the whole model, and f16 stays near it', async () => {
    const { ids } = referenceIds(f32.tokenizer, f32.config);
    const f = await openGpt2Weights(path.join(runDir, 'model.safetensors'), f32.config);
    const logits = fullLogits(f32.model, ids);
    const V = f32.config.vocabSize;
    const want = ids
      .slice(1)
      .map((id, t) => logSoftmax64(logits.subarray(t * V, (t + 1) * V))[id]!);
    try {
      expect(maxAbsDiff(await referenceLogprobs(f, f32.config, ids), want)).toBeLessThan(1e-4);
    } finally {
      await f.close();
    }
    const f16 = await loadModelDir(runDir, { weights: 'f16' });
    try {
      expect(f16.model.store?.format).toBe('f16');
      expect(f16.weights.bytes).toBe(weightBytes(f16.config, 'f16'));
      expect(f16.model.weightBytes()).toBe(weightBytes(f16.config, 'f16'));
      expect(f16.weights.numerics!.maxAbsDiff).toBeLessThan(5e-3);
      const dec = WasmDecoder.create(f16.model)!;
      expect(maxAbsDiff(dec.logprobs(ids), want)).toBeLessThan(5e-3);
      dec.dispose();
    } finally {
      f16.model.dispose();
    }
  });
});

describe('export and import', () => {
  it('Hugging Face export writes an openai-gpt folder (OpenAIGPTLMHeadModel names, no ln_f)', async () => {
    const out = path.join(root, 'hf');
    const r = await exportModel({ model: runDir, out, format: 'hf' });
    expect(r.notes.join(' ')).toMatch(/post-LayerNorm.*openai-gpt folder \(OpenAIGPTLMHeadModel\)/);
    const config = JSON.parse(await fs.readFile(path.join(out, 'config.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(config).toMatchObject({
      architectures: ['OpenAIGPTLMHeadModel'],
      model_type: 'openai-gpt',
      n_positions: 24,
      n_ctx: 24,
      n_embd: 40,
      n_layer: 2,
      n_head: 2,
      afn: 'gelu_new',
      vocab_size: f32.config.vocabSize,
    });
    expect('activation_function' in config).toBe(false);
    const reader = await SafetensorsReader.open(path.join(out, 'model.safetensors'));
    try {
      const names = reader.entries.map((e) => e.name);
      expect(names).toContain('transformer.tokens_embed.weight');
      expect(names).toContain('transformer.positions_embed.weight');
      expect(names).toContain('transformer.h.0.attn.c_attn.weight');
      expect(names).toContain('transformer.h.1.ln_2.bias');
      expect(names.filter((n) => /wte|wpe|ln_f|lm_head/.test(n))).toEqual([]);
      // the same values, under their openai-gpt names
      const wte = await reader.readFloat32('transformer.tokens_embed.weight');
      expect(maxAbsDiff(wte, await f32.model.p('wte.weight').data())).toBe(0);
    } finally {
      await reader.close();
    }
    const card = await fs.readFile(path.join(out, 'README.md'), 'utf8');
    expect(card).toMatch(/OpenAIGPTLMHeadModel\.from_pretrained/);
    expect(card).toMatch(/post-LayerNorm/);

    // and it reads back: loaded as it is, or imported as a model folder of ours
    const ids = randomIds(8, f32.config.vocabSize, 9);
    const imported = path.join(root, 'hf-imported');
    await importModel({ from: out, out: imported });
    for (const folder of [out, imported]) {
      const back = await loadModelDir(folder, { weights: 'f32' });
      try {
        expect(back.config, folder).toEqual(f32.config);
        expect(maxAbsDiff(fullLogits(back.model, ids), fullLogits(f32.model, ids))).toBe(0);
      } finally {
        back.model.dispose();
      }
    }
    const ours = JSON.parse(await fs.readFile(path.join(imported, 'config.json'), 'utf8')) as {
      model_type: string;
      layout: string;
    };
    expect([ours.model_type, ours.layout]).toEqual(['gpt2', 'gpt1']);
  });

  it("reads openai-gpt's config: GPT-1's layout, afn (transformers' default gelu)", () => {
    const json = {
      model_type: 'openai-gpt',
      vocab_size: 40,
      n_positions: 8,
      n_embd: 4,
      n_layer: 1,
      n_head: 2,
    };
    expect(fromHfConfigJson(json, 'c.json')).toMatchObject({ layout: 'gpt1', activation: 'gelu' });
    expect(fromHfConfigJson({ ...json, afn: 'gelu_new' }, 'c.json').activation).toBe('gelu_new');
    expect(() => fromHfConfigJson({ ...json, afn: 'relu' }, 'c.json')).toThrow(/afn "relu"/);
    expect(() => fromHfConfigJson({ ...json, layout: 'gpt2' }, 'c.json')).toThrow(
      /'layout' "gpt2" contradicts model_type "openai-gpt"/,
    );
    expect(() => fromHfConfigJson({ ...json, model_type: 'llama' }, 'c.json')).toThrow(
      /model_type "llama" is not supported \(expected "gpt2" or "openai-gpt"\)/,
    );
  });

  it('GGUF is refused with the reason; an import of the folder keeps its layout', async () => {
    await expect(
      exportModel({ model: runDir, out: path.join(root, 'gguf'), format: 'gguf' }),
    ).rejects.toThrow(/as GGUF: the model has GPT-1's post-LayerNorm layout .* Export --format hf/);
    const out = path.join(root, 'imported');
    const r = await importModel({ from: runDir, out });
    expect(r.params).toBe(countParams(f32.config));
    const back = await loadModelDir(out, { weights: 'f32' });
    try {
      expect(back.config).toEqual(f32.config);
      const ids = randomIds(8, f32.config.vocabSize, 9);
      expect(maxAbsDiff(fullLogits(back.model, ids), fullLogits(f32.model, ids))).toBe(0);
    } finally {
      back.model.dispose();
    }
  });
});
