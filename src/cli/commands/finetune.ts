/** `finetune`: GPT-1's supervised fine-tuning of a pretrained model on a labeled file. */
import * as path from 'node:path';
import {
  FINETUNE_TASKS,
  GPT1_FINETUNE,
  taskFields,
  type AblationResult,
  type GptBertResult,
  type ColumnMap,
  type FinetuneMetrics,
  type FinetuneResult,
  type FinetuneSettings,
  type FinetuneTask,
  type ImportCounts,
} from '../../common/finetune';
import {
  DEFAULT_EPOCHS,
  GPT1_LR,
  GPT1_MODEL_PARAMS,
  SMALL_MODEL_LR,
  SMALL_MODEL_PARAMS,
  describeDiagnosis,
  diagnoseResult,
  finetuneDefaults,
  formatLr,
  formatParams,
} from '../../common/finetuneAdvice';
import { fractionOf, percentOf } from '../../common/format';
import type { FinetuneEvent } from '../../engine/finetune/finetune';
import type { GptBertEvent } from '../../engine/finetune/gptBert';
import type { FinetuneData } from '../../engine/finetune/load';
import { UsageError, type OptionSpec, type ParsedArgs } from '../args';
import { formatDuration, type Output } from '../output';
import { EXIT, onInterrupt, startBackend, type Command, type Context } from '../runtime';
import { workersFor, WORKERS_OPTION } from './pretrain';
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

export function describeColumns(c: ColumnMap): string {
  return Object.entries(c)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : String(v)}`)
    .join(' ');
}

export function reportImport(out: Output, what: string, c: ImportCounts): void {
  out.line(
    `${what.padEnd(6)} ${c.file}: ${c.imported} of ${c.rows} rows imported` +
      (c.skipped ? `, ${c.skipped} skipped` : ''),
  );
  for (const p of c.problems.slice(0, 10)) out.warn(p.message);
  if (c.skipped > 10) out.note(`  … and ${c.skipped - 10} more skipped rows`);
}

export function printMetrics(out: Output, m: FinetuneMetrics): void {
  out.line(
    `accuracy ${m.accuracy.toFixed(4)} · macro-F1 ${m.macroF1.toFixed(4)}` +
      (m.f1 !== undefined ? ` · F1 (${m.positiveLabel}) ${m.f1.toFixed(4)}` : '') +
      ` · ${m.n} examples`,
  );
  const w = Math.max(6, ...m.labels.map((l) => l.length)) + 2;
  out.line('confusion (rows: true label, columns: predicted)');
  out.line(''.padEnd(w) + m.labels.map((l) => l.padStart(w)).join(''));
  m.confusion.forEach((row, i) =>
    out.line(m.labels[i]!.padEnd(w) + row.map((v) => String(v).padStart(w)).join('')),
  );
  if (m.mistakes.length) {
    out.line('most confident mistakes:');
    for (const x of m.mistakes.slice(0, 5)) {
      const text = x.input.length > 70 ? x.input.slice(0, 67) + '…' : x.input;
      out.line(
        `  row ${x.row}: ${x.predicted} (${(x.confidence * 100).toFixed(0)}%) but ${x.label}: ${JSON.stringify(text)}`,
      );
    }
  }
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

const OPTIONS: OptionSpec[] = [
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
function settingsFrom(args: ParsedArgs): Partial<FinetuneSettings> & FixedSettings {
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

type FixedSettings = Omit<FinetuneSettings, 'lr' | 'epochs'>;

/** Human progress lines for finetune events. */
function progressView(out: Output, logEvery: number) {
  return (e: FinetuneEvent) => {
    const pre = 'variant' in e && e.variant ? `[${e.variant}] ` : '';
    switch (e.type) {
      case 'finetune.variant':
        out.line(`── ${e.index + 1}/${e.count}: from ${e.init} weights, λ = ${e.lambda} ──`);
        return;
      case 'finetune.start':
        out.line(
          `${pre}train  ${e.trainExamples} examples · val ${e.valExamples} · ${e.totalSteps} steps over ${e.epochs} epoch(s)` +
            ` · labels ${e.labels.join(', ')} · ${e.backend}`,
        );
        if (e.newTokens.length)
          out.line(`${pre}vocab  + ${e.newTokens.join(' ')} (embeddings N(0, 0.02))`);
        return;
      case 'finetune.step':
        if (e.step % logEvery === 0 || e.step === 1 || e.step === e.totalSteps) {
          out.status(
            `${pre}step ${String(e.step).padStart(String(e.totalSteps).length)}/${e.totalSteps}  epoch ${e.epoch}` +
              `  loss ${e.loss.toFixed(4)} (L2 ${e.l2.toFixed(4)}, L1 ${e.l1.toFixed(4)})` +
              `  lr ${e.lr.toExponential(2)}  ETA ${formatDuration(e.etaMs)}`,
          );
        }
        return;
      case 'finetune.epoch':
        out.line(
          `${pre}epoch ${e.epoch}/${e.epochs}  val accuracy ${e.valAccuracy.toFixed(4)}  val loss ${e.valLoss.toFixed(4)}`,
        );
        return;
      case 'log':
        out.note(`${pre}${e.message}`);
        return;
      default:
        return;
    }
  };
}

async function run(ctx: Context): Promise<number> {
  const { args, out } = ctx;
  const task = args.string('task') as FinetuneTask;
  const data = args.requireString('data');
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
  const settings = settingsFrom(args);
  const flags = columnFlags(args);
  const report = await startBackend(ctx);
  const workers = await workersFor(args, report.name);
  const { finetune } = await import('../../engine/finetune/finetune');
  const { ablation: runAblation } = await import('../../engine/finetune/ablation');
  const { readFinetuneData } = await import('../../engine/finetune/load');
  const { mappingProblem } = await import('../../engine/finetune/data');
  const columns = await resolveColumns(task, data, flags);
  const problem = mappingProblem(task, columns);
  if (problem)
    throw new UsageError(`${path.basename(data)}: ${problem} (see the column flags)`, 'finetune');

  const valData = args.string('val-data');
  const prepared: FinetuneData = await readFinetuneData({
    task,
    columns,
    data,
    ...(valData ? { valData } : {}),
    valFraction: settings.valFraction,
    seed: settings.seed,
  });
  if (out.json) {
    out.emit({
      type: 'finetune.data',
      columns,
      labels: prepared.labels,
      train: prepared.trainImport,
      val: prepared.valImport,
      trainExamples: prepared.train.length,
      valExamples: prepared.val.length,
    });
  } else {
    out.line(`columns ${describeColumns(columns)}`);
    reportImport(out, 'data', prepared.trainImport);
    if (prepared.valImport) reportImport(out, 'val', prepared.valImport);
  }

  const interrupt = onInterrupt(
    out,
    'stopping: the model so far is saved when the current step ends',
  );
  const view = out.json
    ? (e: FinetuneEvent) => out.emit(e)
    : progressView(out, args.number('log-every')!);
  let params: number | undefined;
  const show = (e: FinetuneEvent) => {
    if (e.type === 'finetune.start') params = e.params;
    view(e);
  };
  const common = {
    model: args.requireString('model'),
    task,
    columns,
    data,
    ...(valData ? { valData } : {}),
    settings,
    workers,
    onEvent: show,
    signal: interrupt.signal,
    prepared,
  };
  try {
    if (ablation) {
      const r: AblationResult = await runAblation(common);
      if (out.json) out.emit(r);
      else printAblation(out, r);
      return EXIT.ok;
    }
    if (compare) {
      const { gptBert } = await import('../../engine/finetune/gptBert');
      const steps = args.number('pretrain-steps');
      const keep = args.string('keep');
      const r: GptBertResult = await gptBert({
        ...common,
        ...(steps !== undefined ? { pretrainSteps: steps } : {}),
        ...(keep !== undefined ? { keep } : {}),
        onEvent: out.json ? (e) => out.emit(e) : gptBertView(out, show),
      });
      if (out.json) out.emit(r);
      else printGptBert(out, r);
      return EXIT.ok;
    }
    const r: FinetuneResult = await finetune({ ...common, out: outDir! });
    const diagnosis = diagnoseResult(r, {
      lr: settings.lr ?? finetuneDefaults(params ?? 0).lr,
      epochs: settings.epochs ?? DEFAULT_EPOCHS,
      ...(params !== undefined ? { params } : {}),
    });
    if (out.json) {
      if (diagnosis) out.emit({ type: 'finetune.diagnosis', ...diagnosis });
      out.emit(r);
    } else {
      out.endLive();
      out.line(
        `${r.outcome === 'cancelled' ? 'stopped' : 'done'}: ${r.steps} steps in ${formatDuration(r.elapsedMs)}` +
          ` — on the ${r.evaluatedOn === 'val' ? 'validation' : 'training'} set:`,
      );
      printMetrics(out, r.metrics);
      for (const l of diagnosis ? describeDiagnosis(diagnosis) : []) out.line(l);
      out.line(`saved to ${r.outDir}`);
      out.line(`  evaluate: gpt-studio evaluate --model ${outDir} --data FILE`);
    }
    return r.outcome === 'cancelled' ? EXIT.interrupted : EXIT.ok;
  } finally {
    interrupt.dispose();
  }
}

/** Progress lines of GPT vs BERT: its phases and pretraining steps, then the fine-tunes' own. */
function gptBertView(out: Output, finetuneView: (e: FinetuneEvent) => void) {
  return (e: GptBertEvent) => {
    if (e.type === 'gptbert.phase') {
      const what = e.phase === 'pretrain' ? 'pretraining' : 'fine-tuning';
      out.line(`── ${e.index + 1}/${e.count}: ${what} ${e.model} ──`);
    } else if (e.type === 'gptbert.step') {
      if (e.step % 10 === 0 || e.step === 1 || e.step === e.totalSteps) {
        out.status(
          `[${e.model}] pretrain step ${e.step}/${e.totalSteps}  loss ${e.trainLoss.toFixed(4)}` +
            `  ETA ${formatDuration(e.etaMs)}`,
        );
      }
    } else {
      finetuneView(e);
    }
  };
}

function printGptBert(out: Output, r: GptBertResult): void {
  out.endLive();
  const p = r.pretrain;
  out.line('');
  out.line(
    `both pretrained ${p.steps} steps, ${p.nLayer} layers × ${p.nEmbd} wide, ${p.nHead} heads, ` +
      `context ${p.blockSize}; then fine-tuned alike (${r.task})`,
  );
  out.line('model  objective  params    pretrain loss  accuracy  macro-F1  pretrain  fine-tune');
  for (const v of r.rows) {
    out.line(
      `${v.model.padEnd(5)}  ${v.objective.padEnd(9)}  ${String(v.params).padEnd(8)}  ` +
        `${v.pretrainLoss.toFixed(4).padStart(13)}  ${v.accuracy.toFixed(4).padStart(8)}  ` +
        `${v.macroF1.toFixed(4).padStart(8)}  ${formatDuration(v.pretrainMs).padStart(8)}  ` +
        formatDuration(v.finetuneMs).padStart(9),
    );
  }
  out.line(
    "pretrain loss: GPT's is next-token, BERT's masked-token cross-entropy (not comparable). " +
      `total ${formatDuration(r.elapsedMs)}`,
  );
}

function printAblation(out: Output, r: AblationResult): void {
  out.endLive();
  out.line('');
  out.line('init        λ     accuracy  macro-F1  time');
  for (const v of r.variants) {
    out.line(
      `${v.init.padEnd(10)}  ${String(v.lambda).padEnd(4)}  ${v.accuracy.toFixed(4).padStart(8)}  ${v.macroF1
        .toFixed(4)
        .padStart(8)}  ${formatDuration(v.elapsedMs)}`,
    );
  }
  out.line(`total ${formatDuration(r.elapsedMs)}`);
}

export const command: Command = {
  command: 'finetune',
  summary: "fine-tune a pretrained model on labeled data (GPT-1's L3 = L2 + λ·L1)",
  usage:
    '--model DIR --task classification|entailment|similarity|multiple-choice --data FILE --out DIR [options]',
  description:
    "GPT-1's supervised stage: a linear head on the top hidden state at the extract token, trained " +
    'with L3 = L2 + λ·L1 (the classification loss plus λ times the LM loss on the same sequences). ' +
    'Inputs become [s] text [e]; [s] premise $ hypothesis [e]; both orders of [s] a $ b [e] (added); ' +
    'or [s] context $ answer [e] per answer (a softmax over the answers). The model is saved as a ' +
    'Hugging Face GPT-2 folder with classifier.weight/bias, id2label and label2id.',
  options: OPTIONS,
  notes: [
    `Defaults by model size: lr ${formatLr(SMALL_MODEL_LR)} up to ${formatParams(SMALL_MODEL_PARAMS)} ` +
      `parameters, GPT-1's ${formatLr(GPT1_LR)} from ${formatParams(GPT1_MODEL_PARAMS)}, ` +
      `log-interpolated between; ${DEFAULT_EPOCHS} epochs (calibration: docs/finetune.md).`,
    'A sequence longer than the context loses tokens from the front of its first part (text, ' +
      'premise, context); [s], $, [e] and the second part are kept.',
    'Rows with a missing or empty field, a label outside the set, or a different number of ' +
      'answers are skipped with a message naming the file and row; the rest is used.',
    'Ctrl-C stops after the current step and saves the model so far (exit code 130).',
  ],
  examples: [
    'finetune --model runs/austen --task classification --data resources/samples/sentiment-imdb.jsonl --out finetunes/sentiment',
    'finetune --model runs/austen --task entailment --data snli.csv --premise-column sentence1 --hypothesis-column sentence2 --label-column gold_label --out finetunes/nli --lambda 0',
    'finetune --model runs/austen --task multiple-choice --data story.jsonl --context-column story --answer-columns ending1,ending2 --label-column answer --out finetunes/story',
    'finetune --model runs/austen --task classification --data resources/samples/sentiment-imdb.jsonl --ablation',
    'finetune --model runs/austen --task classification --data resources/samples/sentiment-imdb.jsonl --compare gpt-bert --pretrain-steps 300',
  ],
  run,
};
