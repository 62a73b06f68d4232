/**
 * GPT-2 weights in model.safetensors: saving them as save_pretrained does, checking a file's
 * layout against a config from its header alone, and reading it tensor by tensor in bounded
 * chunks (loadGpt2Weights for float32 parameters, openGpt2Weights for a caller that converts each
 * tensor as it streams by, copyGpt2Weights for an import that never holds the model).
 */
import type { GPTConfig } from '../model/config';
import { paramShapes } from '../model/params';
import type { ExtraTensor, Gpt2Weights } from './gpt2';
import {
  CheckpointError,
  numel,
  SafetensorsReader,
  writeSafetensors,
  writeSafetensorsStream,
  type Tensor,
  type TensorInfo,
} from './safetensors';

export const PREFIX = 'transformer.';
const DEFAULT_EXTRA_PREFIXES = ['classifier.'];

export interface SaveOptions {
  dtype?: 'F32' | 'F16';
  extra?: ReadonlyMap<string, ExtraTensor>;
  metadata?: Record<string, string>;
  /** Name prefixes allowed for extra tensors (default ['classifier.']). */
  extraPrefixes?: string[];
  /** A parameter's name in the file (default `transformer.` + its GPT-2 name). */
  fileName?: (name: string) => string;
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
    tensors.set(opts.fileName ? opts.fileName(name) : PREFIX + name, { dtype, shape, data });
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
/** openai-gpt's names of the embeddings (../checkpoint/openaiGpt.ts); its blocks are GPT-2's. */
const OPENAI_GPT_ALIASES: Record<string, string> = {
  'tokens_embed.weight': 'wte.weight',
  'positions_embed.weight': 'wpe.weight',
};
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
    const bare = raw.startsWith(PREFIX) ? raw.slice(PREFIX.length) : raw;
    const name = OPENAI_GPT_ALIASES[bare] ?? bare;
    if (BUFFER.test(name)) continue;
    const before = found.get(name);
    if (before !== undefined) {
      const aliased = bare !== name || !before.endsWith(name);
      throw new CheckpointError(
        aliased
          ? `tensor '${name}' appears twice, as '${before}' and '${raw}'`
          : `tensor '${name}' appears both with and without '${PREFIX}'`,
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

/** A GPT-2 weights file open for reading, its layout checked against the config. */
export interface Gpt2WeightsFile {
  reader: SafetensorsReader;
  /** Parameter and extra tensor names (no prefix) → their names in the file. */
  found: ReadonlyMap<string, string>;
  /** The file's names of the extra tensors (e.g. classifier.weight), by their own names. */
  extras: string[];
  /** Throws unless the file's lm_head.weight (if any) equals wte.weight, read in chunks. */
  checkTiedHead(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Opens GPT-2 weights (F32, F16, BF16 or F64; with or without the `transformer.` prefix) and
 * checks the file's names, dtypes and shapes against `cfg` from its header, before any tensor is
 * read. The caller reads the tensors it wants through `reader` (by their names in the file) and
 * closes the file.
 */
export async function openGpt2Weights(
  file: string,
  cfg: GPTConfig,
  opts: LoadOptions = {},
): Promise<Gpt2WeightsFile> {
  const prefixes = opts.extraPrefixes ?? DEFAULT_EXTRA_PREFIXES;
  let layout: Gpt2Layout | undefined;
  const reader = await SafetensorsReader.open(file, {
    inspect: (infos) => {
      layout = checkGpt2Layout(infos, cfg, file, prefixes);
    },
  });
  const { found, lmHead } = layout!;
  const expected = paramShapes(cfg);
  return {
    reader,
    found,
    extras: [...found.keys()].filter((name) => !expected.has(name)),
    checkTiedHead: async () => {
      if (lmHead === undefined) return;
      const wte = found.get('wte.weight')!;
      const untied = () =>
        new CheckpointError(
          'lm_head.weight differs from wte.weight: untied output heads are not supported',
          file,
          'lm_head.weight',
        );
      if (!sameShape(reader.entry(lmHead).shape, expected.get('wte.weight')!)) throw untied();
      let other: Float32Array | undefined; // the first piece is the largest
      await reader.forEachRows(lmHead, async (head, row) => {
        other ??= new Float32Array(head.length);
        const part = other.subarray(0, head.length);
        await reader.readFloat32Into(wte, part, row * cfg.nEmbd);
        for (let i = 0; i < head.length; i++) if (head[i] !== part[i]) throw untied();
      });
    },
    close: () => reader.close(),
  };
}

/**
 * Loads GPT-2 weights as float32 (see openGpt2Weights): each tensor read on its own, in bounded
 * chunks, into an array of its own; attention-mask buffers are never read.
 */
export async function loadGpt2Weights(
  file: string,
  cfg: GPTConfig,
  opts: LoadOptions = {},
): Promise<Gpt2Weights> {
  const f = await openGpt2Weights(file, cfg, opts);
  try {
    const params = new Map<string, Float32Array>();
    for (const name of paramShapes(cfg).keys()) {
      params.set(name, await f.reader.readFloat32(f.found.get(name)!));
    }
    const extra = new Map<string, ExtraTensor>();
    for (const name of f.extras) {
      const raw = f.found.get(name)!;
      extra.set(name, { shape: f.reader.entry(raw).shape, data: await f.reader.readFloat32(raw) });
    }
    await f.checkTiedHead();
    return { params, extra };
  } finally {
    await f.close();
  }
}

/**
 * Copies GPT-2 weights (any float dtype, either naming) to `to` as float32 with `transformer.`
 * names, as save_pretrained writes them, a chunk at a time: neither file is ever held whole.
 */
export async function copyGpt2Weights(
  from: string,
  to: string,
  cfg: GPTConfig,
  metadata: Record<string, string> = {},
  signal?: AbortSignal,
): Promise<void> {
  const f = await openGpt2Weights(from, cfg);
  try {
    await f.checkTiedHead();
    const expected = paramShapes(cfg);
    const source = new Map<string, string>();
    const plans = [...expected.keys(), ...f.extras].map((name) => {
      const out = expected.has(name) ? PREFIX + name : name;
      source.set(out, f.found.get(name)!);
      return { name: out, dtype: 'F32' as const, shape: f.reader.entry(f.found.get(name)!).shape };
    });
    await writeSafetensorsStream(to, plans, { ...metadata, format: 'pt' }, async (t, sink) => {
      signal?.throwIfAborted();
      await f.reader.forEachRows(source.get(t.name)!, (values) => sink(values));
    });
  } finally {
    await f.close();
  }
}
