/**
 * What holding the weights as f16 or q8 costs in accuracy, measured at load: the log-probability
 * of each token of a short fixed reference text, from the stored weights through the decoder
 * that generates (its kernels quantise activations too), against float32. The float32 side is
 * computed from the checkpoint itself as it streams by (./reference.ts), so it is measured even
 * for a model whose float32 weights would not fit: it never holds more than a slice of them.
 */
import type { WeightsNumerics } from '../../common/console';
import type { Gpt2WeightsFile } from '../checkpoint/gpt2';
import type { GPTConfig } from '../model/config';
import type { GPT } from '../model/gpt';
import { WasmDecoder } from '../model/wasmDecoder';
import type { Tokenizer } from '../tokenizer/types';
import { streamParameters } from './load';
import { ReferenceForward } from './reference';

export const REFERENCE_TEXT =
  'It is a truth universally acknowledged, that a single man in possession of a good fortune, ' +
  'must be in want of a wife.';
/** At most this many tokens of it are scored (fewer when the context is shorter). */
export const REFERENCE_TOKENS = 16;

/**
 * The reference text's tokens after end-of-text, or, when the tokenizer cannot encode it (a
 * character vocabulary without those letters), a fixed sequence of token ids.
 */
export function referenceIds(
  tokenizer: Tokenizer,
  cfg: Pick<GPTConfig, 'blockSize' | 'vocabSize'>,
): { ids: number[]; text: boolean } {
  const n = Math.min(REFERENCE_TOKENS, cfg.blockSize);
  try {
    const ids = [...(tokenizer.eosId === undefined ? [] : [tokenizer.eosId])];
    ids.push(...tokenizer.encode(REFERENCE_TEXT));
    if (ids.every((id) => id < cfg.vocabSize)) return { ids: ids.slice(0, n), text: true };
  } catch {
    // not encodable: the fixed ids below
  }
  return {
    ids: Array.from({ length: n }, (_, i) => (i * 7919 + 13) % cfg.vocabSize),
    text: false,
  };
}

/**
 * log P(ids[t+1] | ids[0…t]) with the checkpoint's float32 weights, streamed from the file (the
 * loader runs the same forward during its own pass instead: loadWeightStore's `reference`).
 */
export async function referenceLogprobs(
  f: Gpt2WeightsFile,
  cfg: GPTConfig,
  ids: readonly number[],
): Promise<Float64Array> {
  const reference = new ReferenceForward(cfg, ids);
  try {
    await streamParameters(f, cfg, (name, values, at, first) =>
      reference.take(name, values, at, first),
    );
    return await reference.logprobs(f);
  } finally {
    reference.dispose();
  }
}

/**
 * The mean and largest |Δ log P| of the stored-weights model against float32 on the reference
 * text, or null when the context is too short to score a token.
 */
export async function measureNumerics(
  f: Gpt2WeightsFile,
  model: GPT,
  reference: ReferenceForward,
  ids: { ids: readonly number[]; text: boolean },
): Promise<WeightsNumerics | null> {
  if (ids.ids.length < 2) return null;
  const want = await reference.logprobs(f);
  const decoder = WasmDecoder.create(model);
  if (!decoder) return null;
  let got: Float64Array;
  try {
    got = decoder.logprobs(ids.ids);
  } finally {
    decoder.dispose();
  }
  let total = 0;
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i]! - want[i]!);
    total += d;
    worst = Math.max(worst, d);
  }
  return {
    reference: 'f32',
    text: ids.text,
    tokens: want.length,
    meanAbsDiff: total / want.length,
    maxAbsDiff: worst,
  };
}
