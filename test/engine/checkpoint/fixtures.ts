/**
 * Model folders for the export/import tests: a GPT Studio run (config.json, model.safetensors,
 * tokenizer, state.json and its corpus), and folders laid out the way Hugging Face's own GPT-2
 * checkpoints are (no `transformer.` prefix, causal-mask buffers, vocab.json + merges.txt).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { GPTConfig } from '../../../src/engine/model/config';
import { paramShapes } from '../../../src/engine/model/params';
import {
  saveGpt2Weights,
  toHfConfigJson,
  type ExtraTensor,
} from '../../../src/engine/checkpoint/gpt2';
import { writeSafetensors, type Tensor } from '../../../src/engine/checkpoint/safetensors';
import type { GPT } from '../../../src/engine/model/gpt';
import * as tf from '../../../src/engine/tf';
import { CharTokenizer, trainTokenizer, type Tokenizer } from '../../../src/engine/tokenizer';
import { GPT2_DIR, ROOT } from '../tokenizer/helpers';
import { randomParams, rng, tinyCheckpointConfig } from '../helpers';

export { GPT2_DIR, ROOT };

export const CORPUS_TEXT =
  'It is a truth universally acknowledged, that a single man in possession of a good fortune, ' +
  'must be in want of a wife.\n床前明月光，疑是地上霜。\n' +
  'However little known the feelings or views of such a man may be on his first entering a ' +
  'neighbourhood, this truth is so well fixed in the minds of the surrounding families.\n';

export function charTok(text = CORPUS_TEXT): CharTokenizer {
  return CharTokenizer.fromCodePoints(Array.from(text, (c) => c.codePointAt(0)!));
}

export async function bpeTok(vocabSize = 300): Promise<Tokenizer> {
  async function* corpus() {
    yield CORPUS_TEXT.repeat(3);
  }
  return trainTokenizer({ kind: 'bpe', vocabSize, corpus: corpus() });
}

export interface RunFixture {
  dir: string;
  cfg: GPTConfig;
  params: Map<string, Float32Array>;
  corpusFile: string;
}

/** A folder like a finished pretraining run: model files + state.json naming its corpus. */
export async function makeRun(
  dir: string,
  tokenizer: Tokenizer,
  opts: {
    cfg?: Partial<GPTConfig>;
    state?: boolean;
    extra?: Map<string, ExtraTensor>;
    configExtra?: Record<string, unknown>;
    seed?: number;
  } = {},
): Promise<RunFixture> {
  const cfg = tinyCheckpointConfig({ vocabSize: tokenizer.vocabSize, ...opts.cfg });
  const params = randomParams(cfg, opts.seed ?? 3);
  await fs.mkdir(dir, { recursive: true });
  await tokenizer.save(dir);
  const eos = tokenizer.eosId ?? null;
  await fs.writeFile(
    path.join(dir, 'config.json'),
    JSON.stringify(
      toHfConfigJson(cfg, { bos_token_id: eos, eos_token_id: eos, ...opts.configExtra }),
      null,
      2,
    ),
  );
  await saveGpt2Weights(path.join(dir, 'model.safetensors'), cfg, params, {
    ...(opts.extra ? { extra: opts.extra } : {}),
  });
  const corpusFile = path.join(dir, '..', `${path.basename(dir)}-corpus.txt`);
  await fs.writeFile(corpusFile, CORPUS_TEXT.repeat(40));
  if (opts.state !== false) {
    const state = {
      version: 1,
      step: 120,
      rng: [1, 2, 3, 4],
      adamT: 120,
      train: {
        batchSize: 4,
        gradAccum: 2,
        steps: 200,
        lr: 0.003,
        minLr: 0.0003,
        warmup: 10,
        weightDecay: 0.1,
        beta1: 0.9,
        beta2: 0.99,
        gradClip: 1,
        evalEvery: 50,
        evalIters: 5,
        saveEvery: 100,
        sampleEvery: 100,
        sampleTokens: 50,
        seed: 7,
        valFraction: 0.1,
      },
      tokens: { dtype: 'uint16', train: 1000, val: 100 },
      corpus: [{ path: corpusFile, bytes: (await fs.stat(corpusFile)).size }],
      trainLoss: 2.3456,
      valLoss: 2.5678,
      bestValLoss: 2.5,
      elapsedMs: 1000,
      status: 'cancelled',
      backend: 'wasm',
      createdAt: '2026-01-02T03:04:05.000Z',
      updatedAt: '2026-01-02T04:05:06.000Z',
    };
    await fs.writeFile(path.join(dir, 'state.json'), JSON.stringify(state));
  }
  return { dir, cfg, params, corpusFile };
}

/** OpenAI's published GPT-2 config.json, resized. */
export function openAiConfig(cfg: GPTConfig): Record<string, unknown> {
  return {
    activation_function: cfg.activation,
    architectures: ['GPT2LMHeadModel'],
    attn_pdrop: 0.1,
    bos_token_id: 50256,
    embd_pdrop: 0.1,
    eos_token_id: 50256,
    initializer_range: 0.02,
    layer_norm_epsilon: cfg.layerNormEpsilon,
    model_type: 'gpt2',
    n_ctx: cfg.blockSize,
    n_embd: cfg.nEmbd,
    n_head: cfg.nHead,
    n_layer: cfg.nLayer,
    n_positions: cfg.blockSize,
    resid_pdrop: 0.1,
    summary_activation: null,
    summary_first_dropout: 0.1,
    summary_proj_to_labels: true,
    summary_type: 'cls_index',
    summary_use_proj: true,
    task_specific_params: { 'text-generation': { do_sample: true, max_length: 50 } },
    vocab_size: cfg.vocabSize,
  };
}

/**
 * A folder laid out like the Hub's `gpt2`: tensors named without `transformer.` (or with, when
 * `prefix`), the causal-mask buffers h.N.attn.bias [1,1,T,T] and h.N.attn.masked_bias [], and
 * GPT-2's own vocab.json + merges.txt.
 */
export async function makeHubGpt2(
  dir: string,
  cfg: GPTConfig,
  opts: { prefix?: boolean; buffers?: boolean; dtype?: 'F32' | 'F16'; seed?: number } = {},
): Promise<Map<string, Float32Array>> {
  const params = randomParams(cfg, opts.seed ?? 11);
  await fs.mkdir(dir, { recursive: true });
  await fs.copyFile(path.join(GPT2_DIR, 'encoder.json'), path.join(dir, 'vocab.json'));
  await fs.copyFile(path.join(GPT2_DIR, 'vocab.bpe'), path.join(dir, 'merges.txt'));
  await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(openAiConfig(cfg), null, 2));
  const pre = opts.prefix ? 'transformer.' : '';
  const tensors = new Map<string, Tensor>();
  for (const [name, shape] of paramShapes(cfg)) {
    tensors.set(pre + name, { dtype: opts.dtype ?? 'F32', shape, data: params.get(name)! });
  }
  if (opts.buffers !== false) {
    const T = cfg.blockSize;
    const mask = new Float32Array(T * T);
    for (let i = 0; i < T; i++) for (let j = 0; j <= i; j++) mask[i * T + j] = 1;
    for (let i = 0; i < cfg.nLayer; i++) {
      tensors.set(`${pre}h.${i}.attn.bias`, { dtype: 'F32', shape: [1, 1, T, T], data: mask });
      tensors.set(`${pre}h.${i}.attn.masked_bias`, {
        dtype: 'F32',
        shape: [],
        data: new Float32Array([-1e4]),
      });
    }
  }
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  return params;
}

/** A small GPT-2-vocabulary config (50257 tokens, tiny everything else). */
export function gpt2VocabConfig(overrides: Partial<GPTConfig> = {}): GPTConfig {
  return tinyCheckpointConfig({ vocabSize: 50257, ...overrides });
}

export const randomIdsFor = (n: number, vocab: number, seed: number): number[] => {
  const r = rng(seed);
  return Array.from({ length: n }, () => Math.floor(r() * vocab));
};

export async function exists(p: string): Promise<boolean> {
  return fs
    .access(p)
    .then(() => true)
    .catch(() => false);
}

/** The model's logits for one row of ids, [T·V]. */
export async function modelLogits(model: GPT, ids: number[]): Promise<Float32Array> {
  const x = tf.tensor2d([ids], undefined, 'int32');
  const l = tf.tidy(() => model.lmHead(model.hidden(x)));
  const out = (await l.data()) as Float32Array;
  tf.dispose([x, l]);
  return out;
}
