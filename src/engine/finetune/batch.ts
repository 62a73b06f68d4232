/** Encoded examples → padded batches: one epoch's batch order, and a batch's tensors. */
import * as tf from '../tf';
import { isMaskedLm, type GPTConfig } from '../model/config';
import { maskTokens, type MaskSpec } from '../train/mlm';
import { Rng } from '../util/rng';
import { shuffled } from './data';

type T2 = tf.Tensor2D;

/**
 * A batch of examples as padded sequences. Sequences are right-padded to the longest one; a
 * GPT's attention is causal, so padding after [e] changes nothing before it, and a masked-LM's
 * leaves the padding out (`lengths`).
 */
export interface Batch {
  /** Token ids [S, T] (S = examples × sequences per example). */
  ids: T2;
  /** Next-token targets [S, T]; −1 where nothing is predicted (after [e], padding). */
  targets: T2;
  /** Picks each sequence's [e] row out of h [S·T, C]: one-hot rows [S, S·T]. */
  select: T2;
  /** Labels [B]. */
  labels: tf.Tensor1D;
  /** Each sequence's real tokens (the rest is padding). */
  lengths: number[];
  examples: number;
  perExample: number;
}

/** What a masked-LM's fine-tuning masks with: its [MASK] and the ids never masked ([s], $, [e]). */
export interface MlmMasking {
  spec: MaskSpec;
  specials: readonly number[];
}

/** A masked-LM's auxiliary objective on a fine-tuning batch: its inputs masked by BERT's rule. */
export interface MlmInputs extends MlmMasking {
  /** The masking's seed (a step's own: the same step masks the same way). */
  seed: number;
}

export interface BatchLayout {
  /**
   * Read each sequence's first position ([s], as BERT reads [CLS]) instead of its last ([e]):
   * a masked-LM, whose first position sees the whole sequence. The targets are then the masked
   * tokens of `mlm` (none without it), not the next tokens.
   */
  readFirst?: boolean;
  mlm?: MlmInputs | null;
}

/**
 * A training batch's layout: a GPT's as it always was; a masked-LM's reads [s] and, when the
 * auxiliary loss counts (λ > 0), masks its inputs with the step's seed.
 */
export function trainingLayout(
  config: Pick<GPTConfig, 'objective'>,
  masking: MlmMasking | null,
  lambda: number,
  seed: number,
): BatchLayout {
  if (!isMaskedLm(config)) return {};
  return { readFirst: true, mlm: masking && lambda > 0 ? { ...masking, seed } : null };
}

/** An evaluation batch's layout: a masked-LM reads [s], nothing masked. */
export function predictionLayout(config: Pick<GPTConfig, 'objective'>): BatchLayout {
  return { readFirst: isMaskedLm(config) };
}

export function makeBatch(
  sequences: number[][][],
  labels: number[],
  layout: BatchLayout = {},
): Batch {
  const perExample = sequences[0]!.length;
  const flat = sequences.flat();
  const S = flat.length;
  const T = Math.max(...flat.map((s) => s.length));
  const ids = new Int32Array(S * T);
  const targets = new Int32Array(S * T).fill(-1);
  const select = new Float32Array(S * S * T);
  const rng = layout.mlm ? new Rng(layout.mlm.seed) : null;
  flat.forEach((seq, s) => {
    if (layout.readFirst) {
      if (rng && layout.mlm) {
        const { specials, spec } = layout.mlm;
        const m = maskTokens(seq, rng, spec, (i) => !specials.includes(seq[i]!));
        ids.set(m.x, s * T);
        targets.set(m.y, s * T);
      } else {
        ids.set(seq, s * T);
      }
      select[s * S * T + s * T] = 1;
      return;
    }
    ids.set(seq, s * T);
    for (let t = 0; t + 1 < seq.length; t++) targets[s * T + t] = seq[t + 1]!;
    select[s * S * T + s * T + seq.length - 1] = 1;
  });
  return {
    ids: tf.tensor2d(ids, [S, T], 'int32'),
    targets: tf.tensor2d(targets, [S, T], 'int32'),
    select: tf.tensor2d(select, [S, S * T]),
    labels: tf.tensor1d(Int32Array.from(labels), 'int32'),
    lengths: flat.map((q) => q.length),
    examples: sequences.length,
    perExample,
  };
}

export function disposeBatch(b: Batch): void {
  tf.dispose([b.ids, b.targets, b.select, b.labels]);
}

/**
 * One epoch's batches: a random order, sorted by length within windows of 8 batches (so a batch
 * pads to little more than its own lengths), the batches then taken in random order.
 */
export function lengthBuckets(
  lengths: readonly number[],
  batchSize: number,
  seed: number,
): number[][] {
  const order = shuffled(lengths.length, seed);
  const window = batchSize * 8;
  const batches: number[][] = [];
  for (let w = 0; w < order.length; w += window) {
    const chunk = order.slice(w, w + window).sort((a, b) => lengths[a]! - lengths[b]!);
    for (let i = 0; i < chunk.length; i += batchSize) batches.push(chunk.slice(i, i + batchSize));
  }
  return shuffled(batches.length, seed ^ 0x9e37).map((i) => batches[i]!);
}
