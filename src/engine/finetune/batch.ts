/** Encoded examples → padded batches: one epoch's batch order, and a batch's tensors. */
import * as tf from '../tf';
import { shuffled } from './data';

type T2 = tf.Tensor2D;

/**
 * A batch of examples as padded sequences. Sequences are right-padded to the longest one;
 * attention is causal, so padding after [e] changes nothing before it.
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
  examples: number;
  perExample: number;
}

export function makeBatch(sequences: number[][][], labels: number[]): Batch {
  const perExample = sequences[0]!.length;
  const flat = sequences.flat();
  const S = flat.length;
  const T = Math.max(...flat.map((s) => s.length));
  const ids = new Int32Array(S * T);
  const targets = new Int32Array(S * T).fill(-1);
  const select = new Float32Array(S * S * T);
  flat.forEach((seq, s) => {
    ids.set(seq, s * T);
    for (let t = 0; t + 1 < seq.length; t++) targets[s * T + t] = seq[t + 1]!;
    select[s * S * T + s * T + seq.length - 1] = 1;
  });
  return {
    ids: tf.tensor2d(ids, [S, T], 'int32'),
    targets: tf.tensor2d(targets, [S, T], 'int32'),
    select: tf.tensor2d(select, [S, S * T]),
    labels: tf.tensor1d(Int32Array.from(labels), 'int32'),
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
