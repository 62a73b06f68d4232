/**
 * AdamW (Loshchilov & Hutter) with decoupled weight decay on 2-D weights only, and global-norm
 * gradient clipping.
 *
 * The update runs per parameter: a flat vector would need one Concat and one SplitV per step, and
 * wasm's SplitV costs more than all of AdamW's element-wise math.
 */
import * as tf from '../tf';
import { variableOf } from '../model/ops';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Clip the global gradient norm to this; 0 disables. */
  gradClip: number;
}

export type Grads = Map<string, tf.Tensor>;

/**
 * Σ xs with AddN, at most 7 inputs at a time: webgpu's AddN binds every input as a storage buffer,
 * and WebGPU guarantees only 8 per shader (7 inputs + the output). Beyond that the pipeline is
 * invalid and tfjs silently returns garbage.
 */
function sumN(xs: tf.Tensor[]): tf.Tensor {
  while (xs.length > 1) {
    const next: tf.Tensor[] = [];
    for (let i = 0; i < xs.length; i += 7) {
      const chunk = xs.slice(i, i + 7);
      next.push(chunk.length === 1 ? chunk[0]! : tf.addN(chunk));
    }
    xs = next;
  }
  return xs[0]!;
}

export class AdamW {
  readonly names: string[];
  readonly shapes: number[][];
  private m: Map<string, tf.Variable>;
  private v: Map<string, tf.Variable>;
  /** Number of updates applied so far (Adam's t). */
  t = 0;

  constructor(
    private vars: Map<string, tf.Variable>,
    readonly opts: AdamWOptions,
  ) {
    this.names = [...vars.keys()];
    this.shapes = this.names.map((n) => vars.get(n)!.shape);
    const zeros = (s: number[]) => variableOf(tf.zeros(s), false);
    this.m = new Map(this.names.map((n, i) => [n, zeros(this.shapes[i]!)]));
    this.v = new Map(this.names.map((n, i) => [n, zeros(this.shapes[i]!)]));
  }

  /** Global L2 norm of the gradients, ‖g‖ = √(Σ g²) (a scalar tensor). */
  static norm(grads: Grads): tf.Scalar {
    return tf.tidy(
      () => tf.sqrt(sumN([...grads.values()].map((g) => tf.sum(tf.square(g))))) as tf.Scalar,
    );
  }

  /** One AdamW update with learning rate `lr`. */
  step(grads: Grads, gradNorm: tf.Scalar, lr: number): void {
    const { beta1, beta2, eps, weightDecay, gradClip } = this.opts;
    this.t += 1;
    const bc1 = 1 - Math.pow(beta1, this.t);
    const bc2 = 1 - Math.pow(beta2, this.t);
    const clip =
      gradClip > 0 ? tf.tidy(() => tf.minimum(tf.div(gradClip, tf.add(gradNorm, 1e-6)), 1)) : null;
    // one parameter at a time, so the update's temporaries are one parameter's, not the model's
    for (const name of this.names) {
      tf.tidy(() => {
        const p = this.vars.get(name)!;
        const g0 = grads.get(name);
        if (!g0) throw new Error(`no gradient for ${name}`);
        const g = clip ? tf.mul(g0, clip) : g0;
        const m = tf.add(tf.mul(this.m.get(name)!, beta1), tf.mul(g, 1 - beta1));
        const v = tf.add(tf.mul(this.v.get(name)!, beta2), tf.mul(tf.square(g), 1 - beta2));
        this.m.get(name)!.assign(m);
        this.v.get(name)!.assign(v);
        // p ← p − lr·(m̂/(√v̂+ε) + λ·p), the decay only on 2-D weights
        let update = tf.div(tf.mul(m, 1 / bc1), tf.add(tf.sqrt(tf.mul(v, 1 / bc2)), eps));
        if (weightDecay > 0 && p.shape.length === 2)
          update = tf.add(update, tf.mul(p, weightDecay));
        p.assign(tf.sub(p, tf.mul(update, lr)));
      });
    }
    clip?.dispose();
  }

  /** Moments per parameter name, for optimizer.safetensors. */
  async state(): Promise<{ m: Map<string, Float32Array>; v: Map<string, Float32Array> }> {
    const read = async (src: Map<string, tf.Variable>) => {
      const out = new Map<string, Float32Array>();
      for (const [n, t] of src) out.set(n, (await t.data()) as Float32Array);
      return out;
    };
    return { m: await read(this.m), v: await read(this.v) };
  }

  load(m: Map<string, Float32Array>, v: Map<string, Float32Array>, t: number): void {
    const put = (dst: Map<string, tf.Variable>, src: Map<string, Float32Array>, label: string) => {
      this.names.forEach((n, i) => {
        const d = src.get(n);
        const size = this.shapes[i]!.reduce((a, b) => a * b, 1);
        if (!d || d.length !== size) {
          throw new Error(`optimizer state ${label}.${n} is missing or has the wrong size`);
        }
        tf.tidy(() => dst.get(n)!.assign(tf.tensor(d, this.shapes[i]!)));
      });
    };
    put(this.m, m, 'exp_avg');
    put(this.v, v, 'exp_avg_sq');
    this.t = t;
  }

  dispose(): void {
    tf.dispose([...this.m.values(), ...this.v.values()]);
  }
}
