/**
 * Export of a model folder: a Hugging Face GPT-2 folder (`hf`), llama.cpp's GGUF (`gguf`), or a
 * folder to continue training on a cluster with PyTorch DDP (`cluster`). Works on files alone
 * (no tfjs), writes into a staging folder and renames it into place when complete.
 */
import * as path from 'node:path';
import { readTokenizerDir, type TokenizerData } from '../tokenizer/hf';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic';
import { writeClusterFiles } from './cluster';
import { isMaskedLm, isPostLn, type GPTConfig } from '../model/config';
import {
  f32,
  GGML_F16,
  GGML_F32,
  int32s,
  str,
  strings,
  TOKEN_TYPE,
  u32,
  writeGguf,
  type GgufTensor,
  type GgufValue,
} from './gguf';
import { saveGpt2Weights, toHfConfigJson, TRANSFORMERS_VERSION, type ExtraTensor } from './gpt2';
import { modelCard } from './modelCard';
import { openAiGptName, toOpenAiGptConfigJson } from './openaiGpt';
import { carriedConfigFields, readSourceModel, type SourceInfo, type SourceModel } from './source';
import { folderBytes, listFiles, writeFolder } from './stage';

export const EXPORT_FORMATS = ['hf', 'gguf', 'cluster'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];
export const EXPORT_DTYPES = ['float32', 'float16'] as const;
export type ExportDtype = (typeof EXPORT_DTYPES)[number];

export interface CheckpointProgress {
  phase: string;
  /** 0..1 */
  fraction: number;
  message: string;
}

export interface ExportOptions {
  /** The model folder (a run, a fine-tune, an imported model). */
  model: string;
  /** Destination folder: must not exist, or be empty. */
  out: string;
  format?: ExportFormat;
  dtype?: ExportDtype;
  /** The model's name in the card and GGUF metadata (default: the folder's name). */
  name?: string;
  onProgress?: (p: CheckpointProgress) => void;
  signal?: AbortSignal;
  /** The export date (tests pin it). */
  now?: Date;
}

export interface ExportResult {
  out: string;
  format: ExportFormat;
  dtype: ExportDtype;
  /** Files written, relative to `out`. */
  files: string[];
  bytes: number;
  /** What the user should know (e.g. what GGUF leaves out). */
  notes: string[];
}

/** Why a tokenizer cannot go into GGUF's gpt2 architecture, or null when it can. */
export function ggufRefusal(kind: string): string | null {
  if (kind === 'bpe') return null;
  return (
    `the model's tokenizer is ${kind === 'char' ? 'character-level' : kind}, but llama.cpp's gpt2 ` +
    "architecture needs GPT-2's byte-level BPE tokenizer (tokenizer.ggml.model = gpt2), and a " +
    'character vocabulary cannot be expressed as one. Export --format hf instead, or pretrain with ' +
    '--tokenizer bpe'
  );
}

/** Why a GPT-1-layout (post-LayerNorm) model has no GGUF export. */
export const POST_LN_GGUF_REFUSAL =
  "the model has GPT-1's post-LayerNorm layout (a LayerNorm after each residual add, no final " +
  "LayerNorm), and llama.cpp's gpt2 architecture is pre-LayerNorm with a final output_norm, so " +
  'it would compute a different model. Export --format hf instead (an openai-gpt folder)';

const DTYPE_CODE = { float32: 'F32', float16: 'F16' } as const;

/** Writes a complete Hugging Face GPT-2 folder for `src` into `dir`. */
export async function writeHfFolder(
  dir: string,
  src: SourceModel,
  opts: {
    dtype: ExportDtype;
    name: string;
    now: Date;
    card?: boolean;
    metadata?: Record<string, string>;
  },
): Promise<void> {
  // GPT-1's post-LayerNorm layout has no GPT-2 class: it goes out as openai-gpt, which is it
  const gpt1 = isPostLn(src.config);
  await writeHfFolderFiles(dir, src, opts.dtype, gpt1 ? 'openai-gpt' : 'gpt2');
  await saveGpt2Weights(path.join(dir, 'model.safetensors'), src.config, src.params, {
    dtype: DTYPE_CODE[opts.dtype],
    extra: src.extra as ReadonlyMap<string, ExtraTensor>,
    metadata: { ...opts.metadata, exported_by: 'gpt-studio' },
    ...(gpt1 ? { fileName: openAiGptName } : {}),
  });
  if (opts.card !== false) {
    await writeFileAtomic(
      path.join(dir, 'README.md'),
      modelCard(src, { name: opts.name, dtype: opts.dtype, date: opts.now }),
    );
  }
}

/**
 * The folder's files other than the weights and the card: configs and the tokenizer. `modelType`
 * 'openai-gpt' writes OpenAIGPTLMHeadModel's config (a GPT-1-layout model's export).
 */
export async function writeHfFolderFiles(
  dir: string,
  src: SourceInfo,
  dtype: ExportDtype,
  modelType: 'gpt2' | 'openai-gpt' = 'gpt2',
): Promise<void> {
  const eos = src.tokenizer.eosId ?? null;
  const carried = carriedConfigFields(src.rawConfig);
  const toJson = modelType === 'openai-gpt' ? toOpenAiGptConfigJson : toHfConfigJson;
  const config = toJson(src.config, {
    bos_token_id: eos,
    eos_token_id: eos,
    ...carried,
  });
  config.torch_dtype = dtype;
  await writeJsonAtomic(path.join(dir, 'config.json'), config);
  await writeJsonAtomic(path.join(dir, 'generation_config.json'), {
    _from_model_config: true,
    bos_token_id: config.bos_token_id ?? eos,
    eos_token_id: config.eos_token_id ?? eos,
    transformers_version: TRANSFORMERS_VERSION,
  });
  await src.tokenizer.save(dir, { modelMaxLength: src.config.blockSize });
}

/** Row-major [rows, cols] → [cols, rows]. */
function transpose(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!;
  }
  return out;
}

/**
 * The GGUF tensors of llama.cpp's gpt2 architecture. HF Conv1D weights are [in, out]; ggml's
 * mul_mat wants each output's weights contiguous, i.e. a row-major [out, in] matrix (ggml dims
 * [in, out]), so they are transposed. The output head is token_embd again (tied).
 */
export function ggufTensors(
  cfg: GPTConfig,
  params: ReadonlyMap<string, Float32Array>,
  dtype: ExportDtype,
): GgufTensor[] {
  const C = cfg.nEmbd;
  const half = dtype === 'float16' ? GGML_F16 : GGML_F32;
  const get = (n: string) => params.get(n)!;
  const out: GgufTensor[] = [];
  const vector = (name: string, src: string) =>
    out.push({ name, shape: [get(src).length], type: GGML_F32, data: get(src) });
  const linear = (name: string, src: string, inDim: number, outDim: number) =>
    out.push({
      name,
      shape: [outDim, inDim],
      type: half,
      data: transpose(get(src), inDim, outDim),
    });
  out.push({
    name: 'token_embd.weight',
    shape: [cfg.vocabSize, C],
    type: half,
    data: get('wte.weight'),
  });
  // llama.cpp keeps position embeddings in F32
  out.push({
    name: 'position_embd.weight',
    shape: [cfg.blockSize, C],
    type: GGML_F32,
    data: get('wpe.weight'),
  });
  for (let i = 0; i < cfg.nLayer; i++) {
    const h = `h.${i}.`;
    const b = `blk.${i}.`;
    vector(b + 'attn_norm.weight', h + 'ln_1.weight');
    vector(b + 'attn_norm.bias', h + 'ln_1.bias');
    linear(b + 'attn_qkv.weight', h + 'attn.c_attn.weight', C, 3 * C);
    vector(b + 'attn_qkv.bias', h + 'attn.c_attn.bias');
    linear(b + 'attn_output.weight', h + 'attn.c_proj.weight', C, C);
    vector(b + 'attn_output.bias', h + 'attn.c_proj.bias');
    vector(b + 'ffn_norm.weight', h + 'ln_2.weight');
    vector(b + 'ffn_norm.bias', h + 'ln_2.bias');
    linear(b + 'ffn_up.weight', h + 'mlp.c_fc.weight', C, 4 * C);
    vector(b + 'ffn_up.bias', h + 'mlp.c_fc.bias');
    linear(b + 'ffn_down.weight', h + 'mlp.c_proj.weight', 4 * C, C);
    vector(b + 'ffn_down.bias', h + 'mlp.c_proj.bias');
  }
  vector('output_norm.weight', 'ln_f.weight');
  vector('output_norm.bias', 'ln_f.bias');
  out.push({
    name: 'output.weight',
    shape: [cfg.vocabSize, C],
    type: half,
    data: get('wte.weight'),
  });
  return out;
}

/** GGUF metadata for llama.cpp's gpt2 architecture and its BPE tokenizer. */
export function ggufMetadata(
  cfg: GPTConfig,
  tok: TokenizerData,
  name: string,
  dtype: ExportDtype,
): Array<[string, GgufValue]> {
  const tokens = [...tok.tokens];
  const types = tokens.map((t, id) =>
    tok.specials.get(t) === id ? TOKEN_TYPE.control : TOKEN_TYPE.normal,
  );
  // rows of the embedding beyond the tokenizer's vocabulary get placeholder tokens
  for (let id = tokens.length; id < cfg.vocabSize; id++) {
    tokens.push(`[PAD${id}]`);
    types.push(TOKEN_TYPE.unused);
  }
  const eos = tok.specials.get('<|endoftext|>');
  const meta: Array<[string, GgufValue]> = [
    ['general.architecture', str('gpt2')],
    ['general.name', str(name)],
    ['general.file_type', u32(dtype === 'float16' ? 1 : 0)],
    ['general.alignment', u32(32)],
    ['gpt2.context_length', u32(cfg.blockSize)],
    ['gpt2.embedding_length', u32(cfg.nEmbd)],
    ['gpt2.feed_forward_length', u32(4 * cfg.nEmbd)],
    ['gpt2.block_count', u32(cfg.nLayer)],
    ['gpt2.attention.head_count', u32(cfg.nHead)],
    ['gpt2.attention.layer_norm_epsilon', f32(cfg.layerNormEpsilon)],
    ['tokenizer.ggml.model', str('gpt2')],
    ['tokenizer.ggml.pre', str('gpt-2')],
    ['tokenizer.ggml.tokens', strings(tokens)],
    ['tokenizer.ggml.token_type', int32s(types)],
    ['tokenizer.ggml.merges', strings(tok.merges.map(([a, b]) => `${a} ${b}`))],
  ];
  if (eos !== undefined) {
    meta.push(['tokenizer.ggml.bos_token_id', u32(eos)], ['tokenizer.ggml.eos_token_id', u32(eos)]);
  }
  return meta;
}

/**
 * Why a masked-LM (BERT-style) model has no GGUF or Hugging Face export, or null for a GPT.
 * (A cluster export says its own reason: its train.py trains a causal LM.)
 */
export function maskedLmExportRefusal(
  config: Pick<GPTConfig, 'objective'>,
  format: ExportFormat,
): string | null {
  if (!isMaskedLm(config)) return null;
  if (format === 'gguf') {
    return (
      "it is a masked-LM (BERT-style) model, and llama.cpp's gpt2 architecture runs a left-to-right " +
      'decoder: it would attend causally and generate from a model that cannot generate'
    );
  }
  if (format === 'hf') {
    return (
      'it is a masked-LM (BERT-style) model, and neither Hugging Face class holds it: ' +
      "BertForMaskedLM's blocks are post-LayerNorm with token-type embeddings and an MLM " +
      'transform head (dense, GELU, LayerNorm) before the tied decoder, while this model has ' +
      "GPT-2's pre-LayerNorm blocks, a final LayerNorm and no transform; GPT2LMHeadModel would " +
      "load the weights but attend causally, so its outputs would be wrong. The model's own " +
      'folder (config.json with "objective": "mlm", model.safetensors, the tokenizer) is what ' +
      'this app fine-tunes'
    );
  }
  return null;
}

/**
 * Why a model with this config.json cannot go to a cluster (its train.py trains GPT-2's
 * pre-LayerNorm causal LM), or null: GPT-1's post-LayerNorm layout, or a masked-LM objective.
 */
export function clusterConfigRefusal(config: {
  layout?: unknown;
  objective?: unknown;
}): string | null {
  const { layout, objective } = config;
  const odd =
    layout !== undefined && layout !== 'gpt2'
      ? `layout ${JSON.stringify(layout)}`
      : objective !== undefined && objective !== 'clm'
        ? `objective ${JSON.stringify(objective)}`
        : null;
  return odd
    ? `its train.py trains GPT-2's pre-LayerNorm causal LM, and this model's config.json has ${odd}`
    : null;
}

const slug = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '') || 'model';

export async function exportModel(opts: ExportOptions): Promise<ExportResult> {
  const format = opts.format ?? 'hf';
  const dtype = opts.dtype ?? 'float32';
  const now = opts.now ?? new Date();
  const report = (phase: string, fraction: number, message: string) =>
    opts.onProgress?.({ phase, fraction, message });
  const check = () => opts.signal?.throwIfAborted();
  const modelDir = path.resolve(opts.model);
  const name = opts.name ?? path.basename(modelDir);

  report('read', 0, `reading ${modelDir}`);
  const src = await readSourceModel(modelDir);
  check();
  const bert = maskedLmExportRefusal(src.config, format);
  if (bert) {
    const as = format === 'gguf' ? 'as GGUF' : 'as a Hugging Face folder';
    throw new Error(`cannot export ${modelDir} ${as}: ${bert}`);
  }
  const notes: string[] = [];

  let tokData: TokenizerData | undefined;
  if (format === 'gguf' && isPostLn(src.config)) {
    throw new Error(`cannot export ${modelDir} as GGUF: ${POST_LN_GGUF_REFUSAL}`);
  }
  if (format === 'hf' && isPostLn(src.config)) {
    notes.push(
      "the model has GPT-1's post-LayerNorm layout, which transformers' GPT-2 cannot hold: it was written as an openai-gpt folder (OpenAIGPTLMHeadModel)",
    );
  }
  if (format === 'gguf') {
    const why = ggufRefusal(src.tokenizer.kind);
    if (why) throw new Error(`cannot export ${modelDir} as GGUF: ${why}`);
    tokData = (await readTokenizerDir(modelDir)).data;
    if (src.extra.size > 0) {
      notes.push(
        `GGUF has no place for the fine-tuned head (${[...src.extra.keys()].join(', ')}); only the language model was exported`,
      );
    }
    if (src.config.activation === 'gelu') {
      notes.push(
        "llama.cpp's gpt2 uses the tanh GELU; this model was trained with the exact (erf) GELU, so its outputs will differ slightly",
      );
    }
  }
  if (format === 'cluster') {
    const why = clusterConfigRefusal(src.rawConfig);
    if (why)
      throw new Error(
        `cannot export ${modelDir} for a cluster: ${why}. Export --format hf instead`,
      );
  }
  if (format === 'cluster' && (!src.run?.corpus || src.run.corpus.length === 0)) {
    throw new Error(
      `cannot export ${modelDir} for a cluster: it has no training record (state.json with its corpus), so there is no dataset to send along. Export a pretraining run, or use --format hf`,
    );
  }

  const out = path.resolve(opts.out);
  await writeFolder(out, async (staging) => {
    if (format === 'hf') {
      report('write', 0.3, 'writing the Hugging Face folder');
      await writeHfFolder(staging, src, { dtype, name, now });
    } else if (format === 'gguf') {
      report('write', 0.3, 'converting the tensors to GGUF');
      const tensors = ggufTensors(src.config, src.params, dtype);
      check();
      report('write', 0.6, 'writing the GGUF file');
      await writeGguf(
        path.join(staging, `${slug(name)}.${dtype === 'float16' ? 'f16' : 'f32'}.gguf`),
        ggufMetadata(src.config, tokData!, name, dtype),
        tensors,
      );
    } else {
      report('write', 0.1, 'writing the Hugging Face model');
      await writeHfFolder(path.join(staging, 'model'), src, { dtype, name, now });
      check();
      await writeClusterFiles(staging, src, {
        name,
        dtype,
        now,
        signal: opts.signal,
        onProgress: (f, m) => report('dataset', 0.2 + 0.75 * f, m),
      });
    }
    check();
  });
  const files = await listFiles(out);
  report('done', 1, `exported to ${out}`);
  return { out, format, dtype, files, bytes: await folderBytes(out), notes };
}
