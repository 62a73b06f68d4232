/**
 * GPT-2 written with standard tfjs ops only (tf.gather, tf.moments, tf.logSoftmax, tf.tanh, …):
 * tfjs autodiff of it, on the cpu backend, is the reference the engine's explicit backward pass
 * is held to. With dropout it draws the engine's masks — the same seed for each site,
 * (seed·131 + salt) >>> 1 — which tf.randomUniform, seeded in JS, draws alike on every backend;
 * so it also pins the sites' seeds.
 */
import '@tensorflow/tfjs'; // tfjs's gradient definitions, for the autodiff references
import * as tf from '../../../src/engine/tf';
import type { GPTConfig } from '../../../src/engine/model/config';

export interface ReferenceDropout {
  rate: number;
  /** The forward's seed. */
  seed: number;
}

/** The engine's keep mask for the site with `salt`, in the engine's shape. */
function keepMask(shape: number[], d: ReferenceDropout, salt: number): tf.Tensor {
  const seed = (d.seed * 131 + salt) >>> 1;
  const u = tf.randomUniform(shape, 0, 1, 'float32', seed);
  return tf.div(tf.cast(tf.greaterEqual(u, d.rate), 'float32'), 1 - d.rate);
}

/**
 * The top hidden states [B·T, C] (after ln_f; GPT-1's layout: after the last LN_2) of ids [B][T].
 * A masked-LM (`cfg.objective` 'mlm') attends both ways, to each row's first `lengths[b]` keys.
 */
export function referenceHidden(
  cfg: GPTConfig,
  P: Map<string, tf.Tensor>,
  ids: number[][],
  drop?: ReferenceDropout,
  lengths?: number[],
): tf.Tensor2D {
  const B = ids.length;
  const T = ids[0]!.length;
  const { nEmbd: C, nHead: H } = cfg;
  const hs = C / H;
  const p = (n: string) => P.get(n)!;
  const ln = (x: tf.Tensor, name: string) => {
    const { mean, variance } = tf.moments(x, -1, true);
    const xhat = tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, cfg.layerNormEpsilon)));
    return tf.add(tf.mul(xhat, p(name + '.weight')), p(name + '.bias'));
  };
  const conv1d = (x: tf.Tensor, name: string) =>
    tf.add(
      tf.matMul(tf.reshape(x, [-1, x.shape.at(-1)!]), p(name + '.weight') as tf.Tensor2D),
      p(name + '.bias'),
    );
  const act = (x: tf.Tensor) =>
    cfg.activation === 'gelu'
      ? tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.div(x, Math.SQRT2))))
      : tf.mul(
          tf.mul(x, 0.5),
          tf.add(
            1,
            tf.tanh(tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))))),
          ),
        );
  // dropout of x [B·T, C] at a site
  const dropRows = (x: tf.Tensor, salt: number) =>
    drop ? tf.mul(x, keepMask([B * T, C], drop, salt)) : x;
  const lower = tf.linalg.bandPart(tf.ones([T, T]), -1, 0);
  const keys = (b: number) =>
    Array.from({ length: T }, (_, t) => (t < (lengths?.[b] ?? T) ? 0 : -1e9));
  const negMask =
    cfg.objective === 'mlm'
      ? tf.tensor4d(Array.from({ length: B }, (_, b) => keys(b)).flat(), [B, 1, 1, T])
      : tf.mul(tf.sub(1, lower), -1e9);

  let x: tf.Tensor = tf.add(
    tf.gather(p('wte.weight'), tf.tensor2d(ids, [B, T], 'int32')),
    tf.slice(p('wpe.weight'), [0, 0], [T, C]),
  ); // [B, T, C]
  x = tf.reshape(dropRows(tf.reshape(x, [B * T, C]), 1), [B, T, C]);
  // GPT-1's post-LayerNorm layout: the branches read x, LN after each residual add, no ln_f
  const post = cfg.layout === 'gpt1';
  for (let i = 0; i < cfg.nLayer; i++) {
    const pre = `h.${i}.`;
    const h1 = post ? x : ln(x, pre + 'ln_1');
    const qkv = tf.reshape(conv1d(h1, pre + 'attn.c_attn'), [B, T, 3, H, hs]);
    const part = (j: number) =>
      tf.transpose(tf.squeeze(tf.slice(qkv, [0, 0, j, 0, 0], [B, T, 1, H, hs]), [2]), [0, 2, 1, 3]);
    const [q, k, v] = [part(0), part(1), part(2)] as tf.Tensor4D[];
    const att = tf.add(tf.div(tf.matMul(q!, k!, false, true), Math.sqrt(hs)), negMask);
    let probs: tf.Tensor = tf.softmax(att); // [B, H, T, T]
    if (drop) {
      // the engine's mask is head-major, [H·B, T, T]
      const keep = tf.reshape(keepMask([H * B, T, T], drop, 7 + 3 * i), [H, B, T, T]);
      probs = tf.mul(probs, tf.transpose(keep, [1, 0, 2, 3]));
    }
    const y = tf.reshape(tf.transpose(tf.matMul(probs as tf.Tensor4D, v!), [0, 2, 1, 3]), [
      B,
      T,
      C,
    ]);
    x = tf.add(x, tf.reshape(dropRows(conv1d(y, pre + 'attn.c_proj'), 8 + 3 * i), [B, T, C]));
    if (post) x = ln(x, pre + 'ln_1');
    const h2 = post ? x : ln(x, pre + 'ln_2');
    const m = conv1d(act(conv1d(h2, pre + 'mlp.c_fc')), pre + 'mlp.c_proj');
    x = tf.add(x, tf.reshape(dropRows(m, 9 + 3 * i), [B, T, C]));
    if (post) x = ln(x, pre + 'ln_2');
  }
  return tf.reshape(post ? x : ln(x, 'ln_f'), [B * T, C]) as tf.Tensor2D;
}

/** Mean cross-entropy of logits [N, V] against targets [N] (−1: ignored). */
export function referenceCrossEntropy(logits: tf.Tensor2D, targets: number[]): tf.Scalar {
  const [N, V] = logits.shape;
  const onehot = new Float32Array(N * V);
  targets.forEach((t, i) => {
    if (t >= 0) onehot[i * V + t] = 1;
  });
  const count = targets.filter((t) => t >= 0).length;
  return tf.div(
    tf.neg(tf.sum(tf.mul(tf.logSoftmax(logits), tf.tensor2d(onehot, [N, V])))),
    Math.max(count, 1),
  ) as tf.Scalar;
}

/** L1: the tied LM head's mean next-token cross-entropy on h [B·T, C]. */
export function referenceLmLoss(
  P: Map<string, tf.Tensor>,
  h: tf.Tensor2D,
  targets: number[][],
): tf.Scalar {
  const logits = tf.matMul(h, P.get('wte.weight') as tf.Tensor2D, false, true);
  return referenceCrossEntropy(logits as tf.Tensor2D, targets.flat());
}

/**
 * Loss and gradients of `loss` for weights by name, by autodiff on the cpu backend (switched to
 * for the call, back to wasm after). `extra` are further variables (a classifier head).
 */
export async function referenceGrads(
  weights: Map<string, { data: Float32Array; shape: number[] }>,
  loss: (P: Map<string, tf.Tensor>) => tf.Scalar,
  initBackend: (name: 'cpu' | 'wasm') => Promise<unknown>,
): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
  await initBackend('cpu');
  try {
    const names = [...weights.keys()];
    const vars = names.map((n) =>
      tf.variable(tf.tensor(weights.get(n)!.data, weights.get(n)!.shape)),
    );
    const P = new Map(names.map((n, i) => [n, vars[i]! as tf.Tensor]));
    const { value, grads } = tf.variableGrads(() => loss(P), vars);
    const out = new Map<string, Float32Array>();
    for (const [i, n] of names.entries()) {
      out.set(n, (await grads[vars[i]!.name]!.data()) as Float32Array);
    }
    const v = (await value.data())[0]!;
    tf.dispose([value, ...vars, ...Object.values(grads)]);
    return { loss: v, grads: out };
  } finally {
    await initBackend('wasm');
  }
}
