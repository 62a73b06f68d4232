/**
 * Labeled rows → examples. Each row is checked on its own: a missing or empty field, a label
 * outside the set, or a multiple-choice row with a different number of answers is reported with
 * its file and row, and the rest is kept.
 */
import {
  taskFields,
  type ColumnMap,
  type ImportCounts,
  type RowProblemInfo,
} from '../../common/finetune';
import type { ExampleInput, Task } from './tasks';

export interface Row {
  row: number;
  values: Record<string, string>;
}

export interface Example {
  row: number;
  input: ExampleInput;
  /** Index into the label set (the correct answer's index for multiple choice). */
  label: number;
}

export interface ExampleSet {
  file: string;
  examples: Example[];
  problems: RowProblemInfo[];
  rows: number;
  labels: string[];
}

export const MAX_PROBLEMS = 50;

/** The column names a mapping gives for the task's fields (FINETUNE_TASK_FIELDS), in order. */
export function neededColumns(task: Task, c: ColumnMap): string[] {
  return taskFields(task).flatMap((k) => {
    if (k === 'answers') return c.answers ?? (c.answersColumn ? [c.answersColumn] : []);
    const v = c[k];
    return v === undefined ? [] : [v];
  });
}

/** Checks the mapping names every column the task needs; returns a message or null. */
export function mappingProblem(task: Task, c: ColumnMap): string | null {
  if (task === 'multiple-choice' && c.answers && c.answersColumn) {
    return 'give either answer columns or an answers column, not both';
  }
  const missing = taskFields(task).filter((k) =>
    k === 'answers' ? !c.answers && !c.answersColumn : c[k] === undefined,
  );
  return missing.length ? `the ${task} task needs a column for: ${missing.join(', ')}` : null;
}

/** Numbers in numeric order, anything else alphabetically. */
export function sortLabels(labels: Iterable<string>): string[] {
  const all = [...new Set(labels)];
  const numeric = all.every((l) => l.trim() !== '' && Number.isFinite(Number(l)));
  return numeric
    ? all.sort((a, b) => Number(a) - Number(b))
    : all.sort((a, b) => a.localeCompare(b));
}

/** Which answer a multiple-choice label names: a 0-based index, a letter, the column or the text. */
function answerIndex(label: string, answers: string[], columns: string[] | undefined): number {
  const t = label.trim();
  if (/^\d+$/.test(t)) return Number(t);
  if (/^[A-Z]$/.test(t)) return t.charCodeAt(0) - 65;
  const byColumn = columns?.indexOf(t) ?? -1;
  if (byColumn >= 0) return byColumn;
  return answers.indexOf(label);
}

interface Parsed {
  row: number;
  input: ExampleInput;
  label: string;
}

function parseRow(
  r: Row,
  task: Task,
  c: ColumnMap,
  where: string,
): { ok: Parsed } | { problem: string } {
  const field = (col: string | undefined, what: string): string | { problem: string } => {
    const v = col === undefined ? undefined : r.values[col];
    if (v === undefined) return { problem: `${where}: no "${col}" field (the ${what})` };
    if (v.trim() === '') return { problem: `${where}: the ${what} ("${col}") is empty` };
    return v;
  };
  const fields: Record<string, string> = {};
  const names: Array<[string, string | undefined, string]> =
    task === 'classification'
      ? [['text', c.text, 'text']]
      : task === 'entailment'
        ? [
            ['premise', c.premise, 'premise'],
            ['hypothesis', c.hypothesis, 'hypothesis'],
          ]
        : task === 'similarity'
          ? [
              ['a', c.a, 'first sentence'],
              ['b', c.b, 'second sentence'],
            ]
          : [['context', c.context, 'context']];
  for (const [key, col, what] of [
    ...names,
    ['label', c.label, 'label'] as [string, string | undefined, string],
  ]) {
    const v = field(col, what);
    if (typeof v !== 'string') return v;
    fields[key] = v;
  }
  const label = fields.label!.trim();
  if (task === 'classification')
    return { ok: { row: r.row, input: { text: fields.text! }, label } };
  if (task === 'entailment')
    return {
      ok: {
        row: r.row,
        input: { premise: fields.premise!, hypothesis: fields.hypothesis! },
        label,
      },
    };
  if (task === 'similarity')
    return { ok: { row: r.row, input: { a: fields.a!, b: fields.b! }, label } };
  let answers: string[];
  if (c.answers) {
    answers = [];
    for (const [i, col] of c.answers.entries()) {
      const v = field(col, `answer ${i + 1}`);
      if (typeof v !== 'string') return v;
      answers.push(v);
    }
  } else {
    const raw = field(c.answersColumn, 'answers');
    if (typeof raw !== 'string') return raw;
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      return { problem: `${where}: the answers ("${c.answersColumn}") are not a JSON array` };
    }
    if (!Array.isArray(parsed) || parsed.some((a) => typeof a !== 'string' || a.trim() === '')) {
      return {
        problem: `${where}: the answers ("${c.answersColumn}") must be a JSON array of non-empty strings`,
      };
    }
    answers = parsed as string[];
  }
  return { ok: { row: r.row, input: { context: fields.context!, answers }, label } };
}

export interface ParseOptions {
  task: Task;
  columns: ColumnMap;
  /** The file's name, for messages. */
  file: string;
  /** A fixed label set (validation or evaluation data); a label outside it is a row problem. */
  labels?: readonly string[];
  /** Multiple choice: the number of answers every row must have (default: the first valid row's). */
  answers?: number;
}

/**
 * Turns rows into examples. Without a fixed label set, the labels are those seen, sorted; for
 * multiple choice the labels are the answer positions.
 */
export function examplesFromRows(
  rows: Iterable<Row | RowProblemInfo>,
  opts: ParseOptions,
): ExampleSet {
  const { task, columns: c, file } = opts;
  const mapping = mappingProblem(task, c);
  if (mapping) throw new Error(`${file}: ${mapping}`);
  const problems: RowProblemInfo[] = [];
  const parsed: Parsed[] = [];
  let count = 0;
  let nAnswers = opts.answers;
  for (const r of rows) {
    count++;
    if (!('values' in r)) {
      problems.push(r);
      continue;
    }
    const where = `${file} row ${r.row}`;
    const res = parseRow(r, task, c, where);
    if ('problem' in res) {
      problems.push({ row: r.row, message: res.problem });
      continue;
    }
    if (task === 'multiple-choice') {
      const n = (res.ok.input as { answers: string[] }).answers.length;
      if (n < 2) {
        problems.push({ row: r.row, message: `${where}: needs at least 2 answers, has ${n}` });
        continue;
      }
      nAnswers ??= n;
      if (n !== nAnswers) {
        problems.push({
          row: r.row,
          message: `${where}: has ${n} answers, but the rows before have ${nAnswers}`,
        });
        continue;
      }
    }
    parsed.push(res.ok);
  }

  let labels: string[];
  const examples: Example[] = [];
  if (task === 'multiple-choice') {
    labels = opts.labels
      ? [...opts.labels]
      : (c.answers ?? Array.from({ length: nAnswers ?? 0 }, (_, i) => String(i + 1)));
    for (const p of parsed) {
      const answers = (p.input as { answers: string[] }).answers;
      const k = answerIndex(p.label, answers, c.answers);
      if (!(k >= 0 && k < answers.length)) {
        problems.push({
          row: p.row,
          message:
            `${file} row ${p.row}: label "${p.label}" names none of the ${answers.length} answers ` +
            `(use a 0-based index, a letter A–${String.fromCharCode(64 + answers.length)}, the answer's column or its text)`,
        });
        continue;
      }
      examples.push({ row: p.row, input: p.input, label: k });
    }
  } else {
    labels = opts.labels ? [...opts.labels] : sortLabels(parsed.map((p) => p.label));
    const index = new Map(labels.map((l, i) => [l, i]));
    for (const p of parsed) {
      const k = index.get(p.label);
      if (k === undefined) {
        problems.push({
          row: p.row,
          message: `${file} row ${p.row}: label "${p.label}" is not one of the labels (${labels.join(', ')})`,
        });
        continue;
      }
      examples.push({ row: p.row, input: p.input, label: k });
    }
  }
  problems.sort((a, b) => a.row - b.row);
  return { file, examples, problems, rows: count, labels };
}

export function importCounts(set: ExampleSet): ImportCounts {
  return {
    file: set.file,
    rows: set.rows,
    imported: set.examples.length,
    skipped: set.rows - set.examples.length,
    problems: set.problems.slice(0, MAX_PROBLEMS),
  };
}

/** A seeded split: the last `fraction` of a shuffled copy validates. */
export function splitExamples(
  examples: readonly Example[],
  fraction: number,
  seed: number,
): { train: Example[]; val: Example[] } {
  const order = shuffled(examples.length, seed);
  const nVal = fraction > 0 ? Math.max(1, Math.round(examples.length * fraction)) : 0;
  const cut = examples.length - Math.min(nVal, examples.length - 1);
  return {
    train: order.slice(0, cut).map((i) => examples[i]!),
    val: order.slice(cut).map((i) => examples[i]!),
  };
}

/** 0..n-1 in a seeded random order (Fisher–Yates over a small LCG, independent of tfjs). */
export function shuffled(n: number, seed: number): number[] {
  const out = Array.from({ length: n }, (_, i) => i);
  let s = seed >>> 0 || 1;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Count of each label among examples. */
export function labelCounts(examples: readonly Example[], labels: readonly string[]) {
  const counts = labels.map(() => 0);
  for (const e of examples) counts[e.label] = (counts[e.label] ?? 0) + 1;
  return labels.map((label, i) => ({ label, count: counts[i]! }));
}

/** A guess of which column is which, from common names. */
export function guessColumns(columns: readonly string[]): ColumnMap {
  const find = (...names: string[]) =>
    columns.find((c) => names.includes(c.toLowerCase().replace(/[\s_-]/g, '')));
  const pick = <K extends keyof ColumnMap>(k: K, v: ColumnMap[K] | undefined) =>
    v === undefined ? {} : { [k]: v };
  const answers = columns.filter((c) =>
    /^(answer|ending|choice|option|candidate)s?[\s_-]?\d+$/i.test(c),
  );
  return {
    ...pick('text', find('text', 'sentence', 'review', 'content', 'document', 'input')),
    ...pick('premise', find('premise', 'sentence1', 'context', 'text')),
    ...pick('hypothesis', find('hypothesis', 'sentence2')),
    ...pick('a', find('a', 'sentence1', 'text1', 'question1', 's1')),
    ...pick('b', find('b', 'sentence2', 'text2', 'question2', 's2')),
    ...pick('context', find('context', 'question', 'story', 'prompt', 'premise')),
    ...(answers.length >= 2
      ? { answers }
      : pick('answersColumn', find('answers', 'choices', 'endings', 'options', 'candidates'))),
    ...pick(
      'label',
      find('label', 'labels', 'class', 'category', 'target', 'sentiment', 'answer', 'y'),
    ),
  };
}
