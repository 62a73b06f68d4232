/** `eval-icl`: in-context (zero-/few-shot) classification accuracy against the number of shots. */
import type { FinetunedBaseline } from '../../common/console';
import { unescapeField } from '../../common/escapes';
import { UsageError, type OptionSpec } from '../args';
import { formatDuration } from '../output';
import { EXIT, onInterrupt, startBackend, type Command, type Context } from '../runtime';
import type { WeightsChoice } from '../../common/console';
import { describeWeights, loadModel, MODEL_OPTION, WEIGHTS_OPTION } from './shared';

const OPTIONS: OptionSpec[] = [
  MODEL_OPTION,
  WEIGHTS_OPTION,
  {
    name: 'data',
    kind: 'string',
    value: 'FILE',
    required: true,
    description: 'a labeled table: .jsonl, .csv, .tsv or .json with a text and a label column',
  },
  {
    name: 'labels',
    kind: 'string',
    value: 'MAP',
    required: true,
    description:
      'each label and the word the model should say for it, e.g. "negative=terrible,positive=great"',
  },
  {
    name: 'shots',
    kind: 'string',
    value: 'LIST',
    default: 'auto',
    description: 'shot counts, e.g. 0,1,4; auto = 0, 1, 2, 4, 8, … while they fit the context',
  },
  {
    name: 'template',
    kind: 'string',
    value: 'TEXT',
    default: '{input} => {output}',
    description:
      'how one example is written; the label word goes where {output} is (\\n a new line, \\t a tab, \\\\ a backslash)',
  },
  {
    name: 'separator',
    kind: 'string',
    value: 'TEXT',
    default: '\\n',
    description: 'between demonstrations (\\n a new line, \\t a tab, \\\\ a backslash)',
  },
  {
    name: 'text-column',
    kind: 'string',
    value: 'NAME',
    defaultText: 'text, sentence, input, review, …',
    description: 'the column holding the text',
    group: 'Data',
  },
  {
    name: 'label-column',
    kind: 'string',
    value: 'NAME',
    defaultText: 'label, class, sentiment, …',
    description: 'the column holding the label',
    group: 'Data',
  },
  {
    name: 'limit',
    kind: 'int',
    value: 'N',
    min: 1,
    default: 100,
    description: 'evaluate at most N examples (the rest of the data is the demonstration pool)',
    group: 'Data',
  },
  {
    name: 'compare',
    kind: 'string',
    value: 'DIR',
    description:
      'a classifier fine-tuned on these labels (finetune --task classification), scored on the ' +
      'evaluated examples it did not train on',
  },
  {
    name: 'seed',
    kind: 'int',
    value: 'N',
    default: 1,
    description: 'seed of the split and of the demonstration draws',
    group: 'Data',
  },
];

function parseShots(raw: string): number[] | 'auto' {
  if (raw.trim() === 'auto') return 'auto';
  const out = raw.split(',').map((s) => {
    const n = Number(s.trim());
    if (s.trim() === '' || !Number.isInteger(n) || n < 0 || n > 256) {
      throw new UsageError(
        `--shots expects whole numbers from 0 to 256 separated by commas, or auto; got '${raw}'`,
        'eval-icl',
      );
    }
    return n;
  });
  return out;
}

/** The fine-tuned baseline's line: its accuracy on the rows it never saw, or why there is none. */
export function describeBaseline(f: FinetunedBaseline): string {
  if (f.overlap === 'unknown') {
    return (
      `fine-tuned: no number. ${f.model} does not record which rows it trained on (fine-tuned ` +
      'by an older version, or imported), so these examples may be its training rows; ' +
      'fine-tune it again to compare'
    );
  }
  if (f.accuracy === null) {
    return (
      `fine-tuned: no number. ${f.model} trained on all ${f.excluded} evaluated rows; evaluate ` +
      'more rows (--limit) or data it did not train on'
    );
  }
  const why =
    f.overlap === 'other-file'
      ? 'it trained on another file, so none left out'
      : `${f.excluded} row${f.excluded === 1 ? '' : 's'} it trained on left out`;
  return (
    `fine-tuned ${(f.accuracy * 100).toFixed(1)}% on ${f.n} held-out example${f.n === 1 ? '' : 's'} ` +
    `(${why}): ${f.model}`
  );
}

async function run(ctx: Context): Promise<number> {
  const { args, out } = ctx;
  const { parseLabelWords, evaluateIcl } = await import('../../engine/console/icl');
  let labels;
  try {
    labels = parseLabelWords(args.requireString('labels'));
  } catch (err) {
    throw new UsageError(`--${(err as Error).message}`, 'eval-icl');
  }
  const shots = parseShots(args.string('shots') ?? 'auto');
  const format = unescapeField(args.string('template')!);
  if (!format.includes('{input}') || !format.includes('{output}')) {
    throw new UsageError('--template needs {input} and {output}', 'eval-icl');
  }
  const data = args.requireString('data');
  await startBackend(ctx);
  const { readLabeled } = await import('../../engine/console/dataset');
  const table = await readLabeled(data, {
    ...(args.string('text-column') ? { textColumn: args.string('text-column')! } : {}),
    ...(args.string('label-column') ? { labelColumn: args.string('label-column')! } : {}),
  });
  for (const p of table.problems.slice(0, 3)) out.warn(p.message);
  if (table.problems.length > 3) out.warn(`… and ${table.problems.length - 3} more bad rows`);
  const known = new Set(table.labels.map((l) => l.label));
  const missing = labels.filter((l) => !known.has(l.label)).map((l) => l.label);
  if (missing.length) {
    throw new Error(
      `${data}: no rows with label ${missing.map((m) => `"${m}"`).join(', ')} in column ` +
        `"${table.labelColumn}" (its labels: ${[...known].slice(0, 10).join(', ')})`,
    );
  }
  const { refuseMaskedLmDir } = await import('../../engine/checkpoint/objective');
  await refuseMaskedLmDir(args.requireString('model'));
  const { model, tokenizer, weights } = await loadModel(
    args.requireString('model'),
    args.string('weights') as WeightsChoice,
  );
  if (!out.json) out.note(out.dim(`[${describeWeights(weights)}]`));
  const interrupt = onInterrupt(out, 'stopping the evaluation');
  try {
    const r = await evaluateIcl(model, tokenizer, {
      examples: table.examples,
      labels,
      shots,
      format,
      separator: unescapeField(args.string('separator') ?? '\\n'),
      seed: args.number('seed')!,
      limit: args.number('limit')!,
      signal: interrupt.signal,
      onStart: (s) => {
        if (out.json) out.emit({ type: 'console.eval.start', ...s });
        else
          out.note(
            `data   ${table.examples.length} examples (${table.textColumn} → ${table.labelColumn}): ` +
              `${s.evalSize} evaluated, ${s.poolSize} in the demonstration pool` +
              (s.skipped ? `, ${s.skipped} with other labels left out` : ''),
          );
        if (!out.json) {
          out.note(
            `shots  ${s.shots.join(', ')} (about ${s.maxShots} fit the context of ${model.config.blockSize})`,
          );
        }
      },
      onProgress: (p) => {
        if (out.json) out.emit({ type: 'console.eval.progress', ...p });
        else out.status(`k=${p.k}  ${p.done}/${p.total} examples  ETA ${formatDuration(p.etaMs)}`);
      },
      onPoint: (p) => {
        if (out.json) out.emit({ type: 'console.eval.point', ...p });
        else {
          const bar = '█'.repeat(Math.round(p.accuracy * 30)).padEnd(30, '·');
          const note = p.truncated
            ? `  (${p.meanShots.toFixed(1)} shots on average: ${p.truncated} prompts cut to fit)`
            : '';
          out.line(
            `k=${String(p.k).padStart(3)}  accuracy ${(p.accuracy * 100).toFixed(1).padStart(5)}%  ${bar}  ${p.correct}/${p.n}${note}`,
          );
        }
      },
    });
    const accuracy: Record<string, number> = {};
    for (const p of r.points) accuracy[String(p.k)] = p.accuracy;
    let finetuned: FinetunedBaseline | undefined;
    const compare = args.string('compare');
    if (compare) {
      const { finetunedBaseline } = await import('../../engine/console/compare');
      finetuned = await finetunedBaseline(
        compare,
        {
          file: data,
          examples: table.examples,
          labels,
          seed: r.seed,
          limit: args.number('limit')!,
        },
        { signal: interrupt.signal },
      );
    }
    if (out.json) {
      out.emit({ type: 'result', accuracy, ...r, ...(finetuned ? { finetuned } : {}) });
    } else {
      if (finetuned) out.line(describeBaseline(finetuned));
      out.line(
        `chance ${(r.chance * 100).toFixed(1)}%, majority label ${(r.majority * 100).toFixed(1)}% ` +
          `(seed ${r.seed})`,
      );
    }
    return EXIT.ok;
  } finally {
    interrupt.dispose();
    model.dispose();
  }
}

export const command: Command = {
  command: 'eval-icl',
  summary: 'few-shot classification accuracy against the number of shots (in-context learning)',
  usage: '--model DIR --data FILE --labels MAP [--shots LIST] [options]',
  description:
    'Classifies each example by likelihood, with no training: the label whose word the model ' +
    'finds likeliest after the prompt wins. The prompt holds k demonstrations drawn (balanced, ' +
    'seeded) from a part of the data kept apart from the evaluated examples, then the example. ' +
    'With --json the last line is {"type":"result","accuracy":{"0":…,"1":…},"points":[…],' +
    '"chance",…}.',
  options: OPTIONS,
  notes: ['Ctrl-C stops the evaluation (exit code 130).'],
  examples: [
    'eval-icl --model runs/austen --data resources/samples/sentiment-imdb.jsonl ' +
      '--labels "negative=terrible,positive=great" --shots 0,1,4 --json',
    'eval-icl --model runs/austen --data reviews.csv --text-column review --label-column stars ' +
      '--labels "1=bad,5=good" --template "Review: {input}\\nVerdict: {output}"',
  ],
  run,
};
