/**
 * The GPT-2 parameters as one typed tree, keyed by GPT-2's own names, so that a parameter's path
 * is its Hugging Face name: `h[3].attn.c_attn.weight` is `h.3.attn.c_attn.weight`. Linear weights
 * are in GPT-2's Conv1D layout [in, out]. The tree is generic in what a leaf holds: a shape, a tf
 * variable, a gradient, or the wasm decoder's view of a buffer.
 *
 * No tfjs here: checkpoint readers size and check files from these shapes without loading it.
 */
import { Rng } from '../util/rng';
import { isPostLn, type GPTConfig } from './config';

/** A layer's weight and bias: LayerNorm's gain and shift, or a linear map's W [in, out] and b. */
export interface Layer<P> {
  weight: P;
  bias: P;
}

/** One transformer block: pre-LayerNorm causal self-attention, then a pre-LayerNorm 4× MLP. */
export interface BlockParams<P> {
  ln_1: Layer<P>;
  attn: { c_attn: Layer<P>; c_proj: Layer<P> };
  ln_2: Layer<P>;
  mlp: { c_fc: Layer<P>; c_proj: Layer<P> };
}

export interface GPTParams<P> {
  /** Token embedding W_e [V, C], also the LM head (tied). */
  wte: { weight: P };
  /** Position embedding W_p [T, C]. */
  wpe: { weight: P };
  h: BlockParams<P>[];
  /** The final LayerNorm: GPT-2's layout only (GPT-1 has none). */
  ln_f: Layer<P> | null;
}

/** The tree for `cfg`, each leaf made by `leaf(name, shape)`, called in GPT-2's parameter order. */
export function paramTree<P>(
  cfg: GPTConfig,
  leaf: (name: string, shape: number[]) => P,
): GPTParams<P> {
  const { vocabSize: V, blockSize: T, nEmbd: C, nLayer: L } = cfg;
  const layer = (name: string, w: number[], b: number[]): Layer<P> => ({
    weight: leaf(name + '.weight', w),
    bias: leaf(name + '.bias', b),
  });
  const block = (i: number): BlockParams<P> => {
    const h = `h.${i}.`;
    return {
      ln_1: layer(h + 'ln_1', [C], [C]),
      attn: {
        c_attn: layer(h + 'attn.c_attn', [C, 3 * C], [3 * C]),
        c_proj: layer(h + 'attn.c_proj', [C, C], [C]),
      },
      ln_2: layer(h + 'ln_2', [C], [C]),
      mlp: {
        c_fc: layer(h + 'mlp.c_fc', [C, 4 * C], [4 * C]),
        c_proj: layer(h + 'mlp.c_proj', [4 * C, C], [C]),
      },
    };
  };
  const wte = { weight: leaf('wte.weight', [V, C]) };
  const wpe = { weight: leaf('wpe.weight', [T, C]) };
  const h = Array.from({ length: L }, (_, i) => block(i));
  return { wte, wpe, h, ln_f: isPostLn(cfg) ? null : layer('ln_f', [C], [C]) };
}

/** A block's layers by name (as in `h.<i>.<name>.weight`), in forward order. */
export function blockLayers<P>(b: BlockParams<P>): Array<[string, Layer<P>]> {
  return [
    ['ln_1', b.ln_1],
    ['attn.c_attn', b.attn.c_attn],
    ['attn.c_proj', b.attn.c_proj],
    ['ln_2', b.ln_2],
    ['mlp.c_fc', b.mlp.c_fc],
    ['mlp.c_proj', b.mlp.c_proj],
  ];
}

/** HF GPT-2 parameter names (no `transformer.` prefix) and shapes, in GPT-2's order. */
export function paramShapes(cfg: GPTConfig): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  paramTree(cfg, (name, shape) => shapes.set(name, shape));
  return shapes;
}

/**
 * The number of parameters, in closed form (no per-layer loop, so a config with n_layer 1e9 costs
 * nothing to size): wte V·C, wpe T·C, per layer 12C² + 13C (c_attn 3C² + 3C, attn c_proj C² + C,
 * c_fc 4C² + 4C, mlp c_proj 4C² + C, two LayerNorms 4C), and ln_f 2C (GPT-2's layout only:
 * GPT-1's has no final LayerNorm). The LM head is W_e.
 */
export function countParams(
  cfg: Pick<GPTConfig, 'vocabSize' | 'blockSize' | 'nLayer' | 'nEmbd' | 'layout'>,
): number {
  const { vocabSize: V, blockSize: T, nLayer: L, nEmbd: C } = cfg;
  const lnF = isPostLn(cfg) ? 0 : 2 * C;
  return V * C + T * C + L * (12 * C * C + 13 * C) + lnF;
}

/** GPT-2 initialization: N(0, 0.02); residual projections N(0, 0.02/√(2L)); LN 1 and 0; biases 0. */
export function initParams(cfg: GPTConfig, seed: number): Map<string, Float32Array> {
  const rng = new Rng(seed);
  const out = new Map<string, Float32Array>();
  const residStd = 0.02 / Math.sqrt(2 * cfg.nLayer);
  for (const [name, shape] of paramShapes(cfg)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (name.endsWith('ln_1.weight') || name.endsWith('ln_2.weight') || name === 'ln_f.weight') {
      data.fill(1);
    } else if (shape.length === 2) {
      const std = name.endsWith('c_proj.weight') ? residStd : 0.02;
      for (let i = 0; i < data.length; i++) data[i] = rng.normal() * std;
    }
    out.set(name, data);
  }
  return out;
}
