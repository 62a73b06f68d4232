/** `finetune`'s options: the column flags (shared with `evaluate`), the training settings, the mode. */
import {
  FINETUNE_TASKS,
  GPT1_FINETUNE,
  taskFields,
  type ColumnMap,
  type FinetuneSettings,
  type FinetuneTask,
} from '../../common/finetune';
import { fractionOf, percentOf } from '../../common/format';
import { UsageError, type OptionSpec, type ParsedArgs } from '../args';
import { WORKERS_OPTION } from './pretrain';
import { MODEL_OPTION } from './shared';

const G = GPT1_FINETUNE;

const col = (name: string, description: string): OptionSpec => ({
  name,
  kind: 'string',
  value: 'NAME',
  description,
  group: 'Columns (guessed from the column names when not given)',
});

/** The column flags, shared with `evaluate`. */
export const COLUMN_OPTIONS: OptionSpec[] = [
  col('text-column', 'classification: the text'),
  col('premise-column', 'entailment: the premise'),
  col('hypothesis-column', 'entailment: the hypothesis'),
  col('a-column', 'similarity: the first sentence'),
  col('b-column', 'similarity: the second sentence'),
  col('context-column', 'multiple choice: the context (question, story start)'),
  {
    ...col('answer-columns', 'multiple choice: the answers, one column each (comma-separated)'),
    value: 'A,B,...',
  },
  col('answers-column', 'multiple choice: one column holding a JSON array of answers'),
  col(
    'label-column',
    'the label (multiple choice: the right answer as a 0-based index, a letter, its column or its text)',
  ),
];

/** The mapping from the column flags. */
export function columnFlags(args: ParsedArgs): ColumnMap {
  const map: ColumnMap = {};
  const set = (key: keyof ColumnMap, flag: string) => {
    const v = args.string(flag);
    if (v !== undefined) (map as Record<string, unknown>)[key] = v;
  };
  set('text', 'text-column');
  set('premise', 'premise-column');
  set('hypothesis', 'hypothesis-column');
  set('a', 'a-column');
  set('b', 'b-column');
  set('context', 'context-column');
  set('answersColumn', 'answers-column');
  set('label', 'label-column');
  const answers = args.string('answer-columns');
  if (answers !== undefined) {
    const list = answers
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    if (list.length < 2) throw new UsageError('--answer-columns needs at least two column names');
    map.answers = list;
  }
  return map;
}

/** The flags over a guess from the file's column names, restricted to what the task reads. */
export async function resolveColumns(
  task: FinetuneTask,
  file: string,
  flags: ColumnMap,
): Promise<ColumnMap> {
  const { readTable } = await import('../../engine/data/records');
  const { guessColumns } = await import('../../engine/finetune/data');
  const table = await readTable(file, { limit: 20 });
  const guess = guessColumns(table.columns);
  if (flags.answers || flags.answersColumn) {
    delete guess.answers;
    delete guess.answersColumn;
  }
  const merged = { ...guess, ...flags };
  const out: ColumnMap = {};
  // the task's fields; multiple choice may also name its answers by one column
  const keys: Array<keyof ColumnMap> = [...taskFields(task)];
  if (task === 'multiple-choice') keys.push('answersColumn');
  for (const k of keys) {
    if (merged[k] !== undefined) (out as Record<string, unknown>)[k] = merged[k];
  }
  return out;
}

const setting = (
  name: string,
  kind: 'number' | 'int',
  def: number,
  description: string,
  bounds: Partial<OptionSpec> = {},
): OptionSpec => ({
  name,
  kind,
  value: kind === 'int' ? 'N' : 'X',
  default: def,
  description,
  group: 'Training (GPT-1 defaults; lr and epochs by model size)',
  ...bounds,
});

/** A setting whose default comes from the model's size (common/finetuneAdvice.ts). */
const sizeRuleSetting = (
  name: string,
  kind: 'number' | 'int',
  description: string,
  bounds: Partial<OptionSpec>,
): OptionSpec => ({
  name,
  kind,
  value: kind === 'int' ? 'N' : 'X',
  defaultText: 'by model size, see below',
  description,
  group: 'Training (GPT-1 defaults; lr and epochs by model size)',
  ...bounds,
});

export const FINETUNE_OPTIONS: OptionSpec[] = [
  { ...MODEL_OPTION, description: 'the pretrained model folder (a run, or a GPT-2 folder)' },
  {
    name: 'task',
    kind: 'choice',
    value: FINETUNE_TASKS.join('|'),
    choices: FINETUNE_TASKS,
    required: true,
    description: 'how inputs are laid out (GPT-1 Figure 1)',
  },
  {
    name: 'data',
    kind: 'string',
    value: 'FILE',
    required: true,
    description: 'labeled CSV, TSV or JSONL file',
  },
  {
    name: 'out',
    kind: 'string',
    value: 'DIR',
    description: 'folder for the fine-tuned model (required unless --ablation)',
  },
  {
    name: 'val-data',
    kind: 'string',
    value: 'FILE',
    description: 'a separate validation file (same columns); otherwise --val-percent of --data',
  },
  {
    name: 'val-percent',
    kind: 'number',
    value: 'PCT',
    min: 0,
    below: 100,
    default: percentOf(G.valFraction),
    description: 'percent of --data held out for validation (when no --val-data)',
    formerly: {
      name: 'val-fraction',
      change: 'it takes a percent (10 = 10 %, where 0.1 was given)',
    },
  },
  ...COLUMN_OPTIONS,
  setting('lambda', 'number', G.lambda, 'weight of the LM loss: L3 = L2 + λ·L1 (0 allowed)', {
    min: 0,
  }),
  sizeRuleSetting('epochs', 'int', 'passes over the training data', { min: 1 }),
  sizeRuleSetting('lr', 'number', 'peak learning rate', { above: 0 }),
  setting('batch-size', 'int', G.batchSize, 'examples per step', { min: 1 }),
  setting(
    'warmup-percent',
    'number',
    percentOf(G.warmup),
    'linear warmup over this percent of the steps, then linear decay',
    {
      value: 'PCT',
      min: 0,
      max: 100,
      formerly: {
        name: 'warmup',
        change: 'it takes a percent (0.2 = 0.2 %, where 0.002 was given)',
      },
    },
  ),
  setting('clf-dropout', 'number', G.clfDropout, 'dropout on h before the classifier', {
    min: 0,
    below: 1,
  }),
  setting('weight-decay', 'number', G.weightDecay, 'AdamW weight decay on matrices', { min: 0 }),
  setting('seed', 'int', G.seed, 'random seed (head, split, order, dropout)'),
  { ...WORKERS_OPTION, group: 'Training (GPT-1 defaults; lr and epochs by model size)' },
  {
    name: 'init',
    kind: 'choice',
    value: 'pretrained|random',
    choices: ['pretrained', 'random'],
    default: 'pretrained',
    description: "start from the model's weights, or from random ones of the same shape",
    group: 'Training (GPT-1 defaults; lr and epochs by model size)',
  },
  {
    name: 'ablation',
    kind: 'boolean',
    description:
      'run the same fine-tune from pretrained and random init, with --lambda and with λ = 0, and compare (nothing saved)',
    group: 'Training (GPT-1 defaults; lr and epochs by model size)',
  },
  {
    name: 'compare',
    kind: 'string',
    value: 'gpt-bert',
    description:
      "GPT vs BERT: pretrain a GPT and a masked-LM (BERT-style) model as --model's run was " +
      '(its corpus, tokenizer, size and settings), fine-tune both on --data and compare (nothing saved)',
    group: 'GPT vs BERT',
  },
  {
    name: 'pretrain-steps',
    kind: 'int',
    value: 'N',
    min: 1,
    defaultText: "the run's",
    description: 'with --compare: pretraining steps of each model',
    group: 'GPT vs BERT',
  },
  {
    name: 'keep',
    kind: 'string',
    value: 'DIR',
    description: 'with --compare: keep the two pretrained models in DIR/gpt and DIR/bert',
    group: 'GPT vs BERT',
  },
  {
    name: 'log-every',
    kind: 'int',
    value: 'N',
    min: 1,
    default: 10,
    description: 'print a progress line every N steps',
    group: 'Output',
  },
];

/** The settings; the learning rate and epochs only when given (else the model-size rule's). */
export function settingsFrom(args: ParsedArgs): Partial<FinetuneSettings> & FixedSettings {
  const n = (k: string) => args.number(k)!;
  const lr = args.number('lr');
  const epochs = args.number('epochs');
  return {
    ...(lr !== undefined ? { lr } : {}),
    ...(epochs !== undefined ? { epochs } : {}),
    batchSize: n('batch-size'),
    warmup: fractionOf(n('warmup-percent')),
    clfDropout: n('clf-dropout'),
    lambda: n('lambda'),
    weightDecay: n('weight-decay'),
    valFraction: fractionOf(n('val-percent')),
    init: args.string('init') as 'pretrained' | 'random',
    seed: n('seed'),
  };
}

export type FixedSettings = Omit<FinetuneSettings, 'lr' | 'epochs'>;

/** What the run does: fine-tune and save (`outDir`), the ablation, or GPT vs BERT; checks the flags fit. */
export function modeFrom(args: ParsedArgs): {
  ablation: boolean;
  compare: boolean;
  outDir: string | undefined;
} {
  const ablation = args.flag('ablation');
  const compareWith = args.string('compare');
  if (compareWith !== undefined && compareWith !== 'gpt-bert') {
    throw new UsageError(
      `--compare takes gpt-bert (GPT vs BERT), got '${compareWith}'`,
      'finetune',
    );
  }
  const compare = compareWith !== undefined;
  const outDir = args.string('out');
  if (ablation && compare) {
    throw new UsageError('give either --ablation or --compare, not both', 'finetune');
  }
  for (const flag of ['pretrain-steps', 'keep']) {
    if (!compare && args.given(flag)) {
      throw new UsageError(`--${flag} applies only to --compare gpt-bert`, 'finetune');
    }
  }
  if (!ablation && !compare && outDir === undefined)
    throw new UsageError('missing required option --out', 'finetune');
  if ((ablation || compare) && outDir !== undefined) {
    throw new UsageError(
      `--${ablation ? 'ablation' : 'compare'} saves nothing; leave out --out`,
      'finetune',
    );
  }
  return { ablation, compare, outDir };
}
