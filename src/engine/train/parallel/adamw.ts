/**
 * AdamW over flat float32 vectors, for the training workers: the same update as ../optimizer.ts
 * (decoupled weight decay on 2-D weights only, the gradient clipped to a global norm), in float32
 * and in its order of operations, by ../../kernels/flat.c over chunks of the shared buffers,
 * without a tensor per parameter.
 */
import { FlatKernels } from '../../kernels/flat';
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
  private readonly kernels: FlatKernels;

  /**
   * `m` and `v` hold the moments of the elements [base, base + m.length) of the flat vectors:
   * the segments this optimizer updates.
   */
  constructor(
    readonly opts: AdamWOptions,
    readonly segments: Segment[],
    readonly base: number,
    m: Float32Array,
    v: Float32Array,
  ) {
    this.kernels = new FlatKernels(m.length);
    this.kernels.m.set(m);
    this.kernels.v.set(v);
  }

  get m(): Float32Array {
    return this.kernels.m;
  }

  get v(): Float32Array {
    return this.kernels.v;
  }

  /** The all-reduce's sum of `regions` over [lo, hi) into `into`, and its Σ g². */
  sumRegions(regions: Float32Array[], lo: number, hi: number, into: Float32Array): number {
    return this.kernels.sumRegions(regions, lo, hi, into);
  }

  /** One update of `params` from the gradient `grad` (both flat, all parameters) at `lr`. */
  step(params: Float32Array, grad: Float32Array, gradNorm: number, lr: number): void {
    const { beta1, beta2, eps, weightDecay, gradClip } = this.opts;
    this.t += 1;
    const f = Math.fround;
    // min(c / (‖g‖ + 1e-6), 1) in float32, as the tensor AdamW computes it
    const clip = gradClip > 0 ? Math.min(f(gradClip / f(gradNorm + f(1e-6))), 1) : 1;
    const h = {
      clip,
      beta1,
      beta2,
      eps,
      lr,
      bc1: 1 - Math.pow(beta1, this.t),
      bc2: 1 - Math.pow(beta2, this.t),
    };
    for (const s of this.segments) {
      const wd = s.decay ? weightDecay : 0;
      this.kernels.adamw(params, grad, s.lo, s.hi, s.lo - this.base, { ...h, wd });
    }
  }
}
