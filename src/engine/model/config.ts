/** The GPT-2 hyperparameters: the one config object the model, its checkpoints and presets share. */

export type Activation = 'gelu_new' | 'gelu';

export interface GPTConfig {
  vocabSize: number;
  /** Context length (HF n_positions). */
  blockSize: number;
  nLayer: number;
  nHead: number;
  nEmbd: number;
  dropout: number;
  /** HF default 1e-5. */
  layerNormEpsilon: number;
  /** 'gelu_new' is the tanh approximation GPT-2 uses; 'gelu' is the exact erf form. */
  activation: Activation;
  /** GPT-2 always has biases in its linear and LayerNorm layers. */
  bias: true;
}

export const DEFAULT_LAYER_NORM_EPSILON = 1e-5;
