#!/usr/bin/env python3
"""Inside a GPT-2 forward pass in PyTorch, for checking the console's inspection against.

Reads a Hugging Face GPT-2 directory as gpt2_reference.py does (no transformers).
Usage: python3 scripts/attention_reference.py MODEL_DIR < input.json
input: {"ids": [...]} (one sequence)
output: {"attention": [L][H][T][T], "residual": [L+1][T][C], "lens": [L+1][T]}
  attention: each layer's softmax(q kᵀ / √hs + causal mask) per head
  residual: the stream after the embedding, then after each block
  lens: the top-1 token of ln_f(residual) W_eᵀ at each layer and position (the logit lens)
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt2_reference import gelu_new, load_safetensors  # noqa: E402


def inside(w, cfg, ids):
    """ids: LongTensor [T] -> attention [L, H, T, T], residual [L+1, T, C]."""
    T = ids.shape[0]
    C, nh = cfg['n_embd'], cfg['n_head']
    eps = cfg.get('layer_norm_epsilon', 1e-5)
    act = {'gelu_new': gelu_new, 'gelu_pytorch_tanh': gelu_new, 'gelu': F.gelu}[
        cfg.get('activation_function', 'gelu_new')
    ]

    def ln(x, prefix):
        return F.layer_norm(x, (C,), w[prefix + '.weight'], w[prefix + '.bias'], eps)

    def conv1d(x, prefix):  # HF Conv1D: weight is [in, out]
        return x @ w[prefix + '.weight'] + w[prefix + '.bias']

    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    x = w['wte.weight'][ids] + w['wpe.weight'][:T]
    attention, residual = [], [x]
    for i in range(cfg['n_layer']):
        p = f'h.{i}.'
        q, k, v = conv1d(ln(x, p + 'ln_1'), p + 'attn.c_attn').split(C, dim=1)
        q, k, v = (t.view(T, nh, C // nh).transpose(0, 1) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // nh)
        att = att.masked_fill(~causal, float('-inf')).softmax(dim=-1)
        attention.append(att)
        y = (att @ v).transpose(0, 1).reshape(T, C)
        x = x + conv1d(y, p + 'attn.c_proj')
        x = x + conv1d(act(conv1d(ln(x, p + 'ln_2'), p + 'mlp.c_fc')), p + 'mlp.c_proj')
        residual.append(x)
    return torch.stack(attention), torch.stack(residual), ln


def main():
    model_dir = sys.argv[1]
    with open(os.path.join(model_dir, 'config.json')) as f:
        cfg = json.load(f)
    cfg.setdefault('n_positions', cfg.get('n_ctx'))
    w = load_safetensors(os.path.join(model_dir, 'model.safetensors'))
    torch.set_grad_enabled(False)
    ids = json.load(sys.stdin)['ids']
    if not 0 < len(ids) <= cfg['n_positions']:
        sys.exit(f'sequence length {len(ids)} not in 1..{cfg["n_positions"]}')
    attention, residual, ln = inside(w, cfg, torch.tensor(ids, dtype=torch.long))
    lens = (ln(residual, 'ln_f') @ w['wte.weight'].T).argmax(dim=-1)
    json.dump(
        {'attention': attention.tolist(), 'residual': residual.tolist(), 'lens': lens.tolist()},
        sys.stdout,
    )


if __name__ == '__main__':
    main()
