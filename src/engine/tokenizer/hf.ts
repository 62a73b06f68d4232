/**
 * Hugging Face file formats. Saving writes tokenizer.json + tokenizer_config.json (+ vocab.json
 * and merges.txt for BPE); loading reads tokenizer.json, or a GPT-2 folder's vocab.json +
 * merges.txt (OpenAI's names encoder.json + vocab.bpe work too). Everything here is plain data;
 * index.ts turns it into a Tokenizer.
 *
 * The kind is not stored as a field (HF would reject it); it follows from the structure: a
 * ByteLevel pre-tokenizer means byte-level BPE, no pre-tokenizer and no merges means char. A char
 * tokenizer is saved as a BPE model whose vocab is the characters and whose merges are empty, so
 * HF's `tokenizers` splits text into characters and encodes it exactly as we do.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic';
import { UNICODE_TO_BYTE } from './bytes';
import { END_OF_TEXT, type TokenizerKind } from './types';

/** A tokenizer as plain data, i.e. what its files hold. */
export interface TokenizerData {
  kind: TokenizerKind;
  /** id → token: a byte-level string (BPE), one character (char), or a special token. */
  tokens: string[];
  /** BPE merges in rank order; empty for char. */
  merges: [string, string][];
  /** special token → id */
  specials: Map<string, number>;
}

export interface SaveOptions {
  /** tokenizer_config.json's model_max_length (the model's context length). */
  modelMaxLength?: number;
}

export const MERGES_HEADER = '#version: 0.2';

function vocabObject(tokens: readonly string[]): Record<string, number> {
  // fromEntries defines own properties, so a token named "__proto__" is safe.
  return Object.fromEntries(tokens.map((t, id) => [t, id]));
}

export function tokenizerJson(d: TokenizerData): object {
  const bpe = d.kind === 'bpe';
  const byteLevel = (addPrefixSpace: boolean, trimOffsets: boolean) => ({
    type: 'ByteLevel',
    add_prefix_space: addPrefixSpace,
    trim_offsets: trimOffsets,
    use_regex: true,
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [...d.specials]
      .sort((x, y) => x[1] - y[1])
      .map(([content, id]) => ({
        id,
        content,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      })),
    normalizer: null,
    pre_tokenizer: bpe ? byteLevel(false, true) : null,
    post_processor: bpe ? byteLevel(true, false) : null,
    decoder: bpe ? byteLevel(true, true) : { type: 'Fuse' },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: bpe ? '' : null,
      end_of_word_suffix: bpe ? '' : null,
      fuse_unk: false,
      byte_fallback: false,
      vocab: vocabObject(d.tokens),
      merges: d.merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}

export function tokenizerConfig(d: TokenizerData, opts: SaveOptions = {}): object {
  const eos = d.specials.has(END_OF_TEXT) ? END_OF_TEXT : null;
  const extra = [...d.specials.keys()].filter((t) => t !== END_OF_TEXT);
  return {
    model_max_length: opts.modelMaxLength ?? 1024,
    bos_token: eos,
    eos_token: eos,
    unk_token: eos,
    ...(extra.length > 0 ? { additional_special_tokens: extra } : {}),
    ...(d.kind === 'bpe'
      ? { add_prefix_space: false, errors: 'replace', tokenizer_class: 'GPT2Tokenizer' }
      : { tokenizer_class: 'PreTrainedTokenizerFast' }),
    clean_up_tokenization_spaces: false,
  };
}

export async function saveTokenizerFiles(
  dir: string,
  d: TokenizerData,
  opts: SaveOptions = {},
): Promise<void> {
  await writeJsonAtomic(path.join(dir, 'tokenizer.json'), tokenizerJson(d));
  await writeJsonAtomic(path.join(dir, 'tokenizer_config.json'), tokenizerConfig(d, opts));
  if (d.kind === 'bpe') {
    await writeJsonAtomic(path.join(dir, 'vocab.json'), vocabObject(d.tokens));
    const lines = [MERGES_HEADER, ...d.merges.map(([a, b]) => `${a} ${b}`)];
    await writeFileAtomic(path.join(dir, 'merges.txt'), lines.join('\n') + '\n');
  }
}

// ---- loading ----

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${(err as Error).message})`);
  }
}

/** Puts a token → id object into an id-indexed array, checking the ids. */
function addVocab(tokens: string[], vocab: unknown, file: string, where: string): void {
  if (!isObject(vocab)) throw new Error(`${file}: ${where} must be an object of token → id`);
  const entries = Object.entries(vocab);
  for (const [tok, id] of entries) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= 1 << 24) {
      throw new Error(`${file}: ${where} gives token ${JSON.stringify(tok)} a bad id ${id}`);
    }
    if (tokens[id] !== undefined && tokens[id] !== tok) {
      throw new Error(
        `${file}: id ${id} is used by both ${JSON.stringify(tokens[id])} and ${JSON.stringify(tok)}`,
      );
    }
    tokens[id] = tok;
  }
}

function checkDense(tokens: string[], file: string): void {
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i] === undefined) {
      throw new Error(
        `${file}: no token has id ${i} (ids must run from 0 to ${tokens.length - 1})`,
      );
    }
  }
}

function parseMergeList(list: unknown, file: string): [string, string][] {
  if (!Array.isArray(list)) throw new Error(`${file}: model.merges must be an array`);
  return list.map((m: unknown, i): [string, string] => {
    const pair = typeof m === 'string' ? m.split(' ') : m;
    if (
      !Array.isArray(pair) ||
      pair.length !== 2 ||
      typeof pair[0] !== 'string' ||
      typeof pair[1] !== 'string' ||
      pair[0] === '' ||
      pair[1] === ''
    ) {
      throw new Error(`${file}: model.merges[${i}] is not a pair of tokens: ${JSON.stringify(m)}`);
    }
    return [pair[0], pair[1]];
  });
}

function isByteLevel(p: unknown): boolean {
  return isObject(p) && p['type'] === 'ByteLevel';
}

export function parseTokenizerJson(text: string, file: string): TokenizerData {
  const json = parseJson(text, file);
  if (!isObject(json)) throw new Error(`${file}: expected a JSON object`);
  const model = json['model'];
  if (!isObject(model)) throw new Error(`${file}: missing "model"`);
  if (model['type'] !== undefined && model['type'] !== 'BPE') {
    throw new Error(
      `${file}: model type ${JSON.stringify(model['type'])} is not supported (BPE only)`,
    );
  }
  if (json['normalizer'] != null) {
    throw new Error(`${file}: normalizers are not supported (normalizer must be null)`);
  }

  const tokens: string[] = [];
  addVocab(tokens, model['vocab'], file, 'model.vocab');
  const specials = new Map<string, number>();
  const added = json['added_tokens'] ?? [];
  if (!Array.isArray(added)) throw new Error(`${file}: added_tokens must be an array`);
  for (const t of added as unknown[]) {
    if (!isObject(t) || typeof t['content'] !== 'string' || typeof t['id'] !== 'number') {
      throw new Error(`${file}: malformed entry in added_tokens: ${JSON.stringify(t)}`);
    }
    addVocab(tokens, { [t['content']]: t['id'] }, file, 'added_tokens');
    specials.set(t['content'], t['id']);
  }
  checkDense(tokens, file);
  const merges = parseMergeList(model['merges'] ?? [], file);

  const pre = json['pre_tokenizer'];
  if (isByteLevel(pre)) {
    const p = pre as Record<string, unknown>;
    if (p['add_prefix_space'] === true) {
      throw new Error(`${file}: ByteLevel add_prefix_space=true is not supported`);
    }
    if (p['use_regex'] === false) {
      throw new Error(`${file}: ByteLevel use_regex=false is not supported`);
    }
    return { kind: 'bpe', tokens, merges, specials };
  }
  if (pre != null) {
    const type = isObject(pre) ? pre['type'] : pre;
    throw new Error(`${file}: pre_tokenizer ${JSON.stringify(type)} is not supported`);
  }
  if (merges.length > 0) {
    throw new Error(
      `${file}: has merges but no ByteLevel pre_tokenizer; only GPT-2-style byte-level BPE ` +
        'and char tokenizers are supported',
    );
  }
  return { kind: 'char', tokens, merges, specials };
}

export function parseMergesTxt(text: string, file: string): [string, string][] {
  const merges: [string, string][] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    if ((i === 0 && line.startsWith('#version')) || line === '') continue;
    const parts = line.split(' ');
    if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
      throw new Error(
        `${file}:${i + 1}: expected two tokens separated by one space, got ${JSON.stringify(line)}`,
      );
    }
    merges.push([parts[0]!, parts[1]!]);
  }
  return merges;
}

/**
 * A GPT-2 folder has no list of special tokens: a token is special when no merge produces it,
 * it is not a single byte, and it looks like `<|name|>` (GPT-2's `<|endoftext|>`).
 */
export function parseVocabMerges(
  vocabText: string,
  vocabFile: string,
  mergesText: string,
  mergesFile: string,
): TokenizerData {
  const tokens: string[] = [];
  addVocab(tokens, parseJson(vocabText, vocabFile), vocabFile, 'the vocabulary');
  checkDense(tokens, vocabFile);
  const merges = parseMergesTxt(mergesText, mergesFile);
  const produced = new Set(merges.map(([a, b]) => a + b));
  const specials = new Map<string, number>();
  tokens.forEach((t, id) => {
    if (!produced.has(t) && !UNICODE_TO_BYTE.has(t) && /^<\|.+\|>$/s.test(t)) specials.set(t, id);
  });
  return { kind: 'bpe', tokens, merges, specials };
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`${file}: cannot read (${(err as Error).message})`);
  }
}

/** Reads a tokenizer folder into plain data; errors name the file and the problem. */
export async function readTokenizerDir(
  dir: string,
): Promise<{ data: TokenizerData; file: string }> {
  const stat = await fs.stat(dir).catch(() => undefined);
  if (stat === undefined) throw new Error(`Tokenizer folder not found: ${dir}`);
  if (!stat.isDirectory()) throw new Error(`Not a folder: ${dir} (expected a tokenizer folder)`);

  const tjFile = path.join(dir, 'tokenizer.json');
  const tj = await readIfExists(tjFile);
  if (tj !== undefined) return { data: parseTokenizerJson(tj, tjFile), file: tjFile };

  for (const [vName, mName] of [
    ['vocab.json', 'merges.txt'],
    ['encoder.json', 'vocab.bpe'],
  ] as const) {
    const vFile = path.join(dir, vName);
    const mFile = path.join(dir, mName);
    const [v, m] = [await readIfExists(vFile), await readIfExists(mFile)];
    if (v !== undefined && m !== undefined) {
      return { data: parseVocabMerges(v, vFile, m, mFile), file: vFile };
    }
    if (v !== undefined) throw new Error(`${mFile} is missing (found ${vFile} without it)`);
    if (m !== undefined) throw new Error(`${vFile} is missing (found ${mFile} without it)`);
  }
  throw new Error(`No tokenizer in ${dir}: expected tokenizer.json, or vocab.json + merges.txt`);
}
