/** `finetune`: GPT-1's supervised fine-tuning of a pretrained model on a labeled file. */
import * as path from 'node:path';
import type {
  AblationResult,
  FinetuneResult,
  FinetuneTask,
  GptBertResult,
} from '../../common/finetune';
import {
  DEFAULT_EPOCHS,
  GPT1_LR,
  GPT1_MODEL_PARAMS,
  SMALL_MODEL_LR,
  SMALL_MODEL_PARAMS,
  diagnoseResult,
  finetuneDefaults,
  formatLr,
  formatParams,
} from '../../common/finetuneAdvice';
import type { FinetuneEvent } from '../../engine/finetune/finetune';
import type { FinetuneData } from '../../engine/finetune/load';
import { UsageError } from '../args';
import { EXIT, onInterrupt, startBackend, type Command, type Context } from '../runtime';
import {
  columnFlags,
  FINETUNE_OPTIONS,
  modeFrom,
  resolveColumns,
  settingsFrom,
} from './finetuneOptions';
import {
  gptBertView,
  printAblation,
  printGptBert,
  printResult,
  progressView,
  reportData,
} from './finetuneReport';
import { workersFor } from './pretrain';

async function run(ctx: Context): Promise<number> {
  const { args, out } = ctx;
  const task = args.string('task') as FinetuneTask;
  const data = args.requireString('data');
  const { ablation, compare, outDir } = modeFrom(args);
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
  reportData(out, columns, prepared);

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
    printResult(out, r, diagnosis, outDir!);
    return r.outcome === 'cancelled' ? EXIT.interrupted : EXIT.ok;
  } finally {
    interrupt.dispose();
  }
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
  options: FINETUNE_OPTIONS,
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
