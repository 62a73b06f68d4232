/** `evaluate`: accuracy, macro-F1 and the confusion matrix of a fine-tuned model on a labeled file. */
import type { FinetuneTask } from '../../common/finetune';
import type { OptionSpec } from '../args';
import { EXIT, onInterrupt, startBackend, type Command, type Context } from '../runtime';
import { COLUMN_OPTIONS, columnFlags } from './finetuneOptions';
import { printMetrics, reportImport } from './finetuneReport';
import { MODEL_OPTION } from './shared';

const OPTIONS: OptionSpec[] = [
  { ...MODEL_OPTION, description: 'a fine-tuned model folder (made by `finetune`)' },
  {
    name: 'data',
    kind: 'string',
    value: 'FILE',
    required: true,
    description: 'labeled CSV, TSV or JSONL file',
  },
  ...COLUMN_OPTIONS.map((o) => ({
    ...o,
    group: 'Columns (default: the ones the model was fine-tuned with)',
  })),
  {
    name: 'batch-size',
    kind: 'int',
    value: 'N',
    min: 1,
    default: 32,
    description: 'examples per forward pass',
  },
];

async function run(ctx: Context): Promise<number> {
  const { args, out } = ctx;
  const flags = columnFlags(args);
  await startBackend(ctx);
  const { evaluate } = await import('../../engine/finetune/predict');
  const interrupt = onInterrupt(out, 'stopping');
  try {
    const r = await evaluate({
      model: args.requireString('model'),
      data: args.requireString('data'),
      columns: flags,
      batchSize: args.number('batch-size')!,
      signal: interrupt.signal,
      onProgress: (done, total) => {
        if (out.json) out.emit({ type: 'evaluate.progress', done, total });
        else if (out.tty) out.status(`evaluating ${done}/${total}`);
      },
    });
    if (out.json) {
      out.emit(r);
      return EXIT.ok;
    }
    out.endLive();
    out.line(`model  ${r.model} (${r.task satisfies FinetuneTask})`);
    reportImport(out, 'data', r.import);
    printMetrics(out, r.metrics);
    return EXIT.ok;
  } finally {
    interrupt.dispose();
  }
}

export const command: Command = {
  command: 'evaluate',
  summary: 'accuracy, macro-F1 and confusion matrix of a fine-tuned model on labeled data',
  usage: '--model DIR --data FILE [options]',
  description:
    'Classifies every row of a labeled file with a fine-tuned model and reports accuracy, macro-F1 ' +
    '(and F1 of the positive label for two-label similarity), the confusion matrix and the most ' +
    'confident mistakes. With --json the last line is {"type":"evaluate.result","accuracy",' +
    '"macroF1","confusion",...}.',
  options: OPTIONS,
  examples: ['evaluate --model finetunes/sentiment --data test.jsonl --json'],
  run,
};
