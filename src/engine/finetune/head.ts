/**
 * GPT-1's supervised head and objective (§3.2):
 *
 *   P(y | x¹…xᵐ) = softmax(h_l^m W_y)        h_l^m: the top hidden state at the extract token [e]
 *   L2 = −Σ log P(y | x¹…xᵐ)                  the classification loss
 *   L1 = −Σ log P(u_i | u_<i)                 the language-modeling loss on the same sequences
 *   L3 = L2 + λ·L1
 *
 * The new parameters are W_y (with a bias) and the embeddings of [s], $ and [e] (./prepare.ts).
 * Training runs GPT.lossAndGrads with `gpt1Objective` as its head.
 */
import * as tf from '../tf';
import { dropoutMask } from '../model/dropout';
import type { GPT } from '../model/gpt';
import type { Head } from '../model/head';
import { crossEntropy, crossEntropyWithGrad, linearBackward, variableOf } from '../model/ops';
import { Rng } from '../util/rng';
import type { Batch } from './batch';
import type { Task } from './tasks';

type T2 = tf.Tensor2D;

/** W_y [C, K] and its bias [K]; K = the number of labels, or 1 for multiple choice (a score per answer). */
export class ClassifierHead {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;
  private static counter = 0;

  constructor(
    nEmbd: number,
    outputs: number,
    init: { seed: number } | { weight: Float32Array; bias: Float32Array },
  ) {
    const scope = `classifier${ClassifierHead.counter++}/`;
    let w: Float32Array;
    let b: Float32Array;
    if ('seed' in init) {
      const rng = new Rng(init.seed ^ 0xc1a55);
      w = Float32Array.from({ length: nEmbd * outputs }, () => rng.normal() * 0.02);
      b = new Float32Array(outputs);
    } else {
      if (init.weight.length !== nEmbd * outputs || init.bias.length !== outputs) {
        throw new Error(`classifier weights do not fit [${nEmbd}, ${outputs}]`);
      }
      w = init.weight;
      b = init.bias;
    }
    this.weight = variableOf(tf.tensor2d(w, [nEmbd, outputs]), true, scope + 'weight');
    this.bias = variableOf(tf.tensor1d(b), true, scope + 'bias');
  }

  get outputs(): number {
    return this.weight.shape[1]!;
  }

  apply(h: T2): T2 {
    return tf.add(tf.matMul(h, this.weight), this.bias) as T2;
  }

  dispose(): void {
    tf.dispose([this.weight, this.bias]);
  }
}

/** Head outputs: the number of labels, or 1 for multiple choice. */
export function headOutputs(task: Task, labels: number): number {
  return task === 'multiple-choice' ? 1 : labels;
}

/** The classifier's input from h [S·T, C]: h_l^m at each [e] (similarity: both orders added). */
function extract(h: T2, task: Task, batch: Batch): T2 {
  const hExtract = tf.matMul(batch.select, h) as T2; // [S, C]
  if (task !== 'similarity') return hExtract;
  return tf.sum(tf.reshape(hExtract, [batch.examples, 2, h.shape[1]]), 1) as T2;
}

/** W_y's output as the task's logits: multiple choice has one score per answer, [B, N]. */
function logitsOf(z: T2, task: Task, batch: Batch): T2 {
  return task === 'multiple-choice' ? (tf.reshape(z, [batch.examples, batch.perExample]) as T2) : z;
}

/** The classifier's logits [B, K] (for multiple choice [B, N], one per answer), no dropout. */
export function classifierLogits(model: GPT, head: ClassifierHead, task: Task, batch: Batch): T2 {
  const h = model.hidden(batch.ids, { lengths: batch.lengths });
  return logitsOf(head.apply(extract(h, task, batch)), task, batch);
}

/** P(y | x) for a batch: softmax over the labels (over the answers for multiple choice). */
export async function predictBatch(
  model: GPT,
  head: ClassifierHead,
  task: Task,
  batch: Batch,
): Promise<{ probs: number[][]; loss: number }> {
  const [p, l] = tf.tidy(() => {
    const logits = classifierLogits(model, head, task, batch);
    return [tf.softmax(logits), crossEntropy(logits, batch.labels)];
  });
  const data = (await p.data()) as Float32Array;
  const loss = ((await l.data()) as Float32Array)[0]!;
  const k = p.shape[1]!;
  tf.dispose([p, l]);
  return {
    probs: Array.from({ length: batch.examples }, (_, i) =>
      Array.from(data.subarray(i * k, (i + 1) * k)),
    ),
    loss,
  };
}

export interface ObjectiveOptions {
  /** λ of L3 = L2 + λ·L1. */
  lambda: number;
  /** The forward's seed (GPT.lossAndGrads gets the same), for the classifier's dropout mask. */
  seed: number;
  /** Dropout on h before W_y. */
  clfDropout: number;
  /**
   * What L2's and L1's gradients are scaled by (default 1): a worker's share of a batch split
   * over several, its examples' share for L2 and its predicted tokens' share for L1, so the
   * workers' gradients add up to the whole batch's. The losses reported stay unscaled.
   */
  l2Scale?: number;
  l1Scale?: number;
}

/**
 * L3 on one batch (means over examples and over predicted tokens) as GPT.lossAndGrads' head:
 * L2 through W_y and L1 through the tied LM head, their gradients added in ∂L3/∂h. It reports
 * L1 and L2. At λ = 0, L1 is only reported: L3 is L2 itself, and nothing flows back through the
 * LM head.
 */
export function gpt1Objective(
  model: GPT,
  head: ClassifierHead,
  task: Task,
  batch: Batch,
  o: ObjectiveOptions,
): Head {
  return (h) => {
    const x = extract(h, task, batch);
    const keep =
      o.clfDropout > 0 ? dropoutMask(x.shape, o.clfDropout, (o.seed * 977 + 5) >>> 1) : null;
    const xd = keep ? (tf.mul(x, keep) as T2) : x;
    const L2 = crossEntropyWithGrad(logitsOf(head.apply(xd), task, batch), batch.labels);
    // back through W_y, the dropout and the extraction, to the rows of h at each [e]
    const l2Scale = o.l2Scale ?? 1;
    const dlogits = l2Scale === 1 ? L2.dlogits : tf.mul(L2.dlogits, l2Scale);
    const dz = tf.reshape(dlogits, [xd.shape[0], head.outputs]) as T2;
    const [dxd, dW, db] = linearBackward(dz, xd, head.weight as tf.Tensor as T2);
    const dx = keep ? (tf.mul(dxd, keep) as T2) : dxd;
    const dExtract =
      task === 'similarity'
        ? tf.reshape(tf.tile(tf.expandDims(dx, 1), [1, 2, 1]), [2 * batch.examples, h.shape[1]])
        : dx;
    let dh = tf.matMul(batch.select, dExtract, true, false) as T2;
    const grads: Record<string, tf.Tensor> = { 'classifier.weight': dW, 'classifier.bias': db };
    let L1: tf.Scalar;
    if (o.lambda === 0) {
      L1 = crossEntropy(model.lmHead(h), tf.reshape(batch.targets, [-1]) as tf.Tensor1D);
    } else {
      const lm = model.lmLoss(batch.targets, o.lambda * (o.l1Scale ?? 1))(h);
      L1 = lm.loss;
      dh = tf.add(dh, lm.dh) as T2;
      grads['wte.weight'] = lm.grads['wte.weight']!;
    }
    const L3 = o.lambda === 0 ? L2.loss : (tf.add(L2.loss, tf.mul(o.lambda, L1)) as tf.Scalar);
    return { loss: L3, dh, grads, report: { L1, L2: L2.loss } };
  };
}
