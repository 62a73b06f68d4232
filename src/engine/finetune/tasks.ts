/**
 * GPT-1's input transformations (Radford et al. 2018, §3.3, Figure 1). Every structured input
 * becomes one or more ordered token sequences framed by the start token [s], the delimiter $ and
 * the extract token [e]; the classifier reads the top hidden state at [e].
 *
 *   classification   [s] text [e]
 *   entailment       [s] premise $ hypothesis [e]
 *   similarity       [s] a $ b [e]  and  [s] b $ a [e]   (their h at [e] added)
 *   multiple choice  [s] context $ answer_k [e]   for each k (a softmax over the k)
 *
 * Truncation, when a sequence exceeds the context: [s], $ and [e] always stay; tokens are dropped
 * from the front of the first part (text, premise, context), keeping the words nearest the
 * classifier, then from the front of the second part (hypothesis, answer) if it alone is too
 * long. Similarity cuts both sentences the same way in both orders: the longer one is cut from
 * its front first, and if both are long each keeps its last ⌊(n − 3) / 2⌋ tokens.
 */
import type { Tokenizer } from '../tokenizer/types';
import { DELIMITER_TOKEN, EXTRACT_TOKEN, START_TOKEN } from '../tokenizer/types';

export const TASKS = ['classification', 'entailment', 'similarity', 'multiple-choice'] as const;
export type Task = (typeof TASKS)[number];

/** One labeled example's inputs, by task. */
export type ExampleInput =
  | { text: string }
  | { premise: string; hypothesis: string }
  | { a: string; b: string }
  | { context: string; answers: string[] };

export interface SpecialIds {
  start: number;
  delim: number;
  extract: number;
}

/** Adds GPT-1's [s], $ and [e] to the tokenizer (idempotent) and returns their ids. */
export function addFinetuneTokens(tokenizer: Tokenizer): SpecialIds {
  const [start, delim, extract] = tokenizer.addSpecialTokens([
    START_TOKEN,
    DELIMITER_TOKEN,
    EXTRACT_TOKEN,
  ]);
  return { start: start!, delim: delim!, extract: extract! };
}

/** What a tokenized example is: the sequences the model reads (1, 2 or N), each ending in [e]. */
export interface Encoded {
  sequences: number[][];
  /** Some tokens were dropped to fit the context. */
  truncated: boolean;
}

/** Keeps the last `n` tokens. */
const tail = (ids: number[], n: number) => (ids.length > n ? ids.slice(ids.length - n) : ids);

/** [s] first $ second [e] (or [s] first [e] when second is null), cut to `blockSize`. */
export function frame(
  first: number[],
  second: number[] | null,
  sp: SpecialIds,
  blockSize: number,
): { ids: number[]; truncated: boolean } {
  const frameLen = second === null ? 2 : 3;
  const budget = blockSize - frameLen;
  if (budget < 1) throw new Error(`a context of ${blockSize} tokens is too short to fine-tune`);
  const secondLen = second === null ? 0 : Math.min(second.length, budget);
  const f = tail(first, budget - secondLen);
  const s = second === null ? null : tail(second, secondLen);
  const truncated = f.length < first.length || (s !== null && s.length < second!.length);
  const ids =
    s === null ? [sp.start, ...f, sp.extract] : [sp.start, ...f, sp.delim, ...s, sp.extract];
  return { ids, truncated };
}

/** Cuts a and b the same way whichever comes first (see the header). */
function symmetricCut(a: number[], b: number[], budget: number): [number[], number[]] {
  if (a.length + b.length <= budget) return [a, b];
  const half = Math.floor(budget / 2);
  if (a.length <= half) return [a, tail(b, budget - a.length)];
  if (b.length <= half) return [tail(a, budget - b.length), b];
  return [tail(a, half), tail(b, half)];
}

/** The token sequences of one example, exactly as GPT-1 lays them out. */
export function encodeExample(
  task: Task,
  input: ExampleInput,
  tokenizer: Tokenizer,
  sp: SpecialIds,
  blockSize: number,
): Encoded {
  const enc = (s: string) => tokenizer.encode(s);
  switch (task) {
    case 'classification': {
      const { ids, truncated } = frame(enc((input as { text: string }).text), null, sp, blockSize);
      return { sequences: [ids], truncated };
    }
    case 'entailment': {
      const x = input as { premise: string; hypothesis: string };
      const { ids, truncated } = frame(enc(x.premise), enc(x.hypothesis), sp, blockSize);
      return { sequences: [ids], truncated };
    }
    case 'similarity': {
      const x = input as { a: string; b: string };
      const a0 = enc(x.a);
      const b0 = enc(x.b);
      const [a, b] = symmetricCut(a0, b0, blockSize - 3);
      const truncated = a.length < a0.length || b.length < b0.length;
      return {
        sequences: [frame(a, b, sp, blockSize).ids, frame(b, a, sp, blockSize).ids],
        truncated,
      };
    }
    case 'multiple-choice': {
      const x = input as { context: string; answers: string[] };
      const context = enc(x.context);
      let truncated = false;
      const sequences = x.answers.map((ans) => {
        const r = frame(context, enc(ans), sp, blockSize);
        truncated ||= r.truncated;
        return r.ids;
      });
      return { sequences, truncated };
    }
  }
}

/** Sequences per example: 1, 2 for similarity, or the number of answers. */
export function sequencesPerExample(task: Task, answers: number): number {
  return task === 'similarity' ? 2 : task === 'multiple-choice' ? answers : 1;
}

/** A short display of an example's input (for mistakes and previews). */
export function describeInput(input: ExampleInput): string {
  if ('text' in input) return input.text;
  if ('premise' in input) return `${input.premise} ⟶ ${input.hypothesis}`;
  if ('a' in input) return `${input.a} ⟷ ${input.b}`;
  return `${input.context} ‖ ${input.answers.map((a, i) => `(${i + 1}) ${a}`).join(' ')}`;
}
