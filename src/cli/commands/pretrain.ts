/** `pretrain`: train a new GPT from scratch on text files. */
import { MAX_TRAIN_WORKERS } from '../../common/defaults';
import { physicalCores } from '../../engine/train/parallel/cores';
import type { TrainEvent, TrainResult } from '../../common/events';
import { fractionOf, percentOf } from '../../common/format';
import type { TrainConfig } from '../../engine/train/pretrain';
import type { TokenizerKind } from '../../engine/tokenizer';
import type { Objective } from '../../engine/model/config';
import { UsageError, type OptionSpec, type ParsedArgs } from '../args';
import { PRESETS, TRAIN_DEFAULTS, type PresetName } from '../defaults';
import { TrainView } from '../progress';
import { EXIT, onInterrupt, startBackend, type Command, type Context } from '../runtime';
import { VOCAB_SIZE_OPTION } from './tokenizer';
import { ZERO_SHOT_OPTIONS, zeroShotConfig } from './zeroShot';

/** `--log-every`: shared with resume. */
export const LOG_EVERY: OptionSpec = {
  name: 'log-every',
  kind: 'int',
  value: 'N',
  min: 1,
  defaultText: '1 on a terminal (the line is rewritten in place), else 10',
  description: 'print a progress line every N steps',
  group: 'Output',
};

/** `--workers` without a default (resume: the run's own). */
export const WORKERS_SPEC: OptionSpec = {
  name: 'workers',
  kind: 'int',
  value: 'N',
  min: 1,
  max: MAX_TRAIN_WORKERS,
  description:
    'data-parallel training threads on wasm and cpu, each taking its share of every batch ' +
    '(node, node-gpu and webgpu thread themselves and use 1); a run repeats exactly for the same N',
  group: 'Training',
};

/** `--workers`, by default this machine's physical cores: pretrain and finetune. */
export const WORKERS_OPTION: OptionSpec = { ...WORKERS_SPEC, default: physicalCores() };

/** --workers as given, else the default for the backend just started (1 where it threads itself). */
export async function workersFor(args: ParsedArgs, backend: string): Promise<number> {
  if (args.given('workers')) return args.number('workers')!;
  const { defaultWorkers } = await import('../../engine/train/parallel/cores');
  return defaultWorkers(backend);
}

/**
 * Runs a training call (pretrain or resume) with Ctrl-C wired to its stop signal and its events
 * shown as progress lines, or printed as JSON; returns the exit code.
 */
export async function runTraining(
  { args, out }: Context,
  known: { evalEvery: number; valLoss?: number | null },
  train: (onEvent: (e: TrainEvent) => void, signal: AbortSignal) => Promise<TrainResult>,
): Promise<number> {
  const interrupt = onInterrupt(out, 'stopping: the run is saved when the current step ends');
  const view = out.json
    ? undefined
    : new TrainView(out, { logEvery: logEvery(args, out.tty), signal: interrupt.signal, ...known });
  try {
    const result = await train((e) => (view ? view.onEvent(e) : out.emit(e)), interrupt.signal);
    if (view) view.finish(result);
    else out.emit(result);
    return result.stopped === 'cancelled' ? EXIT.interrupted : EXIT.ok;
  } finally {
    interrupt.dispose();
  }
}

export function logEvery(args: ParsedArgs, tty: boolean): number {
  return args.number('log-every') ?? (tty ? 1 : 10);
}

const presetList = (Object.keys(PRESETS) as PresetName[])
  .map((p) => `${p} = ${PRESETS[p].description}, context ${PRESETS[p].blockSize}`)
  .join('; ');

const D = TRAIN_DEFAULTS;

const OPTIONS: OptionSpec[] = [
  {
    name: 'corpus',
    kind: 'strings',
    variadic: true,
    value: 'FILE|DIR',
    required: true,
    description: 'UTF-8 text files, or folders of .txt/.md files; several may follow one --corpus',
    group: 'Data',
  },
  {
    name: 'out',
    kind: 'string',
    value: 'RUN_DIR',
    required: true,
    description: 'run directory to create (model, optimizer state, tokenized corpus, metrics)',
    group: 'Data',
  },
  {
    name: 'tokenizer',
    kind: 'choice',
    value: 'char|bpe',
    choices: ['char', 'bpe'],
    default: 'char',
    description: 'train a tokenizer of this kind on the corpus',
    group: 'Data',
  },
  {
    name: 'tokenizer-dir',
    kind: 'string',
    value: 'DIR',
    description: 'use an existing tokenizer (tokenizer.json, or GPT-2 vocab.json + merges.txt)',
    group: 'Data',
  },
  { ...VOCAB_SIZE_OPTION, group: 'Data' },
  {
    name: 'val-percent',
    kind: 'number',
    value: 'PCT',
    min: 0,
    below: 100,
    default: percentOf(D.valFraction),
    description: 'percent of the tokens (the end of the corpus) held out for validation',
    group: 'Data',
    formerly: {
      name: 'val-fraction',
      change: 'it takes a percent (10 = 10 %, where 0.1 was given)',
    },
  },
  {
    name: 'preset',
    kind: 'choice',
    value: 'tiny|small|gpt1',
    choices: Object.keys(PRESETS),
    default: 'tiny',
    description: `model size: ${presetList}`,
    group: 'Model',
  },
  {
    name: 'from',
    kind: 'string',
    value: 'MODEL_DIR',
    description:
      "start from this model folder's weights, architecture and tokenizer (an import, e.g. a " +
      "cluster export's checkpoint, a run, a fine-tune) instead of a new model; the preset, size " +
      'and tokenizer options do not apply',
    group: 'Model',
  },
  {
    name: 'objective',
    kind: 'choice',
    value: 'clm|mlm',
    choices: ['clm', 'mlm'],
    default: 'clm',
    description:
      'clm: a GPT (causal attention, predict the next token); mlm: a BERT-style masked-LM ' +
      '(attends both ways, predicts 15% masked tokens; fine-tune it, it cannot generate)',
    group: 'Model',
  },
  modelOption('n-layer', 'number of transformer blocks'),
  modelOption('n-head', 'attention heads per block (must divide --n-embd)'),
  modelOption('n-embd', 'embedding width'),
  modelOption('block-size', 'context length in tokens'),
  {
    name: 'layout',
    kind: 'choice',
    value: 'gpt2|gpt1',
    choices: ['gpt2', 'gpt1'],
    defaultText: "the preset's (gpt1 for --preset gpt1, else gpt2)",
    description:
      'where the LayerNorms sit: gpt2 = pre-LayerNorm with a final LayerNorm; gpt1 = GPT-1 ' +
      'post-LayerNorm, x = LN(x + attn(x)), x = LN(x + mlp(x)), no final LayerNorm',
    group: 'Model',
  },
  {
    name: 'dropout',
    kind: 'number',
    value: 'P',
    min: 0,
    below: 1,
    default: 0,
    description: 'dropout probability while training',
    group: 'Model',
  },
  trainInt('batch-size', 'sequences per micro-batch', D.batchSize, 1),
  trainInt(
    'grad-accum',
    'micro-batches per optimizer step (effective batch = both)',
    D.gradAccum,
    1,
  ),
  trainInt('steps', 'total optimizer steps', D.steps, 1),
  trainNum('lr', 'peak learning rate (after warmup, then cosine decay)', D.lr, { above: 0 }),
  trainNum('min-lr', 'final learning rate of the cosine decay', D.minLr, { min: 0 }),
  trainInt('warmup', 'linear warmup steps', D.warmup, 0),
  trainNum('weight-decay', 'AdamW weight decay', D.weightDecay, { min: 0 }),
  trainInt('seed', 'random seed (initialisation, batches, dropout, samples)', D.seed),
  WORKERS_OPTION,
  {
    ...trainInt('eval-every', 'measure validation loss every N steps (0 = never)', D.evalEvery, 0),
    group: 'Evaluation and checkpoints',
  },
  {
    ...trainInt('eval-iters', 'batches per validation measurement', D.evalIters, 1),
    group: 'Evaluation and checkpoints',
  },
  {
    ...trainInt(
      'save-every',
      'save a checkpoint every N steps (0 = only at the end)',
      D.saveEvery,
      0,
    ),
    group: 'Evaluation and checkpoints',
  },
  {
    ...trainInt(
      'sample-every',
      'print a generated sample every N steps (0 = never)',
      D.sampleEvery,
      0,
    ),
    group: 'Evaluation and checkpoints',
  },
  {
    ...trainInt('sample-tokens', 'length of each sample in tokens', D.sampleTokens, 1),
    group: 'Evaluation and checkpoints',
  },
  ...ZERO_SHOT_OPTIONS,
  LOG_EVERY,
];

/** What --from's model decides: its size and its tokenizer. */
const FROM_EXCLUDES = [
  'tokenizer',
  'tokenizer-dir',
  'vocab-size',
  'preset',
  'n-layer',
  'n-head',
  'n-embd',
  'block-size',
  'layout',
];

function modelOption(name: string, description: string): OptionSpec {
  return {
    name,
    kind: 'int',
    value: 'N',
    min: 1,
    defaultText: "the preset's",
    description,
    group: 'Model',
  };
}

function trainInt(name: string, description: string, def: number, min?: number): OptionSpec {
  return {
    name,
    kind: 'int',
    value: 'N',
    default: def,
    description,
    group: 'Training',
    ...(min !== undefined ? { min } : {}),
  };
}

function trainNum(
  name: string,
  description: string,
  def: number,
  bounds: Pick<OptionSpec, 'min' | 'above'>,
): OptionSpec {
  return {
    name,
    kind: 'number',
    value: 'X',
    default: def,
    description,
    group: 'Training',
    ...bounds,
  };
}

async function run(ctx: Context): Promise<number> {
  const { args } = ctx;
  const num = (name: string) => args.number(name)!;
  const tokenizerDir = args.string('tokenizer-dir');
  if (tokenizerDir !== undefined && args.given('tokenizer')) {
    throw new UsageError('give either --tokenizer or --tokenizer-dir, not both', 'pretrain');
  }
  const kind = args.string('tokenizer') as TokenizerKind;
  if (args.given('vocab-size') && (tokenizerDir !== undefined || kind !== 'bpe')) {
    throw new UsageError('--vocab-size applies only to --tokenizer bpe', 'pretrain');
  }
  const from = args.string('from');
  if (from !== undefined) {
    const clash = FROM_EXCLUDES.find((o) => args.given(o));
    if (clash) throw new UsageError(`--${clash} does not apply with --from`, 'pretrain');
  }
  const train: Partial<TrainConfig> = {
    batchSize: num('batch-size'),
    gradAccum: num('grad-accum'),
    steps: num('steps'),
    lr: num('lr'),
    minLr: num('min-lr'),
    warmup: num('warmup'),
    weightDecay: num('weight-decay'),
    valFraction: fractionOf(num('val-percent')),
    evalEvery: num('eval-every'),
    evalIters: num('eval-iters'),
    saveEvery: num('save-every'),
    sampleEvery: num('sample-every'),
    sampleTokens: num('sample-tokens'),
    seed: num('seed'),
  };
  if (train.minLr! > train.lr!) {
    throw new UsageError(`--min-lr ${train.minLr} is above --lr ${train.lr}`, 'pretrain');
  }

  const zeroShot = zeroShotConfig(args);

  const report = await startBackend(ctx);
  train.workers = await workersFor(args, report.name);
  const { pretrain } = await import('../../engine/train/pretrain');
  return runTraining(ctx, { evalEvery: train.evalEvery! }, (onEvent, signal) =>
    pretrain({
      corpus: args.list('corpus'),
      out: args.requireString('out'),
      tokenizer: tokenizerDir !== undefined ? { dir: tokenizerDir } : kind,
      ...(kind === 'bpe' && tokenizerDir === undefined ? { vocabSize: num('vocab-size') } : {}),
      preset: args.string('preset') as PresetName,
      model: {
        nLayer: args.number('n-layer'),
        nHead: args.number('n-head'),
        nEmbd: args.number('n-embd'),
        blockSize: args.number('block-size'),
        ...(from === undefined || args.given('dropout') ? { dropout: num('dropout') } : {}),
        layout: args.string('layout') as 'gpt1' | 'gpt2' | undefined,
      },
      ...(from !== undefined ? { from } : {}),
      train,
      ...(zeroShot ? { zeroShot } : {}),
      objective: args.string('objective') as Objective,
      onEvent,
      signal,
    }),
  );
}

export const command: Command = {
  command: 'pretrain',
  summary: 'train a new GPT from scratch on your text files',
  usage: '--corpus FILE|DIR... --out RUN_DIR [options]',
  description:
    'Trains a tokenizer (or loads one), tokenizes the corpus, and pretrains a GPT on it, saving ' +
    'the run to RUN_DIR: a Hugging Face GPT-2 model folder plus what `resume` needs.',
  options: OPTIONS,
  notes: [
    'Ctrl-C stops after the current step and saves the run (exit code 130); resume it later with ' +
      '`resume --run RUN_DIR`. A second Ctrl-C quits at once.',
  ],
  examples: [
    'pretrain --corpus resources/samples/austen.txt --out runs/austen --steps 2000',
    'pretrain --corpus books/ --tokenizer bpe --vocab-size 4096 --preset small --out runs/books',
    'pretrain --from models/austen-cluster --corpus books/ --out runs/austen-more --steps 500',
    'pretrain --corpus resources/samples/austen.txt --out runs/austen --zero-shot ' +
      'resources/samples/sentiment-imdb.jsonl --zero-shot-labels "negative=bad,positive=good" ' +
      '--zero-shot-every 100',
  ],
  run,
};
