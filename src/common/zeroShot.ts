/**
 * Zero-shot tracking while pretraining (GPT-1, Figure 2): labelled sets a run scores every N steps
 * by likelihood, with the console's rules — a classification set by its label words
 * (engine/console/icl.ts, k = 0), a multiple-choice set by its answers (engine/console/choices.ts).
 * Saved with the run (state.json), so a resumed run keeps tracking them.
 */
import { z } from 'zod';
import { labelWordSchema } from './console';
import { pathString, shortString } from './limits';
import { posInt } from './schema';

export const ZERO_SHOT_DEFAULTS = {
  every: 100,
  /** Rows scored per set: the same seeded subset at every evaluation. */
  limit: 64,
  seed: 1,
} as const;

/** The most labelled sets one run tracks. */
export const MAX_ZERO_SHOT_SETS = 8;

export const choiceMetricSchema = z.enum(['sum', 'mean', 'normalized']);

export const zeroShotSetSchema = z
  .object({
    /** A labelled table: CSV, TSV, JSONL or JSON. */
    file: pathString,
    /** What the charts call it (default: the file's name). */
    name: shortString.min(1).optional(),
    /** Classification: each label's word (default: each label stands for itself). */
    labels: z.array(labelWordSchema).min(2).max(64).optional(),
    textColumn: shortString.min(1).optional(),
    labelColumn: shortString.min(1).optional(),
    /** Classification: how the example is written, with {input} and {output}. */
    template: shortString.optional(),
    /** Multiple choice: which score ranks the answers (default mean, per token). */
    metric: choiceMetricSchema.optional(),
  })
  .strict();

export const zeroShotConfigSchema = z
  .object({
    sets: z.array(zeroShotSetSchema).min(1).max(MAX_ZERO_SHOT_SETS),
    every: posInt.max(1_000_000).default(ZERO_SHOT_DEFAULTS.every),
    limit: posInt.max(10_000).default(ZERO_SHOT_DEFAULTS.limit),
    seed: z.number().int().default(ZERO_SHOT_DEFAULTS.seed),
  })
  .strict();

export type ZeroShotSet = z.infer<typeof zeroShotSetSchema>;
export type ZeroShotConfig = z.output<typeof zeroShotConfigSchema>;
export type ZeroShotTask = 'classification' | 'multiple-choice';

/** One set's accuracy at one step (a `zeroshot` event and a metrics.jsonl line). */
export interface ZeroShotPoint {
  step: number;
  set: string;
  task: ZeroShotTask;
  accuracy: number;
  correct: number;
  n: number;
  /** 1 / the number of labels (answers). */
  chance: number;
  /** The share of the most frequent label (answer position) among the scored rows. */
  majority: number;
}
