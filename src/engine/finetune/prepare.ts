/** The pretrained model made ready for fine-tuning: GPT-1's [s], $ and [e] get embeddings. */
import type { GPTConfig } from '../model/config';
import { GPT } from '../model/gpt';
import type { Tokenizer } from '../tokenizer/types';
import { Rng } from '../util/rng';
import { addFinetuneTokens, type SpecialIds } from './tasks';

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
