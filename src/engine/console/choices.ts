/**
 * Multiple choice by likelihood (GPT-3, §2.4): each candidate answer c is scored after the context
 * x in three ways —
 *
 *   sum        = log P(c | x) = Σ_t log P(c_t | x, c_<t)
 *   mean       = sum / |c|                      (per token, so long answers are not penalized)
 *   normalized = log P(c | x) − log P(c | "Answer:")
 *
 * The last divides out how likely the answer is a priori, after a neutral prompt.
 */
import type { GPT } from '../model/gpt';
import { scoreTargets, type ScoreOptions } from '../score';
import type { Tokenizer } from '../tokenizer/types';
import { encodeLenient } from './prompt';

export const NEUTRAL_PROMPT = 'Answer:';

export interface ChoiceScore {
  text: string;
  tokens: number[];
  /** log P(token | context and the tokens before it), one per token. */
  logprobs: number[];
  sum: number;
  mean: number;
  /** sum − log P(candidate | neutral prompt). */
  normalized: number;
  neutralSum: number;
}

export type ChoiceMetric = 'sum' | 'mean' | 'normalized';

/** Context ids, or end-of-text when the context is empty (scoring needs one token to condition on). */
export function contextIds(tokenizer: Tokenizer, text: string): number[] {
  const ids = encodeLenient(tokenizer, text).ids;
  if (ids.length > 0) return ids;
  if (tokenizer.eosId === undefined) throw new Error('an empty context needs an end-of-text token');
  return [tokenizer.eosId];
}

export async function scoreChoices(
  model: GPT,
  tokenizer: Tokenizer,
  context: string,
  candidates: readonly string[],
  neutral = NEUTRAL_PROMPT,
  opts: ScoreOptions = {},
): Promise<ChoiceScore[]> {
  const ctx = contextIds(tokenizer, context);
  const neu = contextIds(tokenizer, neutral);
  const targets = candidates.map((c, i) => {
    const ids = encodeLenient(tokenizer, c).ids;
    if (ids.length === 0) throw new Error(`candidates.${i}: empty (nothing to score)`);
    return ids;
  });
  // scoreTargets yields to the event loop and checks `opts.signal` between its batches
  const scored = await scoreTargets(
    model,
    [
      ...targets.map((target) => ({ context: ctx, target })),
      ...targets.map((target) => ({ context: neu, target })),
    ],
    undefined,
    opts,
  );
  return candidates.map((text, i) => {
    const r = scored[i]!;
    const n = scored[candidates.length + i]!;
    return {
      text,
      tokens: r.tokens,
      logprobs: r.logprobs,
      sum: r.sum,
      mean: r.mean,
      normalized: r.sum - n.sum,
      neutralSum: n.sum,
    };
  });
}

/** Indices of the candidates, best first, by one metric. */
export function rankChoices(scores: readonly ChoiceScore[], metric: ChoiceMetric): number[] {
  return scores.map((_, i) => i).sort((a, b) => scores[b]![metric] - scores[a]![metric] || a - b);
}
