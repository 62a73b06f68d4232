/**
 * `tokenizer train|encode|decode`: train a tokenizer, and turn text into ids and back. Plain
 * JavaScript, no tensors: these commands load no tfjs backend (and so probe no GPU).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import {
  loadTokenizer,
  MIN_BPE_VOCAB_SIZE,
  readCorpusChunks,
  trainTokenizer,
  type TokenizerKind,
} from '../../engine/tokenizer';
import { UsageError, type OptionSpec } from '../args';
import { errorMessage } from '../output';
import { DEFAULT_BPE_VOCAB } from '../defaults';
import { TokenizerProgressView } from '../progress';
import { EXIT, type Command, type Context } from '../runtime';
import { encodeOption, readTextFile } from './shared';

const TOKENIZER_DIR: OptionSpec = {
  name: 'tokenizer',
  kind: 'string',
  value: 'DIR',
  required: true,
  description:
    'tokenizer folder: tokenizer.json, or GPT-2 vocab.json + merges.txt (a model folder works too)',
};

/** --vocab-size, which `pretrain` takes too. */
export const VOCAB_SIZE_OPTION: OptionSpec = {
  name: 'vocab-size',
  kind: 'int',
  value: 'N',
  min: MIN_BPE_VOCAB_SIZE,
  default: DEFAULT_BPE_VOCAB,
  description: 'BPE vocabulary size, special tokens included (bpe only)',
};

// ---------------------------------------------------------------------------------------------
// train

async function runTrain(ctx: Context): Promise<number> {
  const { args, out } = ctx;
  const kind = args.string('type') as TokenizerKind;
  if (kind === 'char' && args.given('vocab-size')) {
    throw new UsageError('--vocab-size applies only to --type bpe', 'tokenizer train');
  }
  const outDir = args.requireString('out');
  const view = out.json ? undefined : new TokenizerProgressView(out);
  const started = performance.now();
  const tokenizer = await trainTokenizer({
    kind,
    ...(kind === 'bpe' ? { vocabSize: args.number('vocab-size')! } : {}),
    corpus: readCorpusChunks(args.list('corpus')),
    onProgress: (p) => (view ? view.update(p) : out.emit({ type: 'tokenizer', ...p })),
  });
  await fs.mkdir(outDir, { recursive: true });
  await tokenizer.save(outDir);
  const files = (await fs.readdir(outDir)).filter((f) =>
    ['tokenizer.json', 'tokenizer_config.json', 'vocab.json', 'merges.txt'].includes(f),
  );
  if (out.json) {
    out.emit({
      type: 'result',
      out: path.resolve(outDir),
      kind,
      vocabSize: tokenizer.vocabSize,
      files: files.sort(),
    });
  } else {
    const secs = ((performance.now() - started) / 1000).toFixed(1);
    out.line(
      `saved a ${kind} tokenizer with ${tokenizer.vocabSize} tokens to ${outDir} in ${secs} s ` +
        `(${files.sort().join(', ')})`,
    );
  }
  return EXIT.ok;
}

const train: Command = {
  command: 'tokenizer train',
  summary: 'train a char or BPE tokenizer on text files',
  usage: '--corpus FILE|DIR... --out DIR [--type char|bpe] [--vocab-size N] [options]',
  description:
    'Learns a tokenizer from the corpus and saves it in Hugging Face format (tokenizer.json; BPE ' +
    'also writes GPT-2 style vocab.json + merges.txt).',
  options: [
    {
      name: 'corpus',
      kind: 'strings',
      variadic: true,
      value: 'FILE|DIR',
      required: true,
      description: 'UTF-8 text files, or folders of .txt/.md files',
    },
    {
      name: 'type',
      kind: 'choice',
      value: 'char|bpe',
      choices: ['char', 'bpe'],
      default: 'char',
      description: 'one token per character, or byte-level BPE (GPT-2 style)',
    },
    VOCAB_SIZE_OPTION,
    {
      name: 'out',
      kind: 'string',
      value: 'DIR',
      required: true,
      description: 'folder to write the tokenizer files into (created if needed)',
    },
  ],
  examples: ['tokenizer train --corpus books/ --type bpe --vocab-size 4096 --out tok/'],
  run: runTrain,
};

// ---------------------------------------------------------------------------------------------
// encode

async function runEncode(ctx: Context): Promise<number> {
  const { args, out } = ctx;
  const file = args.string('file');
  const text = args.string('text');
  if ((file === undefined) === (text === undefined)) {
    throw new UsageError('give exactly one of --file and --text', 'tokenizer encode');
  }
  const tokenizer = await loadTokenizer(args.requireString('tokenizer'));
  const input = file !== undefined ? await readTextFile(file) : text!;
  const ids = encodeOption(tokenizer, input, file !== undefined ? file : '--text');
  if (out.json) {
    out.emit({ type: 'result', tokens: ids });
  } else {
    out.line(JSON.stringify(ids));
    out.note(`${ids.length} token${ids.length === 1 ? '' : 's'}`);
  }
  return EXIT.ok;
}

const encode: Command = {
  command: 'tokenizer encode',
  summary: 'turn text into token ids',
  usage: '--tokenizer DIR (--file FILE | --text TEXT) [options]',
  description:
    'Prints the token ids of the text as a JSON array; with --json the last line is ' +
    '{"type":"result","tokens":[...]}.',
  options: [
    TOKENIZER_DIR,
    { name: 'file', kind: 'string', value: 'FILE', description: "UTF-8 text file ('-' = stdin)" },
    { name: 'text', kind: 'string', value: 'TEXT', description: 'the text itself' },
  ],
  examples: ['tokenizer encode --tokenizer tok/ --text "Hello world"'],
  run: runEncode,
};

// ---------------------------------------------------------------------------------------------
// decode

/** Reads ids from a JSON array or an object with a "tokens" array. */
async function readIds(file: string): Promise<number[]> {
  const text = await readTextFile(file);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    // `encode --json` output is JSON lines; the result is the last one.
    const last = text.trimEnd().split('\n').pop() ?? '';
    try {
      json = JSON.parse(last);
    } catch {
      throw new Error(`${file}: not valid JSON (${errorMessage(err)})`);
    }
  }
  const list =
    typeof json === 'object' && json !== null && !Array.isArray(json)
      ? (json as { tokens?: unknown }).tokens
      : json;
  if (!Array.isArray(list)) {
    throw new Error(`${file}: expected a JSON array of token ids, or {"tokens": [...]}`);
  }
  list.forEach((v, i) => {
    if (!Number.isInteger(v) || (v as number) < 0) {
      throw new Error(`${file}: item ${i} is ${JSON.stringify(v)}, not a token id`);
    }
  });
  return list as number[];
}

async function runDecode(ctx: Context): Promise<number> {
  const { args, out } = ctx;
  const idsFile = args.requireString('ids-file');
  const outFile = args.string('out');
  const tokenizer = await loadTokenizer(args.requireString('tokenizer'));
  const ids = await readIds(idsFile);
  const bad = ids.find((id) => id >= tokenizer.vocabSize);
  if (bad !== undefined) {
    throw new Error(
      `${idsFile}: token id ${bad} is out of range (the tokenizer has ${tokenizer.vocabSize} tokens)`,
    );
  }
  const text = tokenizer.decode(ids);
  if (outFile !== undefined) {
    await fs.writeFile(outFile, text);
    if (out.json) out.emit({ type: 'result', out: path.resolve(outFile), chars: text.length });
    else out.note(`wrote ${ids.length} tokens (${text.length} characters) to ${outFile}`);
  } else if (out.json) {
    out.emit({ type: 'result', text });
  } else {
    out.write(text);
  }
  return EXIT.ok;
}

const decode: Command = {
  command: 'tokenizer decode',
  summary: 'turn token ids back into text',
  usage: '--tokenizer DIR --ids-file JSON [--out FILE] [options]',
  description:
    'Decodes ids from a JSON file (an array, {"tokens": [...]}, or what `encode --json` prints) ' +
    'and ' +
    'writes the text to --out, or to stdout.',
  options: [
    TOKENIZER_DIR,
    {
      name: 'ids-file',
      kind: 'string',
      value: 'JSON',
      required: true,
      description: "JSON file with the ids ('-' = stdin)",
    },
    {
      name: 'out',
      kind: 'string',
      value: 'FILE',
      defaultText: 'stdout',
      description: 'file to write the text to',
    },
  ],
  examples: ['tokenizer decode --tokenizer tok/ --ids-file ids.json --out text.txt'],
  run: runDecode,
};

export const subcommands: Record<string, Command> = { train, encode, decode };
