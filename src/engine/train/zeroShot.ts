/**
 * Zero-shot tracking while pretraining (GPT-1, Figure 2: zero-shot task performance rises with
 * generative pretraining). Each labelled set is read once when the run starts; every N steps the
 * main thread's model scores the same seeded subset of its rows with the console's rules:
 *
 *   classification   ŷ = argmax_y log P(w(y) | "{input} =>")      (console/icl.ts with k = 0)
 *   multiple choice  ŷ = argmax_k score(answer_k | context)        (console/choices.ts)
 *
 * A table is multiple choice when its columns name a context, the answers and a label, as the
 * fine-tune wizard guesses them (finetune/data.ts); otherwise it is classification by label words.
 */
import * as path from 'node:path';
import type {
  ZeroShotConfig,
  ZeroShotPoint,
  ZeroShotSet,
  ZeroShotTask,
} from '../../common/zeroShot';
import { rankChoices, scoreChoices, type ChoiceMetric } from '../console/choices';
import { readLabeled } from '../console/dataset';
import { evaluateIcl, shuffle, type LabelWord, type LabeledExample } from '../console/icl';
import { checkTemplate, DEFAULT_FORMAT } from '../console/prompt';
import { readTable } from '../data/records';
import { examplesFromRows, guessColumns, type Example } from '../finetune/data';
import type { GPT } from '../model/gpt';
import type { Tokenizer } from '../tokenizer/types';
import { Rng } from '../util/rng';

type Score = Omit<ZeroShotPoint, 'step' | 'set' | 'task'>;

export interface TrackedSet {
  name: string;
  task: ZeroShotTask;
  /** Rows scored at each evaluation. */
  rows: number;
  score(model: GPT, tokenizer: Tokenizer): Promise<Score>;
}

export interface ZeroShotTracker {
  config: ZeroShotConfig;
  sets: TrackedSet[];
  /** Whether the run scores the sets after step `step` (of `total`). */
  due(step: number, total: number): boolean;
  /** Every set's accuracy on `model` now. */
  evaluate(model: GPT, tokenizer: Tokenizer, step: number): Promise<ZeroShotPoint[]>;
}

/** Reads every set of `config` (errors name the file) and returns the tracker. */
export async function openZeroShot(config: ZeroShotConfig): Promise<ZeroShotTracker> {
  const sets: TrackedSet[] = [];
  for (const s of config.sets) sets.push(await openSet(s, config));
  const names = new Set<string>();
  for (const s of sets) {
    if (names.has(s.name)) throw new Error(`zero-shot: two sets are named "${s.name}"; name them`);
    names.add(s.name);
  }
  return {
    config,
    sets,
    due: (step, total) => step % config.every === 0 || step === total,
    evaluate: async (model, tokenizer, step) => {
      const out: ZeroShotPoint[] = [];
      for (const s of sets) {
        out.push({ step, set: s.name, task: s.task, ...(await s.score(model, tokenizer)) });
      }
      return out;
    },
  };
}

/** The table's columns as the fine-tune wizard guesses them, when they make a multiple choice. */
async function multipleChoiceColumns(file: string) {
  const { columns } = await readTable(file, { limit: 20 });
  const c = guessColumns(columns);
  const hasAnswers = (c.answers?.length ?? 0) >= 2 || c.answersColumn !== undefined;
  return hasAnswers && c.context !== undefined && c.label !== undefined ? c : null;
}

async function openSet(s: ZeroShotSet, config: ZeroShotConfig): Promise<TrackedSet> {
  const name = s.name ?? path.basename(s.file);
  const mc = s.textColumn === undefined ? await multipleChoiceColumns(s.file) : null;
  if (mc) {
    const { examples, problems } = examplesFromRows((await readTable(s.file)).rows, {
      task: 'multiple-choice',
      columns: mc,
      file: s.file,
    });
    if (examples.length === 0) {
      throw new Error(
        `${s.file}: no usable multiple-choice rows${problems[0] ? ` (${problems[0].message})` : ''}`,
      );
    }
    return choiceSet(name, examples, s.metric ?? 'mean', config);
  }
  return classificationSet(name, s, config);
}

async function classificationSet(
  name: string,
  s: ZeroShotSet,
  config: ZeroShotConfig,
): Promise<TrackedSet> {
  const table = await readLabeled(s.file, {
    ...(s.textColumn ? { textColumn: s.textColumn } : {}),
    ...(s.labelColumn ? { labelColumn: s.labelColumn } : {}),
  });
  const known = new Set(table.labels.map((l) => l.label));
  const labels: LabelWord[] =
    s.labels ?? table.labels.map((l) => ({ label: l.label, word: l.label }));
  const missing = labels.filter((l) => !known.has(l.label)).map((l) => `"${l.label}"`);
  if (missing.length) {
    throw new Error(
      `${s.file}: no rows with label ${missing.join(', ')} in column "${table.labelColumn}" ` +
        `(its labels: ${[...known].slice(0, 10).join(', ')})`,
    );
  }
  if (labels.length < 2) {
    throw new Error(`${s.file}: zero-shot classification needs at least two labels`);
  }
  const format = s.template ?? DEFAULT_FORMAT;
  try {
    checkTemplate(format, 'template', ['input', 'output']);
  } catch (err) {
    throw new Error(`${s.file}: ${(err as Error).message}`);
  }
  const examples: LabeledExample[] = table.examples;
  const rows = Math.min(config.limit, evaluatedCount(examples, labels));
  return {
    name,
    task: 'classification',
    rows,
    score: async (model, tokenizer) => {
      const r = await evaluateIcl(model, tokenizer, {
        examples,
        labels,
        shots: [0],
        format,
        seed: config.seed,
        limit: config.limit,
      });
      const p = r.points[0]!;
      return {
        accuracy: p.accuracy,
        correct: p.correct,
        n: p.n,
        chance: r.chance,
        majority: r.majority,
      };
    },
  };
}

/** How many rows in-context evaluation scores (the rest is its demonstration pool). */
function evaluatedCount(examples: LabeledExample[], labels: LabelWord[]) {
  const names = new Set(labels.map((l) => l.label));
  const n = examples.filter((e) => names.has(e.label)).length;
  return n - Math.min(Math.floor(n / 2), 256);
}

function choiceSet(
  name: string,
  all: Example[],
  metric: ChoiceMetric,
  config: ZeroShotConfig,
): TrackedSet {
  const subset = shuffle([...all], new Rng(config.seed)).slice(0, config.limit);
  const answers = (e: Example) => (e.input as { context: string; answers: string[] }).answers;
  const counts = new Map<number, number>();
  for (const e of subset) counts.set(e.label, (counts.get(e.label) ?? 0) + 1);
  const majority = Math.max(...counts.values()) / subset.length;
  const chance = 1 / answers(subset[0]!).length;
  return {
    name,
    task: 'multiple-choice',
    rows: subset.length,
    score: async (model, tokenizer) => {
      let correct = 0;
      for (const e of subset) {
        const { context } = e.input as { context: string };
        // the answer follows the context after a space, as the console's scoring panel writes it
        const candidates = answers(e).map((a) => (/^\s/.test(a) ? a : ` ${a}`));
        const scores = await scoreChoices(model, tokenizer, context.trimEnd(), candidates);
        if (rankChoices(scores, metric)[0] === e.label) correct++;
      }
      return { accuracy: correct / subset.length, correct, n: subset.length, chance, majority };
    },
  };
}
