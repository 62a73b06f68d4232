import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GPTConfig } from '../../../src/engine/model/config';
import { paramShapes } from '../../../src/engine/model/params';
import {
  fromHfConfigJson,
  loadGpt2Weights,
  readHfConfig,
  saveGpt2Weights,
  toHfConfigJson,
  writeHfConfig,
} from '../../../src/engine/checkpoint/gpt2';
import {
  CheckpointError,
  f16ToF32,
  f32ToF16,
  readSafetensors,
  writeSafetensors,
  type Tensor,
} from '../../../src/engine/checkpoint/safetensors';
import {
  expectSameFloats,
  checkpointError,
  GPT2_SMALL,
  GPT2_SMALL_PARAMS,
  randomParams,
  tempDir,
  tinyCheckpointConfig,
} from '../helpers';

let dir: string;
beforeAll(async () => {
  dir = await tempDir();
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

let counter = 0;
const fresh = (name = 'model') => path.join(dir, `${name}-${counter++}.safetensors`);

/** Writes params under the given name mapping; `more` adds or replaces raw tensors. */
async function writeRaw(
  params: Map<string, Float32Array>,
  cfg: GPTConfig,
  rename: (name: string) => string,
  more: Record<string, Tensor> = {},
): Promise<string> {
  const file = fresh('raw');
  const shapes = paramShapes(cfg);
  const tensors: Record<string, Tensor> = {};
  for (const [name, data] of params) {
    tensors[rename(name)] = { dtype: 'F32', shape: shapes.get(name)!, data };
  }
  await writeSafetensors(file, { ...tensors, ...more }, { format: 'pt' });
  return file;
}

describe('config.json', () => {
  const cfg = tinyCheckpointConfig({ dropout: 0.1 });

  it('writes a transformers-compatible GPT2LMHeadModel config', () => {
    const json = toHfConfigJson(cfg, {
      bos_token_id: 49,
      eos_token_id: 49,
      id2label: { 0: 'neg', 1: 'pos' },
      label2id: { neg: 0, pos: 1 },
    });
    expect(json).toEqual({
      activation_function: 'gelu_new',
      architectures: ['GPT2LMHeadModel'],
      attn_pdrop: 0.1,
      bos_token_id: 49,
      embd_pdrop: 0.1,
      eos_token_id: 49,
      id2label: { 0: 'neg', 1: 'pos' },
      initializer_range: 0.02,
      label2id: { neg: 0, pos: 1 },
      layer_norm_epsilon: 1e-5,
      model_type: 'gpt2',
      n_ctx: 16,
      n_embd: 8,
      n_head: 2,
      n_inner: null,
      n_layer: 2,
      n_positions: 16,
      resid_pdrop: 0.1,
      scale_attn_weights: true,
      tie_word_embeddings: true,
      torch_dtype: 'float32',
      transformers_version: '4.46.0',
      use_cache: true,
      vocab_size: 50,
    });
    const keys = Object.keys(json);
    expect(keys).toEqual([...keys].sort());
    expect(toHfConfigJson(cfg).eos_token_id).toBeNull();
  });

  it('refuses extras that would override a model field', () => {
    expect(() => toHfConfigJson(cfg, { n_embd: 16 })).toThrow(/n_embd/);
  });

  it('round-trips, also through a file', async () => {
    expect(fromHfConfigJson(toHfConfigJson(cfg), 'c.json')).toEqual(cfg);
    const gelu = tinyCheckpointConfig({ activation: 'gelu', layerNormEpsilon: 1e-6 });
    expect(fromHfConfigJson(toHfConfigJson(gelu), 'c.json')).toEqual(gelu);
    const file = path.join(dir, 'sub', 'config.json');
    await writeHfConfig(file, cfg, { eos_token_id: 0 });
    expect(await readHfConfig(file)).toEqual(cfg);
    expect(JSON.parse(await fs.readFile(file, 'utf8')).eos_token_id).toBe(0);
  });

  it("reads OpenAI GPT-2's published config", () => {
    const gpt2 = {
      activation_function: 'gelu_new',
      architectures: ['GPT2LMHeadModel'],
      attn_pdrop: 0.1,
      bos_token_id: 50256,
      embd_pdrop: 0.1,
      eos_token_id: 50256,
      initializer_range: 0.02,
      layer_norm_epsilon: 1e-5,
      model_type: 'gpt2',
      n_ctx: 1024,
      n_embd: 768,
      n_head: 12,
      n_layer: 12,
      n_positions: 1024,
      resid_pdrop: 0.1,
      summary_activation: null,
      summary_first_dropout: 0.1,
      summary_proj_to_labels: true,
      summary_type: 'cls_index',
      summary_use_proj: true,
      task_specific_params: { 'text-generation': { do_sample: true, max_length: 50 } },
      vocab_size: 50257,
    };
    const parsed = fromHfConfigJson(gpt2, 'config.json');
    expect(parsed).toEqual(GPT2_SMALL);
    let total = 0;
    for (const shape of paramShapes(parsed).values()) {
      total += shape.reduce((a, b) => a * b, 1);
    }
    expect(total).toBe(GPT2_SMALL_PARAMS);
  });

  it('applies HF defaults and aliases', () => {
    const minimal = { vocab_size: 10, n_ctx: 8, n_embd: 4, n_layer: 1, n_head: 2 };
    expect(fromHfConfigJson(minimal, 'c.json')).toMatchObject({
      blockSize: 8,
      activation: 'gelu_new',
      layerNormEpsilon: 1e-5,
      dropout: 0.1,
    });
    const tanh = { ...minimal, activation_function: 'gelu_pytorch_tanh' };
    expect(fromHfConfigJson(tanh, 'c.json').activation).toBe('gelu_new');
  });

  it('names the field in errors', () => {
    const base = toHfConfigJson(cfg);
    const bad = (patch: Record<string, unknown>) => {
      const json: Record<string, unknown> = { ...base, ...patch };
      for (const [k, v] of Object.entries(patch)) if (v === undefined) delete json[k];
      return () => fromHfConfigJson(json, 'dir/config.json');
    };
    expect(bad({ n_embd: undefined })).toThrow(/^dir\/config\.json: missing field 'n_embd'$/);
    expect(bad({ n_embd: 10, n_head: 4 })).toThrow(
      /n_embd \(10\) is not divisible by n_head \(4\)/,
    );
    expect(bad({ activation_function: 'relu' })).toThrow(/activation_function "relu"/);
    expect(bad({ model_type: 'llama' })).toThrow(/model_type "llama"/);
    expect(bad({ vocab_size: -3 })).toThrow(/'vocab_size' must be a positive integer/);
    expect(bad({ n_layer: 1.5 })).toThrow(/'n_layer'/);
    expect(bad({ n_positions: undefined, n_ctx: undefined })).toThrow(/'n_positions'/);
    expect(bad({ n_inner: 7 })).toThrow(/n_inner/);
    expect(bad({ tie_word_embeddings: false })).toThrow(/untied/);
    expect(bad({ layer_norm_epsilon: 'x' })).toThrow(/'layer_norm_epsilon'/);
    expect(() => fromHfConfigJson([], 'c.json')).toThrow(CheckpointError);
  });

  it('reports unreadable config files as CheckpointError', async () => {
    const file = path.join(dir, 'broken.json');
    await fs.writeFile(file, '{ not json');
    await expect(readHfConfig(file)).rejects.toThrow(/broken\.json: cannot read config/);
  });
});

describe('weights', () => {
  const cfg = tinyCheckpointConfig();
  const params = randomParams(cfg, 3);

  it('lists HF parameter shapes', () => {
    const shapes = paramShapes(cfg);
    expect(shapes.size).toBe(2 + 12 * cfg.nLayer + 2);
    expect(shapes.get('wte.weight')).toEqual([50, 8]);
    expect(shapes.get('wpe.weight')).toEqual([16, 8]);
    expect(shapes.get('h.1.attn.c_attn.weight')).toEqual([8, 24]);
    expect(shapes.get('h.1.attn.c_attn.bias')).toEqual([24]);
    expect(shapes.get('h.0.mlp.c_fc.weight')).toEqual([8, 32]);
    expect(shapes.get('h.0.mlp.c_proj.weight')).toEqual([32, 8]);
    expect([...shapes.keys()].at(-1)).toBe('ln_f.bias');
  });

  it('saves like save_pretrained and loads back exactly', async () => {
    const file = fresh();
    await saveGpt2Weights(file, cfg, params, { metadata: { step: '100' } });
    const raw = await readSafetensors(file);
    expect(raw.metadata).toEqual({ format: 'pt', step: '100' });
    expect([...raw.tensors.keys()].every((k) => k.startsWith('transformer.'))).toBe(true);
    expect(raw.tensors.has('lm_head.weight')).toBe(false);
    expect(raw.tensors.get('transformer.h.0.attn.c_attn.weight')!.shape).toEqual([8, 24]);

    const { params: back, extra } = await loadGpt2Weights(file, cfg);
    expect([...back.keys()]).toEqual([...paramShapes(cfg).keys()]);
    for (const [name, data] of params) expectSameFloats(back.get(name), data, name);
    expect(extra.size).toBe(0);
  });

  it('saves F16 and loads it as the rounded float32 values', async () => {
    const file = fresh();
    await saveGpt2Weights(file, cfg, params, { dtype: 'F16' });
    const raw = await readSafetensors(file);
    expect(raw.tensors.get('transformer.wte.weight')!.dtype).toBe('F16');
    const { params: back } = await loadGpt2Weights(file, cfg);
    const wte = params.get('wte.weight')!;
    expectSameFloats(back.get('wte.weight'), f16ToF32(f32ToF16(wte)), 'wte.weight');
  });

  it('carries classifier tensors', async () => {
    const file = fresh();
    const extra = new Map([
      [
        'classifier.weight',
        { shape: [8, 3], data: Float32Array.from({ length: 24 }, (_, i) => i) },
      ],
      ['classifier.bias', { shape: [3], data: Float32Array.from([1, 2, 3]) }],
    ]);
    await saveGpt2Weights(file, cfg, params, { extra });
    const raw = await readSafetensors(file);
    expect(raw.tensors.has('classifier.weight')).toBe(true);
    const loaded = await loadGpt2Weights(file, cfg);
    expect(loaded.extra).toEqual(extra);
  });

  it('rejects extras outside the allowed prefixes, and honours custom prefixes', async () => {
    const extra = new Map([['score.weight', { shape: [2, 8], data: new Float32Array(16) }]]);
    const err = await checkpointError(saveGpt2Weights(fresh(), cfg, params, { extra }));
    expect(err.message).toMatch(/extra tensor 'score\.weight'/);
    const file = fresh();
    await saveGpt2Weights(file, cfg, params, { extra, extraPrefixes: ['score.'] });
    await checkpointError(loadGpt2Weights(file, cfg));
    const loaded = await loadGpt2Weights(file, cfg, { extraPrefixes: ['score.'] });
    expect(loaded.extra.get('score.weight')!.shape).toEqual([2, 8]);
  });

  it('validates what it saves', async () => {
    const missing = new Map(params);
    missing.delete('ln_f.bias');
    expect((await checkpointError(saveGpt2Weights(fresh(), cfg, missing))).tensor).toBe(
      'ln_f.bias',
    );
    const short = new Map(params).set('wpe.weight', new Float32Array(3));
    expect((await checkpointError(saveGpt2Weights(fresh(), cfg, short))).message).toMatch(
      /'wpe\.weight' has 3 values, expected shape \[16, 8\]/,
    );
    const stray = new Map(params).set('h.9.ln_1.weight', new Float32Array(8));
    expect((await checkpointError(saveGpt2Weights(fresh(), cfg, stray))).tensor).toBe(
      'h.9.ln_1.weight',
    );
  });

  it('loads names without the transformer. prefix and skips attention buffers', async () => {
    const T = cfg.blockSize;
    const mask = new Float32Array(T * T).map((_, i) => (i % T <= Math.floor(i / T) ? 1 : 0));
    const file = await writeRaw(params, cfg, (n) => n, {
      'h.0.attn.bias': { dtype: 'F32', shape: [1, 1, T, T], data: mask },
      'h.0.attn.masked_bias': { dtype: 'F32', shape: [], data: Float32Array.of(-1e4) },
      'h.1.attn.bias': { dtype: 'BOOL', shape: [1, 1, T, T], data: new Uint8Array(T * T) },
    });
    const { params: back, extra } = await loadGpt2Weights(file, cfg);
    expect(back.get('h.1.mlp.c_fc.bias')).toEqual(params.get('h.1.mlp.c_fc.bias'));
    expect(extra.size).toBe(0);
  });

  it('accepts a tied lm_head.weight and rejects an untied one', async () => {
    const wte = params.get('wte.weight')!;
    const tied = await writeRaw(params, cfg, (n) => 'transformer.' + n, {
      'lm_head.weight': { dtype: 'F32', shape: [50, 8], data: wte.slice() },
    });
    expect((await loadGpt2Weights(tied, cfg)).params.size).toBe(paramShapes(cfg).size);

    const other = wte.slice();
    other[7]! += 1;
    const untied = await writeRaw(params, cfg, (n) => 'transformer.' + n, {
      'lm_head.weight': { dtype: 'F32', shape: [50, 8], data: other },
    });
    const err = await checkpointError(loadGpt2Weights(untied, cfg));
    expect(err.message).toMatch(/untied output heads are not supported/);
    expect(err.tensor).toBe('lm_head.weight');
  });

  it('names a missing tensor', async () => {
    const some = new Map(params);
    some.delete('h.1.ln_2.bias');
    const file = await writeRaw(some, cfg, (n) => 'transformer.' + n);
    const err = await checkpointError(loadGpt2Weights(file, cfg));
    expect(err.message).toMatch(/missing tensor h\.1\.ln_2\.bias$/);
    expect(err.tensor).toBe('h.1.ln_2.bias');
  });

  it('reports a wrong shape as expected vs got', async () => {
    const shapes = paramShapes(cfg);
    const tensors: Record<string, Tensor> = {};
    for (const [name, data] of params) {
      tensors[name] = { dtype: 'F32', shape: shapes.get(name)!, data };
    }
    tensors['h.0.attn.c_proj.weight'] = {
      dtype: 'F32',
      shape: [4, 16],
      data: new Float32Array(64),
    };
    const file = fresh();
    await writeSafetensors(file, tensors);
    const err = await checkpointError(loadGpt2Weights(file, cfg));
    expect(err.message).toMatch(
      /tensor 'h\.0\.attn\.c_proj\.weight' has shape \[4, 16\], expected \[8, 8\]$/,
    );
    expect(err.tensor).toBe('h.0.attn.c_proj.weight');
  });

  it('says when config.json disagrees with otherwise consistent weights', async () => {
    const file = fresh();
    await saveGpt2Weights(file, cfg, params);

    const wider = await checkpointError(loadGpt2Weights(file, tinyCheckpointConfig({ nEmbd: 16 })));
    expect(wider.message).toMatch(/'wte\.weight' has shape \[50, 8\], expected \[50, 16\]/);
    expect(wider.message).toMatch(
      /config disagrees with the weights: it says n_embd=16, but the weights are for n_embd=8/,
    );

    const vocab = await checkpointError(
      loadGpt2Weights(file, tinyCheckpointConfig({ vocabSize: 60 })),
    );
    expect(vocab.message).toMatch(/vocab_size=60, but the weights are for vocab_size=50/);

    const deeper = await checkpointError(
      loadGpt2Weights(file, tinyCheckpointConfig({ nLayer: 3 })),
    );
    expect(deeper.message).toMatch(/missing tensors h\.2\.ln_1\.weight, .* and 7 more/);
    expect(deeper.message).toMatch(/n_layer=3, but the weights are for n_layer=2/);

    const shallower = await checkpointError(
      loadGpt2Weights(file, tinyCheckpointConfig({ nLayer: 1 })),
    );
    expect(shallower.message).toMatch(/unexpected tensors h\.1\./);
    expect(shallower.message).toMatch(/n_layer=1, but the weights are for n_layer=2/);
  });

  it('names unexpected tensors', async () => {
    const file = await writeRaw(params, cfg, (n) => 'transformer.' + n, {
      'foo.weight': { dtype: 'F32', shape: [2], data: new Float32Array(2) },
    });
    const err = await checkpointError(loadGpt2Weights(file, cfg));
    expect(err.message).toMatch(/unexpected tensor foo\.weight$/);
    expect(err.tensor).toBe('foo.weight');
  });

  it('rejects integer parameters and names appearing with and without the prefix', async () => {
    const ints = await writeRaw(params, cfg, (n) => n, {
      'ln_f.bias': { dtype: 'I32', shape: [8], data: new Int32Array(8) },
    });
    expect((await checkpointError(loadGpt2Weights(ints, cfg))).message).toMatch(
      /'ln_f\.bias' has dtype I32/,
    );
    const dup = await writeRaw(params, cfg, (n) => n, {
      'transformer.ln_f.bias': { dtype: 'F32', shape: [8], data: new Float32Array(8) },
    });
    expect((await checkpointError(loadGpt2Weights(dup, cfg))).message).toMatch(
      /'ln_f\.bias' appears both with and without/,
    );
  });
});
