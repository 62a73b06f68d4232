/**
 * BERT's masked-LM objective (Devlin et al. 2018, §3.1): 15% of the positions are selected for
 * prediction; of those, 80% are replaced by [MASK], 10% by a random token and 10% are left
 * unchanged, and the loss is taken on the selected positions only. Every draw comes from the
 * caller's seeded Rng, so a run that resumes from its saved Rng state masks exactly as before.
 */
import * as tf from '../tf';
import type { GPTConfig } from '../model/config';
import { isMaskedLm } from '../model/config';
import { MASK_TOKEN, type Tokenizer } from '../tokenizer/types';
import type { Rng } from '../util/rng';
import { sampleRows } from './data';

export const MASK_RATE = 0.15;
/** Of the selected positions: the share replaced by [MASK], then by a random token. */
export const MASK_SHARE = 0.8;
export const RANDOM_SHARE = 0.1;

export interface MaskSpec {
  /** The [MASK] token's id. */
  maskId: number;
  /** Random replacements are drawn uniformly from the ordinary ids [0, ordinary). */
  ordinary: number;
}

/** The masking of a masked-LM's tokenizer (null for a GPT); it must hold [MASK]. */
export function maskSpecOf(
  config: Pick<GPTConfig, 'objective'>,
  tokenizer: Pick<Tokenizer, 'specialTokens' | 'vocabSize'>,
): MaskSpec | null {
  if (!isMaskedLm(config)) return null;
  const maskId = tokenizer.specialTokens.get(MASK_TOKEN);
  if (maskId === undefined) {
    throw new Error(`this masked-LM model's tokenizer has no ${MASK_TOKEN} token`);
  }
  const ordinary = Math.min(tokenizer.vocabSize, ...tokenizer.specialTokens.values());
  return { maskId, ordinary: Math.max(ordinary, 1) };
}

/**
 * Masks `tokens` by BERT's rule: the inputs x (tokens with the replacements) and the targets y
 * (the original token at each selected position, −1 elsewhere). `selectable(i)` false keeps a
 * position out of the draw (the special tokens of a fine-tuning sequence).
 */
export function maskTokens(
  tokens: ArrayLike<number>,
  rng: Rng,
  spec: MaskSpec,
  selectable: (i: number) => boolean = () => true,
): { x: Int32Array; y: Int32Array } {
  const n = tokens.length;
  const x = Int32Array.from(tokens);
  const y = new Int32Array(n).fill(-1);
  for (let i = 0; i < n; i++) {
    if (rng.next() >= MASK_RATE || !selectable(i)) continue;
    y[i] = tokens[i]!;
    const u = rng.next();
    if (u < MASK_SHARE) x[i] = spec.maskId;
    else if (u < MASK_SHARE + RANDOM_SHARE) x[i] = rng.int(spec.ordinary);
  }
  return { x, y };
}

/** Random windows as sampleRows takes them, masked for a masked-LM (`mask` null: next-token targets). */
export function sampleLmRows(
  data: Int32Array,
  batch: number,
  blockSize: number,
  rng: Rng,
  mask: MaskSpec | null,
): { x: Int32Array; y: Int32Array } {
  const rows = sampleRows(data, batch, blockSize, rng);
  return mask ? maskTokens(rows.x, rng, mask) : rows;
}

/** sampleLmRows as tensors [batch, T]. */
export function sampleLmBatch(
  data: Int32Array,
  batch: number,
  blockSize: number,
  rng: Rng,
  mask: MaskSpec | null,
): { x: tf.Tensor2D; y: tf.Tensor2D } {
  const { x, y } = sampleLmRows(data, batch, blockSize, rng, mask);
  return {
    x: tf.tensor2d(x, [batch, blockSize], 'int32'),
    y: tf.tensor2d(y, [batch, blockSize], 'int32'),
  };
}
