/**
 * Hugging Face GPT-2 checkpoints: config.json for GPT2LMHeadModel and its model.safetensors.
 * Parameters are keyed by HF names without the `transformer.` prefix, in HF layouts (Conv1D
 * weights are [in, out]); the LM head is tied to wte.
 */
import { promises as fs } from 'node:fs';
import { DEFAULT_LAYER_NORM_EPSILON, type Activation, type GPTConfig } from '../model/config';
import { paramShapes } from '../model/params';
import { writeJsonAtomic } from '../util/atomic';
import { configSizeProblem, machineMemoryBudget, type MemoryBudget } from './config';
import {
  CheckpointError,
  numel,
  readSafetensors,
  writeSafetensors,
  type Tensor,
  type TensorInfo,
} from './safetensors';

export const TRANSFORMERS_VERSION = '4.46.0';
const PREFIX = 'transformer.';
const DEFAULT_EXTRA_PREFIXES = ['classifier.'];

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

/** A transformers-compatible config.json for GPT2LMHeadModel, keys sorted as HF writes them. */
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

  if (c.model_type !== undefined && c.model_type !== 'gpt2') {
    throw fail(`model_type ${JSON.stringify(c.model_type)} is not supported (expected "gpt2")`);
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
  const act = c.activation_function ?? 'gelu_new';
  const activation = typeof act === 'string' ? ACTIVATIONS[act] : undefined;
  if (activation === undefined) {
    throw fail(
      `activation_function ${JSON.stringify(act)} is not supported (use gelu_new, gelu_pytorch_tanh or gelu)`,
    );
  }
  if (c.tie_word_embeddings === false) throw fail('untied word embeddings are not supported');
  if (c.scale_attn_weights === false) throw fail('scale_attn_weights=false is not supported');
  if (c.scale_attn_by_inverse_layer_idx === true) {
    throw fail('scale_attn_by_inverse_layer_idx=true is not supported');
  }
  const layerNormEpsilon = num('layer_norm_epsilon', DEFAULT_LAYER_NORM_EPSILON);
  if (layerNormEpsilon === 0) throw fail(`field 'layer_norm_epsilon' must be positive`);
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

// ---------------------------------------------------------------------------------------------
// Weights

export interface SaveOptions {
  dtype?: 'F32' | 'F16';
  extra?: ReadonlyMap<string, ExtraTensor>;
  metadata?: Record<string, string>;
  /** Name prefixes allowed for extra tensors (default ['classifier.']). */
  extraPrefixes?: string[];
}

export interface LoadOptions {
  /** Name prefixes recognised as extra tensors (default ['classifier.']). */
  extraPrefixes?: string[];
}

const names = (list: string[]) =>
  list.slice(0, 5).join(', ') + (list.length > 5 ? ` and ${list.length - 5} more` : '');
const fmt = (shape: readonly number[]) => `[${shape.join(', ')}]`;
const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((d, i) => d === b[i]);

/** Writes the weights as GPT2LMHeadModel.save_pretrained does: `transformer.` names, no lm_head. */
export async function saveGpt2Weights(
  file: string,
  cfg: GPTConfig,
  params: ReadonlyMap<string, Float32Array>,
  opts: SaveOptions = {},
): Promise<void> {
  const dtype = opts.dtype ?? 'F32';
  const prefixes = opts.extraPrefixes ?? DEFAULT_EXTRA_PREFIXES;
  const expected = paramShapes(cfg);
  const tensors = new Map<string, Tensor>();
  for (const [name, shape] of expected) {
    const data = params.get(name);
    if (!data) throw new CheckpointError(`missing parameter '${name}'`, file, name);
    if (data.length !== numel(shape)) {
      throw new CheckpointError(
        `parameter '${name}' has ${data.length} values, expected shape ${fmt(shape)} = ${numel(shape)}`,
        file,
        name,
      );
    }
    tensors.set(PREFIX + name, { dtype, shape, data });
  }
  for (const name of params.keys()) {
    if (!expected.has(name)) {
      throw new CheckpointError(`'${name}' is not a GPT-2 parameter for this config`, file, name);
    }
  }
  for (const [name, t] of opts.extra ?? []) {
    if (!prefixes.some((p) => name.startsWith(p))) {
      throw new CheckpointError(
        `extra tensor '${name}' must be named with one of: ${prefixes.join(', ')}`,
        file,
        name,
      );
    }
    if (t.data.length !== numel(t.shape)) {
      throw new CheckpointError(
        `extra tensor '${name}' has ${t.data.length} values, but shape ${fmt(t.shape)} needs ${numel(t.shape)}`,
        file,
        name,
      );
    }
    tensors.set(name, { dtype, shape: t.shape, data: t.data });
  }
  await writeSafetensors(file, tensors, { ...opts.metadata, format: 'pt' });
}

const BUFFER = /^h\.\d+\.attn\.(bias|masked_bias)$/;
const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);

/**
 * Guesses the dimensions the weights were made for. Returns a hint that the config disagrees
 * with the weights when every tensor fits a config that differs from `cfg`, else ''.
 */
function configHint(shapes: Map<string, number[]>, cfg: GPTConfig): string {
  const wte = shapes.get('wte.weight');
  const wpe = shapes.get('wpe.weight');
  if (wte?.length !== 2 || wpe?.length !== 2) return '';
  let nLayer = 0;
  for (const name of shapes.keys()) {
    const m = /^h\.(\d+)\./.exec(name);
    if (m) nLayer = Math.max(nLayer, Number(m[1]) + 1);
  }
  const guess = { ...cfg, vocabSize: wte[0]!, nEmbd: wte[1]!, blockSize: wpe[0]!, nLayer };
  for (const [name, shape] of paramShapes(guess)) {
    const got = shapes.get(name);
    if (!got || !sameShape(got, shape)) return '';
  }
  const fields: [string, keyof GPTConfig][] = [
    ['vocab_size', 'vocabSize'],
    ['n_positions', 'blockSize'],
    ['n_embd', 'nEmbd'],
    ['n_layer', 'nLayer'],
  ];
  const diff = fields.filter(([, k]) => guess[k] !== cfg[k]);
  if (diff.length === 0) return '';
  const list = (c: GPTConfig) => diff.map(([hf, k]) => `${hf}=${c[k]}`).join(', ');
  return ` (the config disagrees with the weights: it says ${list(cfg)}, but the weights are for ${list(guess)})`;
}

/** Where each parameter is in a file: its name there (with or without `transformer.`). */
interface Gpt2Layout {
  /** Parameter or extra tensor name (no prefix) → the name in the file. */
  found: Map<string, string>;
  /** The file's lm_head.weight, if it has one. */
  lmHead: string | undefined;
}

/**
 * Checks a file's tensors (names, dtypes, shapes: all from its header) against the config, so a
 * file for another model is refused before its tensors are read.
 */
function checkGpt2Layout(
  tensors: ReadonlyMap<string, TensorInfo>,
  cfg: GPTConfig,
  file: string,
  prefixes: string[],
): Gpt2Layout {
  const expected = paramShapes(cfg);
  const found = new Map<string, string>();
  let lmHead: string | undefined;
  for (const [raw, t] of tensors) {
    const name = raw.startsWith(PREFIX) ? raw.slice(PREFIX.length) : raw;
    if (BUFFER.test(name)) continue;
    if (found.has(name)) {
      throw new CheckpointError(
        `tensor '${name}' appears both with and without '${PREFIX}'`,
        file,
        raw,
      );
    }
    if (!FLOAT_DTYPES.has(t.dtype)) {
      throw new CheckpointError(`tensor '${raw}' has dtype ${t.dtype}, expected floats`, file, raw);
    }
    if (name === 'lm_head.weight') lmHead = raw;
    else found.set(name, raw);
  }

  const shapes = new Map([...found].map(([name, raw]) => [name, tensors.get(raw)!.shape]));
  const missing = [...expected.keys()].filter((name) => !found.has(name));
  if (missing.length > 0) {
    throw new CheckpointError(
      `missing tensor${missing.length > 1 ? 's' : ''} ${names(missing)}${configHint(shapes, cfg)}`,
      file,
      missing[0],
    );
  }
  for (const [name, shape] of expected) {
    const got = shapes.get(name)!;
    if (!sameShape(got, shape)) {
      throw new CheckpointError(
        `tensor '${name}' has shape ${fmt(got)}, expected ${fmt(shape)}${configHint(shapes, cfg)}`,
        file,
        name,
      );
    }
  }
  const unexpected = [...found.keys()].filter(
    (name) => !expected.has(name) && !prefixes.some((p) => name.startsWith(p)),
  );
  if (unexpected.length > 0) {
    throw new CheckpointError(
      `unexpected tensor${unexpected.length > 1 ? 's' : ''} ${names(unexpected)}${configHint(shapes, cfg)}`,
      file,
      unexpected[0],
    );
  }
  return { found, lmHead };
}

/**
 * Loads GPT-2 weights (F32, F16, BF16 or F64; with or without the `transformer.` prefix). The
 * file's names, dtypes and shapes are checked against `cfg` from its header, before any tensor
 * is read.
 */
export async function loadGpt2Weights(
  file: string,
  cfg: GPTConfig,
  opts: LoadOptions = {},
): Promise<Gpt2Weights> {
  const prefixes = opts.extraPrefixes ?? DEFAULT_EXTRA_PREFIXES;
  let layout: Gpt2Layout | undefined;
  const { tensors } = await readSafetensors(file, {
    toFloat32: true,
    inspect: (infos) => {
      layout = checkGpt2Layout(infos, cfg, file, prefixes);
    },
  });
  const expected = paramShapes(cfg);
  const found = new Map([...layout!.found].map(([name, raw]) => [name, tensors.get(raw)!]));
  const lmHead = layout!.lmHead === undefined ? undefined : tensors.get(layout!.lmHead);

  const params = new Map<string, Float32Array>();
  for (const name of expected.keys()) params.set(name, found.get(name)!.data as Float32Array);
  const extra = new Map<string, ExtraTensor>();
  for (const [name, t] of found) {
    if (!expected.has(name)) extra.set(name, { shape: t.shape, data: t.data as Float32Array });
  }

  if (lmHead) {
    const wte = params.get('wte.weight')!;
    const head = lmHead.data as Float32Array;
    let tied = sameShape(lmHead.shape, expected.get('wte.weight')!);
    for (let i = 0; tied && i < head.length; i++) tied = head[i] === wte[i];
    if (!tied) {
      throw new CheckpointError(
        'lm_head.weight differs from wte.weight: untied output heads are not supported',
        file,
        'lm_head.weight',
      );
    }
  }
  return { params, extra };
}
