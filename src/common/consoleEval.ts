/**
 * The contract's in-context evaluation (GPT-3's accuracy against the number of shots, an
 * `eval-icl` job): its parameters, progress events and result, with a fine-tuned classifier as
 * an optional baseline. console.ts puts `console.eval.start` in its table and re-exports the types.
 */
import { z } from 'zod';
import { itemString, pathString, shortString } from './limits';
import { modelRef, nonNegInt, posInt } from './schema';

export const labelWordSchema = z
  .object({ label: itemString.min(1), word: itemString.min(1) })
  .strict();

export const evalParamsSchema = z
  .object({
    model: modelRef,
    /** A labeled table: CSV, TSV, JSONL or JSON. */
    data: pathString,
    labels: z.array(labelWordSchema).min(2).max(64),
    shots: z.union([z.literal('auto'), z.array(nonNegInt.max(256)).min(1).max(16)]).default('auto'),
    format: shortString.optional(),
    separator: shortString.optional(),
    seed: z.number().int().default(1),
    limit: posInt.max(100_000).default(100),
    textColumn: shortString.min(1).optional(),
    labelColumn: shortString.min(1).optional(),
    /** A fine-tuned classifier scored on the same examples, drawn beside the curve. */
    compare: modelRef.optional(),
  })
  .strict();

const iclPointSchema = z.object({
  k: z.number(),
  accuracy: z.number(),
  correct: z.number(),
  n: z.number(),
  meanShots: z.number(),
  truncated: z.number(),
});
export type IclPoint = z.infer<typeof iclPointSchema>;

/** Progress events of this feature's jobs (each `type` unique across the contract). */
export const consoleProgressSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('console.eval.progress'),
    k: z.number(),
    done: z.number(),
    total: z.number(),
    elapsedMs: z.number(),
    etaMs: z.number(),
  }),
  /** One finished point of the accuracy-vs-k curve. */
  z.object({ type: z.literal('console.eval.point'), ...iclPointSchema.shape }),
  /** The data, once read: sizes, the shot counts to run and the largest that fits. */
  z.object({
    type: z.literal('console.eval.start'),
    shots: z.array(z.number()),
    evalSize: z.number(),
    poolSize: z.number(),
    maxShots: z.number(),
    chance: z.number(),
    skipped: z.number(),
  }),
]);
export type ConsoleProgress = z.infer<typeof consoleProgressSchema>;

/**
 * A fine-tuned classifier beside an in-context evaluation, scored only on the evaluated examples
 * it never trained on. `overlap`: `same-file`, the data is the file it trained on (same sha256)
 * and the `excluded` rows it trained on were left out; `other-file`, it trained on other data, so
 * every row is unseen; `unknown`, it keeps no record of its rows (no number then). `accuracy` is
 * null when no number can be given (the overlap is unknown, or it trained on every evaluated row).
 */
const finetunedBaselineSchema = z.object({
  model: z.string(),
  accuracy: z.number().nullable(),
  /** Held-out examples scored. */
  n: z.number(),
  /** Evaluated examples left out because it trained on them. */
  excluded: z.number(),
  overlap: z.enum(['same-file', 'other-file', 'unknown']),
});
export type FinetunedBaseline = z.infer<typeof finetunedBaselineSchema>;

export const iclEvalResultSchema = z.object({
  type: z.literal('console.eval.result'),
  model: z.string(),
  data: z.string(),
  points: z.array(iclPointSchema),
  chance: z.number(),
  majority: z.number(),
  labels: z.array(labelWordSchema),
  evalSize: z.number(),
  poolSize: z.number(),
  maxShots: z.number(),
  seed: z.number(),
  /** A fine-tuned classifier's accuracy on the evaluated examples it never saw, when one was compared. */
  finetuned: finetunedBaselineSchema.optional(),
});
export type IclEvalResult = z.infer<typeof iclEvalResultSchema>;
