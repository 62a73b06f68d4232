/**
 * Inference weights: f32 (tf variables, as training has them), f16 or q8 (./store.ts), what a
 * model needs at each, and which to use. `auto` takes f32 when it fits the backend's memory with
 * room for the KV cache and activations, else f16, else q8, else refuses up front with the
 * numbers for each.
 */
import type { MemoryBudget } from '../checkpoint/config';
import { formatSize } from '../checkpoint/config';
import type { GPTConfig } from '../model/config';
import { countParams } from '../model/params';

export const WEIGHT_FORMATS = ['f32', 'f16', 'q8'] as const;
export type WeightFormat = (typeof WEIGHT_FORMATS)[number];
export const WEIGHT_CHOICES = [...WEIGHT_FORMATS, 'auto'] as const;
export type WeightChoice = (typeof WEIGHT_CHOICES)[number];

/** wasm32's ceiling: the most the f16/q8 weights' own wasm memory can hold. */
export const KERNEL_MEMORY_MAX = 4 * 2 ** 30;

/** [outputs, inputs] of the matrices a store holds: W_e, then per block c_attn, c_proj, c_fc, proj. */
function storedShapes(cfg: Pick<GPTConfig, 'vocabSize' | 'nLayer' | 'nEmbd'>): number[][] {
  const C = cfg.nEmbd;
  const block = [
    [3 * C, C],
    [C, C],
    [4 * C, C],
    [C, 4 * C],
  ];
  return [[cfg.vocabSize, C], ...Array.from({ length: cfg.nLayer }, () => block).flat()];
}

/** Bytes of an n × k matrix held as f16 (rows padded to 8) or q8 (rows padded to 32, a scale each). */
export function matrixBytes(format: 'f16' | 'q8', n: number, k: number): number {
  if (format === 'f16') return n * Math.ceil(k / 8) * 8 * 2;
  const kp = Math.ceil(k / 32) * 32;
  return n * kp + n * (kp / 32) * 2;
}

/** The sizes a model's memory depends on (its layout: GPT-1's has no ln_f). */
type SizeConfig = Pick<GPTConfig, 'vocabSize' | 'blockSize' | 'nLayer' | 'nEmbd' | 'layout'>;

/** Bytes of the model's weights at `format` (the matrices at it, every other parameter float32). */
export function weightBytes(cfg: SizeConfig, format: WeightFormat): number {
  const all = countParams(cfg);
  if (format === 'f32') return all * 4;
  let stored = 0;
  let bytes = 0;
  for (const [n, k] of storedShapes(cfg)) {
    stored += n! * k!;
    bytes += matrixBytes(format, n!, k!);
  }
  return bytes + (all - stored) * 4;
}

/**
 * What generation and scoring hold beside the weights: the decoder's KV cache and buffers, one
 * context window's logits, and the wasm module's own memory.
 */
export function runtimeBytes(cfg: SizeConfig): number {
  const { nLayer: L, blockSize: T, nEmbd: C, vocabSize: V } = cfg;
  return L * 2 * T * C * 4 + 64 * 11 * C * 4 + T * V * 4 + 16 * 2 ** 20;
}

export interface WeightsPlan {
  format: WeightFormat;
  /** Bytes of the weights at the format. */
  weightBytes: number;
  /** What loading it for inference needs in all (weights, KV cache, activations). */
  needBytes: number;
}

/**
 * The memory `format` needs for inference. On the wasm backend f32 weights count twice: XNNPACK
 * keeps a packed copy of each matrix it multiplies by.
 */
export function inferenceNeed(
  cfg: SizeConfig,
  format: WeightFormat,
  opts: { packedCopies?: boolean } = {},
): WeightsPlan {
  const w = weightBytes(cfg, format);
  const resident = format === 'f32' && opts.packedCopies ? 2 * w : w;
  return { format, weightBytes: w, needBytes: resident + runtimeBytes(cfg) };
}

/** A model that cannot be held at the format asked (or, for auto, at any), said with the numbers. */
export class WeightsTooLargeError extends Error {
  override name = 'WeightsTooLargeError';
}

const fits = (p: WeightsPlan, budget: MemoryBudget) =>
  p.needBytes <= budget.bytes && (p.format === 'f32' || p.weightBytes <= KERNEL_MEMORY_MAX);

/**
 * The format to load `name` with for inference: `choice`, or for auto the widest that fits
 * `budget`. Throws, before anything is read, when the choice (or, for auto, every format) does
 * not fit, with what each format needs.
 */
export function planWeights(
  cfg: SizeConfig,
  choice: WeightChoice,
  budget: MemoryBudget,
  name: string,
  opts: { packedCopies?: boolean } = {},
): WeightsPlan {
  const plans = WEIGHT_FORMATS.map((f) => inferenceNeed(cfg, f, opts));
  const has = `${budget.holder} has ${formatSize(budget.bytes)}`;
  const gib = (p: WeightsPlan) => formatSize(p.needBytes);
  if (choice === 'auto') {
    const best = plans.find((p) => fits(p, budget));
    if (best) return best;
    const list = plans.map((p) => `${gib(p)} at ${p.format}`);
    throw new WeightsTooLargeError(
      `${name} needs ${list.join(', ')} (weights, KV cache and activations); ${has}` +
        (plans[2]!.weightBytes > KERNEL_MEMORY_MAX ? ' (and f16/q8 weights at most 4 GiB)' : ''),
    );
  }
  const plan = plans.find((p) => p.format === choice)!;
  if (fits(plan, budget)) return plan;
  const others = plans.filter((p) => p !== plan && fits(p, budget));
  throw new WeightsTooLargeError(
    `${name} needs ${gib(plan)} at ${choice} (weights, KV cache and activations); ${has}` +
      (plan.format !== 'f32' && plan.weightBytes > KERNEL_MEMORY_MAX
        ? ` (and ${choice} weights are ${formatSize(plan.weightBytes)}, past the 4 GiB of wasm32)`
        : '') +
      (others.length
        ? `: load it as ${others.map((p) => `${p.format} (${gib(p)})`).join(' or ')} instead`
        : ''),
  );
}
