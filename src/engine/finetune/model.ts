/**
 * GPT-1's supervised head and objective (§3.2):
 *
 *   P(y | x¹…xᵐ) = softmax(h_l^m W_y)        h_l^m: the top hidden state at the extract token [e]
 *   L2 = −Σ log P(y | x¹…xᵐ)                  the classification loss
 *   L1 = −Σ log P(u_i | u_<i)                 the language-modeling loss on the same sequences
 *   L3 = L2 + λ·L1
 *
 * The new parameters are W_y (with a bias) and the embeddings of [s], $ and [e].
 */
import * as tf from '../tf';
import type { GPTConfig } from '../checkpoint/config';
import { GPT, initParams } from '../model/gpt';
import { crossEntropy, dropoutMask, variableOf } from '../model/ops';
import type { Tokenizer } from '../tokenizer/types';
import { Rng } from '../util/rng';
import { addFinetuneTokens, type SpecialIds, type Task } from './tasks';

type T2 = tf.Tensor2D;

/**
 * Adds [s], $ and [e] to the tokenizer and grows W_e to match: existing rows are kept, each new
 * token's row is drawn from N(0, 0.02) as GPT-2 initializes embeddings. `init: 'random'` discards
 * the pretrained weights altogether (the ablation's baseline). Disposes `model` when it replaces it.
 */
export function prepareModel(
  model: GPT,
  weights: Map<string, Float32Array>,
  tokenizer: Tokenizer,
  opts: { init: 'pretrained' | 'random'; seed: number },
): { model: GPT; special: SpecialIds; newTokens: string[] } {
  const before = tokenizer.vocabSize;
  const special = addFinetuneTokens(tokenizer);
  const newIds = Object.values(special).filter((id) => id >= before);
  const newTokens = newIds.map((id) => tokenizer.idToToken(id)!);
  const vocabSize = Math.max(model.config.vocabSize, tokenizer.vocabSize);
  const config: GPTConfig = { ...model.config, vocabSize };
  if (opts.init === 'random') {
    model.dispose();
    return { model: GPT.init(config, opts.seed), special, newTokens };
  }
  if (newIds.length === 0) return { model, special, newTokens };
  const C = config.nEmbd;
  const old = weights.get('wte.weight')!;
  const wte = new Float32Array(vocabSize * C);
  wte.set(old.subarray(0, Math.min(old.length, wte.length)));
  const rng = new Rng(opts.seed ^ 0x5be);
  for (const id of newIds) for (let j = 0; j < C; j++) wte[id * C + j] = rng.normal() * 0.02;
  const grown = new Map(weights);
  grown.set('wte.weight', wte);
  model.dispose();
  return { model: new GPT(config, grown), special, newTokens };
}

/** GPT-2 style random weights for a config (re-exported for the random-init baseline). */
export { initParams };

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

export interface ForwardOptions {
  train?: boolean;
  seed?: number;
  /** Dropout on h before W_y (training only). */
  clfDropout?: number;
}

/**
 * The classifier's logits [B, K] (for multiple choice [B, N], one per answer) and the top hidden
 * states h [S·T, C] they came from.
 */
export function forward(
  model: GPT,
  head: ClassifierHead,
  task: Task,
  batch: Batch,
  opts: ForwardOptions = {},
): { logits: T2; h: T2 } {
  const C = model.config.nEmbd;
  const B = batch.examples;
  const h = model.hidden(batch.ids, { train: opts.train, seed: opts.seed });
  const hExtract = tf.matMul(batch.select, h) as T2; // [S, C]: h_l^m at each [e]
  // similarity: the two orderings' representations are added element-wise
  let x = task === 'similarity' ? (tf.sum(tf.reshape(hExtract, [B, 2, C]), 1) as T2) : hExtract;
  const rate = opts.train ? (opts.clfDropout ?? 0) : 0;
  if (rate > 0) x = tf.mul(x, dropoutMask(x.shape, rate, ((opts.seed ?? 0) * 977 + 5) >>> 1)) as T2;
  let logits = head.apply(x);
  // multiple choice: one score per answer, the softmax runs over the answers
  if (task === 'multiple-choice') logits = tf.reshape(logits, [B, batch.perExample]) as T2;
  return { logits, h };
}

export interface Losses {
  /** L3 = L2 + λ·L1 */
  L3: tf.Scalar;
  L2: tf.Scalar;
  L1: tf.Scalar;
}

/** GPT-1's fine-tuning objective on one batch (means over examples and predicted tokens). */
export function finetuneLosses(
  model: GPT,
  head: ClassifierHead,
  task: Task,
  batch: Batch,
  lambda: number,
  opts: ForwardOptions = {},
): Losses {
  const { logits, h } = forward(model, head, task, batch, opts);
  const L2 = crossEntropy(logits, batch.labels);
  const [S, T] = batch.targets.shape;
  const L1 = crossEntropy(model.lmHead(h), tf.reshape(batch.targets, [S * T]) as tf.Tensor1D);
  // at λ = 0, L1 is only reported: L3 is L2 itself, and no gradient flows back through the LM head
  const L3 = lambda === 0 ? L2 : (tf.add(L2, tf.mul(lambda, L1)) as tf.Scalar); // L3 = L2 + λ·L1
  return { L3, L2, L1 };
}

/** P(y | x) for a batch: softmax over the labels (over the answers for multiple choice). */
export async function predictBatch(
  model: GPT,
  head: ClassifierHead,
  task: Task,
  batch: Batch,
): Promise<{ probs: number[][]; loss: number }> {
  const [p, l] = tf.tidy(() => {
    const { logits } = forward(model, head, task, batch);
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
