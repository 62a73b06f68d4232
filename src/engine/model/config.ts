/** The GPT-2 hyperparameters: the one config object the model, its checkpoints and presets share. */

export type Activation = 'gelu_new' | 'gelu';

/**
 * Where the LayerNorms sit. 'gpt2': pre-LayerNorm, LN at each block's input and a final ln_f.
 * 'gpt1': post-LayerNorm, x = LN(x + attn(x)); x = LN(x + mlp(x)), and no final LayerNorm.
 */
export type Layout = 'gpt1' | 'gpt2';

export const LAYOUTS: readonly Layout[] = ['gpt1', 'gpt2'];

/**
 * The pretraining objective: 'clm' (GPT: causal attention, predict the next token) or 'mlm'
 * (BERT: bidirectional attention, predict masked tokens). Unset means 'clm' (every older model).
 */
export type Objective = 'clm' | 'mlm';

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
  /**
   * Pre-LayerNorm GPT-2 (with ln_f) or post-LayerNorm GPT-1 (without); config.json's `layout`.
   * Unset: 'gpt2' (every older model).
   */
  layout?: Layout;
  /** GPT-2 always has biases in its linear and LayerNorm layers. */
  bias: true;
  /** Unset: 'clm'. An 'mlm' model attends both ways and cannot generate. */
  objective?: Objective;
}

/** The model's objective, 'clm' when the config predates the field. */
export function objectiveOf(c: Pick<GPTConfig, 'objective'>): Objective {
  return c.objective ?? 'clm';
}

/** Whether the model attends both ways (a masked-LM, BERT-style). */
export function isMaskedLm(c: Pick<GPTConfig, 'objective'>): boolean {
  return objectiveOf(c) === 'mlm';
}

/** Why masked-LM model `name` cannot `what` (generate text, rank continuations, be exported as a GPT…). */
export function maskedLmRefusal(name: string, what: string): string {
  return (
    `${name} is a masked-LM (BERT-style) model: it sees both sides of each token, so it cannot ` +
    `${what}; fine-tune it or use a GPT model.`
  );
}

/** What a masked-LM model cannot do that the console, the CLI and the exports ask of a GPT. */
export const LEFT_TO_RIGHT = 'generate text left to right or rank continuations';

/** Throws maskedLmRefusal when `config` is a masked-LM's. */
export function refuseMaskedLm(
  config: Pick<GPTConfig, 'objective'>,
  name: string,
  what: string = LEFT_TO_RIGHT,
): void {
  if (isMaskedLm(config)) throw new Error(maskedLmRefusal(name, what));
}

/** The model's LayerNorm layout, 'gpt2' when the config predates the field. */
export function layoutOf(c: Pick<GPTConfig, 'layout'>): Layout {
  return c.layout ?? 'gpt2';
}

/** Whether the model is post-LayerNorm (GPT-1's layout: no ln_f). */
export function isPostLn(c: Pick<GPTConfig, 'layout'>): boolean {
  return layoutOf(c) === 'gpt1';
}

export const DEFAULT_LAYER_NORM_EPSILON = 1e-5;
