/**
 * Heads on the model's top hidden states h [N, C] (after the final LayerNorm). A head is a
 * callback of GPT.lossAndGrads: it turns h into a loss and hands back ∂loss/∂h, from which the
 * model runs its backward pass. The LM head is GPT-1's L1; fine-tuning adds a classifier's
 * (../finetune/head.ts).
 */
import * as tf from '../tf';
import { crossEntropyWithGrad, outerGrad } from './ops';

type T2 = tf.Tensor2D;

export interface HeadOutput {
  loss: tf.Scalar;
  /** ∂loss/∂h [N, C]. */
  dh: T2;
  /**
   * The gradients of the parameters the head reads, by name: 'wte.weight' for the tied LM head
   * (the model adds the embedding's part), a classifier's own.
   */
  grads: Record<string, tf.Tensor>;
  /** Other scalars to report with the loss (fine-tuning's L1 and L2). */
  report?: Record<string, tf.Scalar>;
}

export type Head = (h: T2) => HeadOutput;

/** logits = h W_eᵀ [N, V]: the LM head, tied to the token embedding W_e [V, C]. */
export function lmLogits(h: T2, wte: T2): T2 {
  return tf.tidy(() => tf.matMul(h, wte, false, true) as T2);
}

/**
 * L1 = −mean log P(u_t | u_<t), the next-token cross-entropy of h W_eᵀ against targets [N]
 * (−1: nothing predicted there). The loss is L1; the gradients are those of scale·L1, for a head
 * that adds it to another loss.
 */
export function lmHead(wte: T2, targets: tf.Tensor1D, scale = 1): Head {
  return (h) => {
    const { loss, dlogits } = crossEntropyWithGrad(lmLogits(h, wte), targets);
    const dl = scale === 1 ? dlogits : (tf.mul(dlogits, scale) as T2);
    return {
      loss,
      dh: tf.matMul(dl, wte) as T2,
      grads: { 'wte.weight': outerGrad(dl, h) },
    };
  };
}
