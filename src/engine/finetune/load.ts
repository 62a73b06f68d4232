/** Labeled files (CSV, TSV, JSONL, JSON) → examples, with every skipped row's reason. */
import * as path from 'node:path';
import type { ColumnMap, ImportCounts } from '../../common/finetune';
import { readTable } from '../data/records';
import {
  examplesFromRows,
  importCounts,
  neededColumns,
  splitExamples,
  type Example,
  type ExampleSet,
  type ParseOptions,
} from './data';
import type { Task } from './tasks';

export async function loadExamples(
  file: string,
  opts: Omit<ParseOptions, 'file'> & { signal?: AbortSignal },
): Promise<ExampleSet> {
  const name = path.basename(file);
  let table;
  try {
    table = await readTable(file, opts.signal ? { signal: opts.signal } : {});
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`${file}: file not found`);
    throw err;
  }
  if (table.rows.length === 0) {
    const first = table.problems[0];
    throw new Error(`${name}: no readable rows${first ? ` (${first.message})` : ''}`);
  }
  const missing = neededColumns(opts.task, opts.columns).filter((c) => !table.columns.includes(c));
  if (missing.length > 0) {
    throw new Error(
      `${name}: no column${missing.length > 1 ? 's' : ''} ${missing.map((m) => `"${m}"`).join(', ')} ` +
        `(the file's columns: ${table.columns.join(', ')})`,
    );
  }
  const rows = [...table.rows, ...table.problems].sort((a, b) => a.row - b.row);
  const set = examplesFromRows(rows, { ...opts, file: name });
  if (set.examples.length === 0) {
    throw new Error(
      `${name}: none of the ${set.rows} rows could be used` +
        (set.problems[0] ? `; the first problem: ${set.problems[0].message}` : ''),
    );
  }
  return set;
}

/** A fine-tune's labeled data: the task, the column mapping and the files. */
export interface FinetuneFiles {
  task: Task;
  columns: ColumnMap;
  data: string;
  valData?: string;
  signal?: AbortSignal;
}

export interface FinetuneData {
  train: Example[];
  val: Example[];
  labels: string[];
  trainImport: ImportCounts;
  valImport: ImportCounts | null;
}

/** Reads the training file (its labels define the set) and the validation file or split. */
export async function readFinetuneData(
  opts: FinetuneFiles & {
    valFraction: number;
    seed: number;
    /** A fixed label set (fine-tuning a model on new data with known labels). */
    labels?: string[];
  },
): Promise<FinetuneData> {
  const common = {
    task: opts.task,
    columns: opts.columns,
    ...(opts.signal ? { signal: opts.signal } : {}),
  };
  const trainSet = await loadExamples(opts.data, {
    ...common,
    ...(opts.labels ? { labels: opts.labels } : {}),
  });
  if (opts.task !== 'multiple-choice' && trainSet.labels.length < 2) {
    throw new Error(
      `${path.basename(opts.data)}: every row has the label "${trainSet.labels[0]}"; a classifier needs at least two labels`,
    );
  }
  let train = trainSet.examples;
  let val: Example[] = [];
  let valSet: ExampleSet | null = null;
  if (opts.valData) {
    const answers =
      opts.task === 'multiple-choice' && train[0]
        ? (train[0].input as { answers: string[] }).answers.length
        : undefined;
    valSet = await loadExamples(opts.valData, {
      ...common,
      labels: trainSet.labels,
      ...(answers ? { answers } : {}),
    });
    val = valSet.examples;
  } else if (opts.valFraction > 0 && train.length >= 2) {
    ({ train, val } = splitExamples(train, opts.valFraction, opts.seed));
  }
  return {
    train,
    val,
    labels: trainSet.labels,
    trainImport: importCounts(trainSet),
    valImport: valSet ? importCounts(valSet) : null,
  };
}
