/**
 * Hugging Face GPT-2 checkpoints: config.json for GPT2LMHeadModel and its model.safetensors.
 * Parameters are keyed by HF names without the `transformer.` prefix, in HF layouts (Conv1D
 * weights are [in, out]); the LM head is tied to wte.
 */
import { promises as fs } from 'node:fs';
import {
  DEFAULT_LAYER_NORM_EPSILON,
  LAYOUTS,
  layoutOf,
  type Activation,
  type GPTConfig,
  type Layout,
} from '../model/config';
import { writeJsonAtomic } from '../util/atomic';
import { configSizeProblem, machineMemoryBudget, type MemoryBudget } from './config';
import { CheckpointError } from './safetensors';

export const TRANSFORMERS_VERSION = '4.46.0';

/** A tensor carried alongside the GPT-2 parameters, e.g. classifier.weight [C, K]. */
export interface ExtraTensor {
  shape: number[];
  data: Float32Array;
}

export interface Gpt2Weights {
  params: Map<string, Float32Array>;
  extra: Map<string, ExtraTensor>;
}

// ---------------------------------------------------------------------------------------------
// config.json

export interface HfConfigExtra {
  bos_token_id?: number | null;
  eos_token_id?: number | null;
  /** Anything else, e.g. id2label / label2id for a classifier. */
  [field: string]: unknown;
}

/**
 * A transformers-compatible config.json for GPT2LMHeadModel, keys sorted as HF writes them. A
 * post-LayerNorm model (GPT-1's layout) also gets `layout: "gpt1"`, which only this engine reads:
 * transformers' GPT-2 has no such layout (`export --format hf` writes it as openai-gpt instead).
 */
export function toHfConfigJson(cfg: GPTConfig, extra: HfConfigExtra = {}): Record<string, unknown> {
  const core: Record<string, unknown> = {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    vocab_size: cfg.vocabSize,
    n_positions: cfg.blockSize,
    n_ctx: cfg.blockSize,
    n_embd: cfg.nEmbd,
    n_layer: cfg.nLayer,
    n_head: cfg.nHead,
    n_inner: null,
    activation_function: cfg.activation,
    resid_pdrop: cfg.dropout,
    embd_pdrop: cfg.dropout,
    attn_pdrop: cfg.dropout,
    layer_norm_epsilon: cfg.layerNormEpsilon,
    initializer_range: 0.02,
    tie_word_embeddings: true,
    scale_attn_weights: true,
    use_cache: true,
    torch_dtype: 'float32',
    transformers_version: TRANSFORMERS_VERSION,
    // a masked-LM (BERT-style) model says so; a GPT's config stays GPT-2's own
    ...(cfg.objective === 'mlm' ? { objective: 'mlm' } : {}),
    // GPT-1's post-LayerNorm layout says so; without the field a config is GPT-2's
    ...(layoutOf(cfg) === 'gpt1' ? { layout: 'gpt1' } : {}),
  };
  for (const key of Object.keys(extra)) {
    if (key in core) throw new Error(`config extra '${key}' would override a model field`);
  }
  const all = { bos_token_id: null, eos_token_id: null, ...extra, ...core };
  return Object.fromEntries(Object.entries(all).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

const ACTIVATIONS: Record<string, Activation> = {
  gelu_new: 'gelu_new',
  gelu_pytorch_tanh: 'gelu_new',
  gelu: 'gelu',
};

/**
 * Parses and checks a config.json. Its sizes are checked against `budget` (default: the
 * machine's RAM; readHfConfig passes the running backend's) before anything is sized from them.
 */
export function fromHfConfigJson(
  json: unknown,
  file: string,
  budget: MemoryBudget = machineMemoryBudget(),
): GPTConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new CheckpointError('config is not a JSON object', file);
  }
  const c = json as Record<string, unknown>;
  const fail = (detail: string) => new CheckpointError(detail, file);

  // openai-gpt (OpenAIGPTLMHeadModel, as `export --format hf` writes a GPT-1-layout model) is
  // GPT-2's parameters in GPT-1's post-LayerNorm layout, its activation named `afn`
  const openaiGpt = c.model_type === 'openai-gpt';
  if (c.model_type !== undefined && c.model_type !== 'gpt2' && !openaiGpt) {
    throw fail(
      `model_type ${JSON.stringify(c.model_type)} is not supported (expected "gpt2" or "openai-gpt")`,
    );
  }
  if (openaiGpt && c.layout !== undefined && c.layout !== 'gpt1') {
    throw fail(`field 'layout' ${JSON.stringify(c.layout)} contradicts model_type "openai-gpt"`);
  }
  const int = (field: string, fallback?: string): number => {
    const v = c[field] ?? (fallback === undefined ? undefined : c[fallback]);
    if (v === undefined || v === null) throw fail(`missing field '${field}'`);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
      throw fail(`field '${field}' must be a positive integer, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const num = (field: string, fallback: number): number => {
    const v = c[field] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw fail(`field '${field}' must be a non-negative number, got ${JSON.stringify(v)}`);
    }
    return v;
  };

  const vocabSize = int('vocab_size');
  const blockSize = int('n_positions', 'n_ctx');
  const nEmbd = int('n_embd');
  const nLayer = int('n_layer');
  const nHead = int('n_head');
  if (nEmbd % nHead !== 0) {
    throw fail(`n_embd (${nEmbd}) is not divisible by n_head (${nHead})`);
  }
  // before anything is sized from it: weights that cannot fit, or a field past any sane bound
  const tooBig = configSizeProblem({ vocabSize, blockSize, nLayer, nHead, nEmbd }, budget);
  if (tooBig) throw fail(tooBig);
  if (c.n_inner !== undefined && c.n_inner !== null && c.n_inner !== 4 * nEmbd) {
    throw fail(`n_inner ${JSON.stringify(c.n_inner)} is not supported (only 4 * n_embd)`);
  }
  const actField = openaiGpt ? 'afn' : 'activation_function';
  // transformers' defaults: GPT2Config gelu_new, OpenAIGPTConfig gelu
  const act = c[actField] ?? (openaiGpt ? 'gelu' : 'gelu_new');
  const activation = typeof act === 'string' ? ACTIVATIONS[act] : undefined;
  if (activation === undefined) {
    throw fail(
      `${actField} ${JSON.stringify(act)} is not supported (use gelu_new, gelu_pytorch_tanh or gelu)`,
    );
  }
  if (c.tie_word_embeddings === false) throw fail('untied word embeddings are not supported');
  if (c.scale_attn_weights === false) throw fail('scale_attn_weights=false is not supported');
  if (c.scale_attn_by_inverse_layer_idx === true) {
    throw fail('scale_attn_by_inverse_layer_idx=true is not supported');
  }
  const layerNormEpsilon = num('layer_norm_epsilon', DEFAULT_LAYER_NORM_EPSILON);
  if (layerNormEpsilon === 0) throw fail(`field 'layer_norm_epsilon' must be positive`);
  if (c.layout !== undefined && !LAYOUTS.includes(c.layout as Layout)) {
    throw fail(`field 'layout' must be "gpt1" or "gpt2", got ${JSON.stringify(c.layout)}`);
  }
  if (c.objective !== undefined && c.objective !== 'clm' && c.objective !== 'mlm') {
    throw fail(`objective ${JSON.stringify(c.objective)} is not supported (use "clm" or "mlm")`);
  }
  return {
    vocabSize,
    blockSize,
    nLayer,
    nHead,
    nEmbd,
    dropout: num('resid_pdrop', 0.1),
    layerNormEpsilon,
    activation,
    bias: true,
    ...(c.objective === 'mlm' ? { objective: 'mlm' as const } : {}),
    ...(c.layout === 'gpt1' || openaiGpt ? { layout: 'gpt1' as const } : {}),
  };
}

/** A config.json is a few KiB; one this large is not a config (and is not read whole). */
const MAX_CONFIG_BYTES = 64 * 2 ** 20;

export async function readHfConfig(file: string): Promise<GPTConfig> {
  let json: unknown;
  try {
    const { size } = await fs.stat(file);
    if (size > MAX_CONFIG_BYTES) {
      throw new CheckpointError(
        `config is ${size} bytes, more than the ${MAX_CONFIG_BYTES} a config.json can be`,
        file,
      );
    }
    json = JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (err) {
    if (err instanceof CheckpointError) throw err;
    throw new CheckpointError(`cannot read config: ${(err as Error).message}`, file, undefined, {
      cause: err,
    });
  }
  // the running backend's memory, when one has been selected (loaded lazily: tfjs stays out of
  // processes that only convert checkpoints)
  const { backendMemoryBudget } = await import('../backend');
  return fromHfConfigJson(json, file, backendMemoryBudget() ?? machineMemoryBudget());
}

export async function writeHfConfig(
  file: string,
  cfg: GPTConfig,
  extra?: HfConfigExtra,
): Promise<void> {
  await writeJsonAtomic(file, toHfConfigJson(cfg, extra));
}

export * from './gpt2Weights';
