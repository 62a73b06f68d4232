/** A fine-tuned classifier's predictions: for one input, for many examples, and on a labeled file. */
import * as path from 'node:path';
import type {
  ClassifyInput,
  ColumnMap,
  EvaluateResult,
  FinetuneMetrics,
  RowProblemInfo,
} from '../../common/finetune';
import type { GPT } from '../model/gpt';
import { disposeBatch, makeBatch, predictionLayout } from './batch';
import { loadClassifier, type LoadedClassifier } from './checkpoint';
import { importCounts, type Example } from './data';
import { encodeAll, type Encoded } from './encode';
import { predictBatch, type ClassifierHead } from './head';
import { loadExamples } from './load';
import { computeMetrics, type Prediction } from './metrics';
import { describeInput, encodeExample, type Task } from './tasks';

/** Predictions for encoded examples, in batches. */
export async function predictAll(
  model: GPT,
  head: ClassifierHead,
  task: Task,
  items: readonly Encoded[],
  batchSize: number,
  signal?: AbortSignal,
  onProgress?: (done: number) => void,
): Promise<{ preds: Prediction[]; loss: number }> {
  const preds: Prediction[] = [];
  let lossSum = 0;
  const longest = (e: Encoded) => Math.max(...e.sequences.map((q) => q.length));
  items = [...items].sort((a, b) => longest(a) - longest(b));
  for (let i = 0; i < items.length; i += batchSize) {
    signal?.throwIfAborted();
    const chunk = items.slice(i, i + batchSize);
    const batch = makeBatch(
      chunk.map((c) => c.sequences),
      chunk.map((c) => c.example.label),
      predictionLayout(model.config),
    );
    try {
      const { probs, loss } = await predictBatch(model, head, task, batch);
      lossSum += loss * chunk.length;
      chunk.forEach((c, j) =>
        preds.push({
          row: c.example.row,
          input: describeInput(c.example.input),
          label: c.example.label,
          probs: probs[j]!,
        }),
      );
    } finally {
      disposeBatch(batch);
    }
    onProgress?.(preds.length);
  }
  return { preds, loss: items.length ? lossSum / items.length : NaN };
}

export const accuracyOf = (preds: readonly Prediction[]) =>
  preds.length
    ? preds.filter((p) => p.probs.indexOf(Math.max(...p.probs)) === p.label).length / preds.length
    : 0;

/** The input's shape for each task, for a clear message when it does not match. */
function checkInput(task: Task, input: ClassifyInput): void {
  const want: Record<Task, string> = {
    classification: 'text',
    entailment: 'premise',
    similarity: 'a',
    'multiple-choice': 'context',
  };
  if (!(want[task] in input)) {
    const shape = {
      classification: '{text}',
      entailment: '{premise, hypothesis}',
      similarity: '{a, b}',
      'multiple-choice': '{context, answers}',
    }[task];
    throw new Error(`this model does ${task}: its input is ${shape}`);
  }
}

/** P(y | x) for one input: a probability per label (per answer, named by its text, for multiple choice). */
export async function classify(
  c: LoadedClassifier,
  input: ClassifyInput,
): Promise<{ labels: string[]; probs: number[] }> {
  checkInput(c.task, input);
  const e = encodeExample(c.task, input, c.tokenizer, c.special, c.model.config.blockSize);
  const batch = makeBatch([e.sequences], [0], predictionLayout(c.model.config));
  try {
    const { probs } = await predictBatch(c.model, c.head, c.task, batch);
    const labels =
      c.task === 'multiple-choice' ? (input as { answers: string[] }).answers : c.labels;
    return { labels, probs: probs[0]! };
  } finally {
    disposeBatch(batch);
  }
}

/**
 * The classifier's predictions for many examples, batched; examples the tokenizer cannot encode
 * are left out and reported.
 */
export async function predictExamples(
  c: LoadedClassifier,
  examples: readonly Example[],
  opts: {
    batchSize?: number;
    signal?: AbortSignal;
    onProgress?: (done: number, total: number) => void;
  } = {},
): Promise<{ preds: Prediction[]; encoded: Encoded[]; problems: RowProblemInfo[] }> {
  const { encoded, problems } = encodeAll(
    examples,
    c.task,
    c.tokenizer,
    c.special,
    c.model.config.blockSize,
  );
  const { preds } = await predictAll(
    c.model,
    c.head,
    c.task,
    encoded,
    opts.batchSize ?? 32,
    opts.signal,
    (done) => opts.onProgress?.(done, encoded.length),
  );
  return { preds, encoded, problems };
}

/** Evaluates a fine-tuned model on a labeled file. */
export async function evaluate(opts: {
  model: string;
  data: string;
  columns?: ColumnMap;
  batchSize?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}): Promise<EvaluateResult> {
  const c = await loadClassifier(opts.model);
  try {
    const columns = { ...c.columns, ...opts.columns };
    const set = await loadExamples(opts.data, {
      task: c.task,
      columns,
      ...(c.task !== 'multiple-choice' ? { labels: c.labels } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    const { preds, encoded, problems } = await predictExamples(c, set.examples, {
      ...(opts.batchSize !== undefined ? { batchSize: opts.batchSize } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    });
    for (const p of problems)
      set.problems.push({ row: p.row, message: `${set.file} ${p.message}` });
    const kept = new Set(encoded.map((x) => x.example));
    set.examples = set.examples.filter((e) => kept.has(e));
    const labels = c.task === 'multiple-choice' ? set.labels : c.labels;
    const metrics: FinetuneMetrics = computeMetrics(preds, labels, c.task);
    return {
      type: 'evaluate.result',
      model: path.resolve(opts.model),
      data: path.resolve(opts.data),
      task: c.task,
      import: importCounts(set),
      accuracy: metrics.accuracy,
      macroF1: metrics.macroF1,
      confusion: metrics.confusion,
      metrics,
    };
  } finally {
    c.dispose();
  }
}
