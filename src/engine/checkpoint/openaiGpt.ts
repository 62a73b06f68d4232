/**
 * GPT-1's own Hugging Face format, for a model in GPT-1's post-LayerNorm layout: config.json for
 * OpenAIGPTLMHeadModel (model_type "openai-gpt") and its model.safetensors. transformers' GPT-2
 * has no post-LayerNorm option, but openai-gpt is exactly that layout: its block computes
 * n = ln_1(x + attn(x)), h = ln_2(n + mlp(n)), with Conv1D weights [in, out] as GPT-2's, and it
 * has no final LayerNorm. The parameters keep their names but for the embeddings
 * (wte → tokens_embed, wpe → positions_embed); the LM head is tied to tokens_embed.
 */
import type { GPTConfig } from '../model/config';
import { TRANSFORMERS_VERSION } from './gpt2';

export const OPENAI_GPT_PREFIX = 'transformer.';

/** A parameter's openai-gpt name in model.safetensors, from its GPT-2 name (./params.ts). */
export function openAiGptName(name: string): string {
  if (name === 'wte.weight') return OPENAI_GPT_PREFIX + 'tokens_embed.weight';
  if (name === 'wpe.weight') return OPENAI_GPT_PREFIX + 'positions_embed.weight';
  if (name === 'ln_f.weight' || name === 'ln_f.bias') {
    throw new Error(`openai-gpt has no final LayerNorm (${name}): only GPT-1's layout exports so`);
  }
  return OPENAI_GPT_PREFIX + name;
}

/** A transformers-compatible config.json for OpenAIGPTLMHeadModel, keys sorted. */
export function toOpenAiGptConfigJson(
  cfg: GPTConfig,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  const core: Record<string, unknown> = {
    architectures: ['OpenAIGPTLMHeadModel'],
    model_type: 'openai-gpt',
    vocab_size: cfg.vocabSize,
    n_positions: cfg.blockSize,
    n_ctx: cfg.blockSize,
    n_embd: cfg.nEmbd,
    n_layer: cfg.nLayer,
    n_head: cfg.nHead,
    afn: cfg.activation,
    resid_pdrop: cfg.dropout,
    embd_pdrop: cfg.dropout,
    attn_pdrop: cfg.dropout,
    layer_norm_epsilon: cfg.layerNormEpsilon,
    initializer_range: 0.02,
    tie_word_embeddings: true,
    torch_dtype: 'float32',
    transformers_version: TRANSFORMERS_VERSION,
  };
  const all = { ...extra, ...core };
  return Object.fromEntries(Object.entries(all).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
