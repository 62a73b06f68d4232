/**
 * AdamW (Loshchilov & Hutter) with decoupled weight decay on 2-D weights only, and global-norm
 * gradient clipping. All parameters live in one flat vector during the update, so a step costs a
 * dozen ops however many tensors the model has.
 */
import * as tf from '../tf';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Clip the global gradient norm to this; 0 disables. */
  gradClip: number;
}

export class AdamW {
  readonly names: string[];
  readonly shapes: number[][];
  readonly sizes: number[];
  private m: tf.Variable;
  private v: tf.Variable;
  private decayMask: tf.Tensor1D;
  /** Number of updates applied so far (Adam's t). */
  t = 0;

  constructor(
    private vars: Map<string, tf.Variable>,
    readonly opts: AdamWOptions,
  ) {
    this.names = [...vars.keys()];
    this.shapes = this.names.map((n) => vars.get(n)!.shape);
    this.sizes = this.shapes.map((s) => s.reduce((a, b) => a * b, 1));
    const total = this.sizes.reduce((a, b) => a + b, 0);
    this.m = tf.variable(tf.zeros([total]), false);
    this.v = tf.variable(tf.zeros([total]), false);
    const mask = new Float32Array(total);
    let off = 0;
    this.shapes.forEach((s, i) => {
      if (s.length === 2) mask.fill(1, off, off + this.sizes[i]!);
      off += this.sizes[i]!;
    });
    this.decayMask = tf.keep(tf.tensor1d(mask));
  }

  /** Concatenates per-parameter tensors (in `names` order) into one flat vector. */
  flatten(tensors: Record<string, tf.Tensor> | Map<string, tf.Tensor>): tf.Tensor1D {
    const get = (n: string) => (tensors instanceof Map ? tensors.get(n) : tensors[n]);
    return tf.tidy(() =>
      tf.concat(
      this.names.map((n) => {
        const t = get(n);
        if (!t) throw new Error(`no gradient for ${n}`);
        return tf.reshape(t, [-1]);
      }),
    ) as tf.Tensor1D,
    );
  }

  /** Global L2 norm of a flat gradient (a scalar tensor). */
  static norm(g: tf.Tensor1D): tf.Scalar {
    return tf.tidy(() => tf.sqrt(tf.sum(tf.square(g))));
  }

  /** One AdamW update with learning rate `lr` from the flat gradient g. */
  step(g: tf.Tensor1D, gradNorm: tf.Scalar, lr: number): void {
    const { beta1, beta2, eps, weightDecay, gradClip } = this.opts;
    this.t += 1;
    const bc1 = 1 - Math.pow(beta1, this.t);
    const bc2 = 1 - Math.pow(beta2, this.t);
    tf.tidy(() => {
      let grad = g;
      if (gradClip > 0) {
        grad = tf.mul(grad, tf.minimum(tf.div(gradClip, tf.add(gradNorm, 1e-6)), 1));
      }
      const m = tf.add(tf.mul(this.m, beta1), tf.mul(grad, 1 - beta1));
      const v = tf.add(tf.mul(this.v, beta2), tf.mul(tf.square(grad), 1 - beta2));
      this.m.assign(m);
      this.v.assign(v);
      const update = tf.div(tf.div(m, bc1), tf.add(tf.sqrt(tf.div(v, bc2)), eps));
      const p = this.flatten(this.vars);
      // p ← p − lr·(m̂/(√v̂+ε) + λ·p), the decay only on 2-D weights
      const next = tf.sub(p, tf.mul(tf.add(update, tf.mul(this.decayMask, tf.mul(p, weightDecay))), lr));
      const parts = tf.split(next, this.sizes);
      this.names.forEach((n, i) => this.vars.get(n)!.assign(tf.reshape(parts[i]!, this.shapes[i]!)));
    });
  }

  /** Moments per parameter name, for optimizer.safetensors. */
  async state(): Promise<{ m: Map<string, Float32Array>; v: Map<string, Float32Array> }> {
    const split = async (x: tf.Tensor) => {
      const d = (await x.data()) as Float32Array;
      const out = new Map<string, Float32Array>();
      let off = 0;
      this.names.forEach((n, i) => {
        out.set(n, d.slice(off, off + this.sizes[i]!));
        off += this.sizes[i]!;
      });
      return out;
    };
    return { m: await split(this.m), v: await split(this.v) };
  }

  load(m: Map<string, Float32Array>, v: Map<string, Float32Array>, t: number): void {
    const join = (src: Map<string, Float32Array>, label: string) => {
      const total = this.sizes.reduce((a, b) => a + b, 0);
      const out = new Float32Array(total);
      let off = 0;
      this.names.forEach((n, i) => {
        const d = src.get(n);
        if (!d || d.length !== this.sizes[i]) {
          throw new Error(`optimizer state ${label}.${n} is missing or has the wrong size`);
        }
        out.set(d, off);
        off += this.sizes[i]!;
      });
      return tf.tensor1d(out);
    };
    this.m.assign(join(m, 'exp_avg'));
    this.v.assign(join(v, 'exp_avg_sq'));
    this.t = t;
  }

  dispose(): void {
    tf.dispose([this.m, this.v, this.decayMask]);
  }
}
