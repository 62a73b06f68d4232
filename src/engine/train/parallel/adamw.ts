/**
 * AdamW over flat float32 vectors, for the training workers: the same update as ../optimizer.ts
 * (decoupled weight decay on 2-D weights only, the gradient clipped to a global norm), one element
 * at a time in plain JavaScript over the shared buffers, without a tensor per parameter.
 */
import type { AdamWOptions } from '../optimizer';

/** One parameter's elements [lo, hi) of the flat vectors, and whether it is decayed (2-D). */
export interface Segment {
  lo: number;
  hi: number;
  decay: boolean;
}

export class FlatAdamW {
  /** Number of updates applied so far (Adam's t). */
  t = 0;

  /**
   * `m` and `v` hold the moments of the elements [base, base + m.length) of the flat vectors:
   * the segments this optimizer updates.
   */
  constructor(
    readonly opts: AdamWOptions,
    readonly segments: Segment[],
    readonly base: number,
    readonly m: Float32Array,
    readonly v: Float32Array,
  ) {}

  /** One update of `params` from the gradient `grad` (both flat, all parameters) at `lr`. */
  step(params: Float32Array, grad: Float32Array, gradNorm: number, lr: number): void {
    const { beta1, beta2, eps, weightDecay, gradClip } = this.opts;
    this.t += 1;
    const bc1 = 1 - Math.pow(beta1, this.t);
    const bc2 = 1 - Math.pow(beta2, this.t);
    const clip = gradClip > 0 ? Math.min(gradClip / (gradNorm + 1e-6), 1) : 1;
    const { m, v, base } = this;
    for (const s of this.segments) {
      const wd = s.decay ? weightDecay : 0;
      for (let i = s.lo; i < s.hi; i++) {
        const j = i - base;
        const g = grad[i]! * clip;
        // the moments are stored (rounded to float32) before the update reads them
        m[j] = m[j]! * beta1 + g * (1 - beta1);
        v[j] = v[j]! * beta2 + g * g * (1 - beta2);
        const update = m[j]! / bc1 / (Math.sqrt(v[j]! / bc2) + eps) + wd * params[i]!;
        params[i] = params[i]! - lr * update;
      }
    }
  }
}
