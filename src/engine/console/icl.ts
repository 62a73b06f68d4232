/**
 * In-context evaluation (GPT-3's few-shot classification): no gradient step. For each example x of
 * a labeled set and each label y with its word w(y), the model scores log P(w(y) | prompt_k(x)),
 * where prompt_k(x) holds k demonstrations and then x; the prediction is the label whose word is
 * likeliest,
 *
 *   ŷ = argmax_y Σ_t log P(w(y)_t | prompt_k(x), w(y)_<t)
 *
 * and accuracy is charted against k = 0, 1, 2, 4, 8, … as far as the context allows.
 *
 * The data is shuffled once with the seed and split in two disjoint parts: a pool the
 * demonstrations are drawn from, and the examples evaluated. Each example's k demonstrations are
 * drawn from the pool with its own seeded stream, balanced across labels where the pool allows
 * (round-robin over the labels in a random order), then shuffled.
 */
import { refuseMaskedLm } from '../model/config';
import type { GPT } from '../model/gpt';
import { scoreTargets, type ScoreItem } from '../score';
import type { Tokenizer } from '../tokenizer/types';
import { Rng } from '../util/rng';
import {
  assemblePrompt,
  checkTemplate,
  DEFAULT_FORMAT,
  DEFAULT_SEPARATOR,
  encodeLenient,
  fillTemplate,
  splitQuery,
  type Demo,
} from './prompt';

export interface LabeledExample {
  input: string;
  label: string;
  /** Its row in the file (data/records' numbering), when read from one. */
  row?: number;
}

export interface LabelWord {
  label: string;
  /** The text the model is asked to continue with for this label, e.g. "great" for positive. */
  word: string;
}

export interface IclOptions {
  examples: LabeledExample[];
  labels: LabelWord[];
  /** The shot counts; 'auto' = 0, 1, 2, 4, 8, … while the demonstrations fit the context. */
  shots: number[] | 'auto';
  /** Each demonstration's format, with {input} and {output} (the output is the label word). */
  format?: string;
  separator?: string;
  seed?: number;
  /** At most this many evaluated examples (default 100). */
  limit?: number;
  /** Rows scored per forward. */
  batchSize?: number;
  signal?: AbortSignal;
  onProgress?: (p: IclProgress) => void;
  /** Called once the data is split and the shot counts are known. */
  onStart?: (s: IclStart) => void;
  /** Called as each k finishes (its point on the accuracy-vs-k chart). */
  onPoint?: (p: IclPoint) => void;
}

export interface IclProgress {
  k: number;
  /** Examples scored so far over all k, and in total. */
  done: number;
  total: number;
  elapsedMs: number;
  etaMs: number;
}

export interface IclStart {
  shots: number[];
  evalSize: number;
  poolSize: number;
  maxShots: number;
  chance: number;
  /** Examples left out because their label is not in the mapping. */
  skipped: number;
}

export interface IclPoint {
  k: number;
  accuracy: number;
  correct: number;
  n: number;
  /** Demonstrations actually in the prompt on average (fewer than k when the context is full). */
  meanShots: number;
  /** Examples whose prompt lost demonstrations to fit the context. */
  truncated: number;
}

export interface IclResult {
  points: IclPoint[];
  /** 1 / number of labels. */
  chance: number;
  /** The share of the most frequent label among the evaluated examples. */
  majority: number;
  labels: LabelWord[];
  evalSize: number;
  poolSize: number;
  /** The largest k whose typical prompt fits the context. */
  maxShots: number;
  seed: number;
}

export function abortError(): Error {
  const e = new Error('cancelled');
  e.name = 'AbortError';
  return e;
}

/** Parses "negative=terrible,positive=great" (a label without "=" stands for itself). */
export function parseLabelWords(spec: string): LabelWord[] {
  const out: LabelWord[] = [];
  for (const part of spec.split(',')) {
    if (!part.trim()) continue;
    const eq = part.indexOf('=');
    const label = (eq >= 0 ? part.slice(0, eq) : part).trim();
    const word = (eq >= 0 ? part.slice(eq + 1) : part).trim();
    if (!label || !word) throw new Error(`labels: "${part.trim()}" should be label=word`);
    if (out.some((l) => l.label === label)) throw new Error(`labels: "${label}" appears twice`);
    out.push({ label, word });
  }
  if (out.length < 2)
    throw new Error('labels: give at least two, e.g. "negative=terrible,positive=great"');
  return out;
}

export function shuffle<T>(xs: T[], rng: Rng): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

/** Splits the shuffled examples into a demonstration pool and an evaluation set (disjoint). */
export function splitExamples(examples: LabeledExample[], seed: number, limit: number) {
  const shuffled = shuffle([...examples], new Rng(seed));
  const poolSize = Math.min(Math.floor(shuffled.length / 2), 256);
  const pool = shuffled.slice(0, poolSize);
  const evalSet = shuffled.slice(poolSize, poolSize + limit);
  return { pool, evalSet };
}

/**
 * The examples whose label is in the mapping, split into the demonstration pool and the evaluated
 * examples. Deterministic in the seed, so another model (a fine-tuned classifier) can be scored on
 * exactly the examples in-context evaluation scored.
 */
export function evaluationSplit(
  all: LabeledExample[],
  labels: LabelWord[],
  seed: number,
  limit: number,
): { examples: LabeledExample[]; pool: LabeledExample[]; evalSet: LabeledExample[] } {
  const labelSet = new Set(labels.map((l) => l.label));
  const examples = all.filter((e) => labelSet.has(e.label));
  if (examples.length < 2) {
    throw new Error(
      `only ${examples.length} example(s) have one of the labels ${[...labelSet].join(', ')}; ` +
        'check the label column and the label mapping',
    );
  }
  return { examples, ...splitExamples(examples, seed, limit) };
}

/** k demonstrations from the pool, balanced across labels where possible, in random order. */
export function drawDemos(
  pool: LabeledExample[],
  labels: string[],
  k: number,
  rng: Rng,
): LabeledExample[] {
  const by = new Map(labels.map((l) => [l, [] as LabeledExample[]]));
  for (const ex of pool) by.get(ex.label)?.push(ex);
  const queues = shuffle(
    labels.filter((l) => by.get(l)!.length > 0),
    rng,
  ).map((l) => shuffle([...by.get(l)!], rng));
  const out: LabeledExample[] = [];
  for (let i = 0; out.length < k && queues.some((q) => q.length > 0); i++) {
    const q = queues[i % queues.length]!;
    if (q.length > 0) out.push(q.pop()!);
  }
  return shuffle(out, rng);
}

function median(xs: number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** The shot counts to evaluate. */
export function shotList(shots: number[] | 'auto', maxShots: number): number[] {
  if (shots !== 'auto') return [...new Set(shots)].sort((a, b) => a - b);
  const out = [0];
  for (let k = 1; k <= maxShots; k *= 2) out.push(k);
  return out;
}

export async function evaluateIcl(
  model: GPT,
  tokenizer: Tokenizer,
  opts: IclOptions,
): Promise<IclResult> {
  refuseMaskedLm(model.config, 'This model');
  const format = opts.format ?? DEFAULT_FORMAT;
  const separator = opts.separator ?? DEFAULT_SEPARATOR;
  const seed = opts.seed ?? 1;
  const batchSize = opts.batchSize ?? 16;
  checkTemplate(format, 'format', ['input', 'output']);
  const { examples, pool, evalSet } = evaluationSplit(
    opts.examples,
    opts.labels,
    seed,
    opts.limit ?? 100,
  );
  const word = new Map(opts.labels.map((l) => [l.label, l.word]));
  const block = model.config.blockSize;

  // the answer ids of each label after a query (the format's trailing spaces belong to the answer)
  const { answerPrefix } = splitQuery(format, '');
  const answers = opts.labels.map((l) => encodeLenient(tokenizer, answerPrefix + l.word).ids);
  answers.forEach((a, i) => {
    if (a.length === 0) throw new Error(`labels: the word for "${opts.labels[i]!.label}" is empty`);
  });
  const reserve = Math.max(...answers.map((a) => a.length));

  // how many demonstrations typically fit: (budget − query) / demo, from the pool's medians
  const demoLen = median(
    pool
      .slice(0, 64)
      .map(
        (d) =>
          encodeLenient(
            tokenizer,
            fillTemplate(format, { input: d.input, output: word.get(d.label) }) + separator,
          ).ids.length,
      ),
  );
  const queryLen = median(
    evalSet
      .slice(0, 64)
      .map((e) => encodeLenient(tokenizer, splitQuery(format, e.input).context).ids.length),
  );
  const room = block - reserve - queryLen;
  const maxShots = demoLen > 0 ? Math.max(0, Math.floor(room / demoLen)) : 0;
  const ks = shotList(opts.shots, Math.min(maxShots, pool.length));

  const labelNames = opts.labels.map((l) => l.label);
  opts.onStart?.({
    shots: ks,
    evalSize: evalSet.length,
    poolSize: pool.length,
    maxShots,
    chance: 1 / opts.labels.length,
    skipped: opts.examples.length - examples.length,
  });
  const total = ks.length * evalSet.length;
  const started = Date.now();
  let done = 0;
  const points: IclPoint[] = [];
  for (const k of ks) {
    let correct = 0;
    let shotsSum = 0;
    let truncated = 0;
    for (let b = 0; b < evalSet.length; b += Math.max(1, Math.floor(batchSize / answers.length))) {
      if (opts.signal?.aborted) throw abortError();
      const batch = evalSet.slice(b, b + Math.max(1, Math.floor(batchSize / answers.length)));
      const items: ScoreItem[] = [];
      for (const [j, ex] of batch.entries()) {
        // one stream per (seed, example): the same demonstrations whatever the batch size
        const rng = new Rng(seed * 1_000_003 + (b + j) * 7919 + k);
        const demos: Demo[] = drawDemos(pool, labelNames, k, rng).map((d) => ({
          input: d.input,
          output: word.get(d.label)!,
        }));
        const a = assemblePrompt(
          tokenizer,
          block,
          { mode: 'few-shot', text: ex.input, format, separator, demos },
          reserve,
        );
        shotsSum += a.demosUsed;
        if (a.dropped > 0) truncated++;
        // a prompt longer than the context even without demonstrations keeps its latest tokens
        const ctx = a.ids.length > 0 ? a.ids.slice(-(block - reserve)) : [tokenizer.eosId ?? 0];
        for (const target of answers) items.push({ context: ctx, target });
      }
      const scores = await scoreTargets(model, items, batchSize);
      for (let j = 0; j < batch.length; j++) {
        let best = 0;
        for (let l = 1; l < answers.length; l++) {
          if (scores[j * answers.length + l]!.sum > scores[j * answers.length + best]!.sum)
            best = l;
        }
        if (labelNames[best] === batch[j]!.label) correct++;
      }
      done += batch.length;
      const elapsedMs = Date.now() - started;
      opts.onProgress?.({
        k,
        done,
        total,
        elapsedMs,
        etaMs: done > 0 ? (elapsedMs / done) * (total - done) : 0,
      });
    }
    const n = evalSet.length;
    const point = {
      k,
      accuracy: n ? correct / n : 0,
      correct,
      n,
      meanShots: n ? shotsSum / n : 0,
      truncated,
    };
    points.push(point);
    opts.onPoint?.(point);
  }
  const counts = new Map<string, number>();
  for (const e of evalSet) counts.set(e.label, (counts.get(e.label) ?? 0) + 1);
  return {
    points,
    chance: 1 / opts.labels.length,
    majority: evalSet.length ? Math.max(...counts.values()) / evalSet.length : 0,
    labels: opts.labels,
    evalSize: evalSet.length,
    poolSize: pool.length,
    maxShots,
    seed,
  };
}
