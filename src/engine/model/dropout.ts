/**
 * Dropout: inverted-dropout keep masks. Every site of a forward draws its mask from a seed of its
 * own, (seed·131 + salt) >>> 1, so a seeded run draws the same masks every time.
 */
import * as tf from '../tf';

/** The salt of each dropout site; block l's are 7 + 3l, 8 + 3l and 9 + 3l. */
export const SALT = {
  embedding: 1,
  attention: (layer: number) => 7 + layer * 3,
  attnOut: (layer: number) => 8 + layer * 3,
  mlpOut: (layer: number) => 9 + layer * 3,
};

/** Inverted-dropout keep mask: 1/(1−rate) with probability 1 − rate, else 0. */
export function dropoutMask(shape: number[], rate: number, seed: number): tf.Tensor {
  return tf.div(
    tf.cast(tf.greaterEqual(tf.randomUniform(shape, 0, 1, 'float32', seed), rate), 'float32'),
    1 - rate,
  );
}

/** One forward's dropout: its rate and seed. */
export class Dropout {
  constructor(
    readonly rate: number,
    private readonly forwardSeed: number,
  ) {}

  /** The dropout of a forward with these options; null when it is off (inference, or rate 0). */
  static of(rate: number, opts: { train?: boolean; seed?: number }): Dropout | null {
    return opts.train && rate > 0 ? new Dropout(rate, opts.seed ?? 0) : null;
  }

  /** The seed of the site with this salt. */
  seed(salt: number): number {
    return (this.forwardSeed * 131 + salt) >>> 1;
  }

  mask(shape: number[], salt: number): tf.Tensor {
    return dropoutMask(shape, this.rate, this.seed(salt));
  }
}

/** x ⊙ the site's keep mask, and the mask (for the backward); x itself when dropout is off. */
export function dropout<X extends tf.Tensor>(
  x: X,
  d: Dropout | null,
  salt: number,
): { y: X; keep: tf.Tensor | null } {
  const keep = d ? d.mask(x.shape, salt) : null;
  return { y: keep ? (tf.mul(x, keep) as X) : x, keep };
}
