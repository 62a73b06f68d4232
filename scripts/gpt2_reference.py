#!/usr/bin/env python3
"""Independent GPT-2 (and GPT-1) forward pass in PyTorch, for checking the engine against.

Reads a Hugging Face GPT-2 directory (config.json + model.safetensors) without transformers or
safetensors. Its layout is GPT-2's pre-LayerNorm with a final ln_f, or with config.json's
"layout": "gpt1" (or an openai-gpt folder) GPT-1's post-LayerNorm, x = LN(x + attn(x)),
x = LN(x + mlp(x)), with no final LayerNorm.
Usage: python3 scripts/gpt2_reference.py MODEL_DIR < input.json
input: {"ids": [[...], ...]} (rows may differ in length; add "logits": false to omit logits)
output: {"logits": [B][T][V], "logprobs": [B][T-1]}, logprobs[b][t] = log p(ids[b][t+1] | ids[b][:t+1])
With "targets": [[...], ...] (same shape as ids, rows of equal length, -1 = no target), also
"loss" (mean cross-entropy over the targets) and "grads" ({GPT-2 parameter name: flat values}).
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

NP_DTYPES = {'F32': '<f4', 'F16': '<f2', 'F64': '<f8'}


def load_safetensors(path):
    with open(path, 'rb') as f:
        raw = f.read()
    (n,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8 : 8 + n])
    header.pop('__metadata__', None)
    weights = {}
    for name, info in header.items():
        begin, end = info['data_offsets']
        buf = raw[8 + n + begin : 8 + n + end]
        if info['dtype'] == 'BF16':
            a = (np.frombuffer(buf, '<u2').astype(np.uint32) << 16).view(np.float32)
        elif info['dtype'] in NP_DTYPES:
            a = np.frombuffer(buf, NP_DTYPES[info['dtype']])
        else:
            continue  # e.g. the attn.bias causal-mask buffers of old checkpoints
        name = name.removeprefix('transformer.')
        name = OPENAI_GPT_NAMES.get(name, name)
        weights[name] = torch.from_numpy(a.astype(np.float32).reshape(info['shape']))
    return weights


# openai-gpt's embedding names; its blocks use GPT-2's
OPENAI_GPT_NAMES = {'tokens_embed.weight': 'wte.weight', 'positions_embed.weight': 'wpe.weight'}


def is_post_ln(cfg):
    return cfg.get('layout') == 'gpt1' or cfg.get('model_type') == 'openai-gpt'


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def forward(w, cfg, ids):
    """ids: LongTensor [B, T] -> logits [B, T, V]."""
    B, T = ids.shape
    C, nh = cfg['n_embd'], cfg['n_head']
    eps = cfg.get('layer_norm_epsilon', 1e-5)
    act_name = cfg.get('activation_function', cfg.get('afn', 'gelu_new'))
    act = {'gelu_new': gelu_new, 'gelu_pytorch_tanh': gelu_new, 'gelu': F.gelu}[act_name]

    def ln(x, prefix):
        return F.layer_norm(x, (C,), w[prefix + '.weight'], w[prefix + '.bias'], eps)

    def conv1d(x, prefix):  # HF Conv1D: weight is [in, out]
        return x @ w[prefix + '.weight'] + w[prefix + '.bias']

    post = is_post_ln(cfg)
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    x = w['wte.weight'][ids] + w['wpe.weight'][:T]
    for i in range(cfg['n_layer']):
        p = f'h.{i}.'
        q, k, v = conv1d(x if post else ln(x, p + 'ln_1'), p + 'attn.c_attn').split(C, dim=2)
        q, k, v = (t.view(B, T, nh, C // nh).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // nh)
        att = att.masked_fill(~causal, float('-inf')).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        if post:
            x = ln(x + conv1d(y, p + 'attn.c_proj'), p + 'ln_1')
            x = ln(x + conv1d(act(conv1d(x, p + 'mlp.c_fc')), p + 'mlp.c_proj'), p + 'ln_2')
        else:
            x = x + conv1d(y, p + 'attn.c_proj')
            x = x + conv1d(act(conv1d(ln(x, p + 'ln_2'), p + 'mlp.c_fc')), p + 'mlp.c_proj')
    h = x if post else ln(x, 'ln_f')
    return h @ w['wte.weight'].T  # tied LM head


def loss_and_grads(w, cfg, ids, targets):
    """Mean cross-entropy of the logits against targets (-1: none), and its gradient."""
    params = {name: t.clone().requires_grad_(True) for name, t in w.items()}
    ids = torch.tensor(ids, dtype=torch.long)
    targets = torch.tensor(targets, dtype=torch.long)
    logits = forward(params, cfg, ids)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-1)
    loss.backward()
    grads = {name: p.grad.reshape(-1).tolist() for name, p in params.items() if p.grad is not None}
    return {'loss': loss.item(), 'grads': grads}


def main():
    model_dir = sys.argv[1]
    with open(os.path.join(model_dir, 'config.json')) as f:
        cfg = json.load(f)
    cfg.setdefault('n_positions', cfg.get('n_ctx'))
    w = load_safetensors(os.path.join(model_dir, 'model.safetensors'))
    request = json.load(sys.stdin)
    out = {'logits': [], 'logprobs': []}
    if 'targets' in request:
        out.update(loss_and_grads(w, cfg, request['ids'], request['targets']))
    torch.set_grad_enabled(False)
    for row in request['ids']:
        if not 0 < len(row) <= cfg['n_positions']:
            sys.exit(f'sequence length {len(row)} not in 1..{cfg["n_positions"]}')
        if not all(0 <= t < cfg['vocab_size'] for t in row):
            sys.exit('token id out of range')
        ids = torch.tensor([row], dtype=torch.long)
        logits = forward(w, cfg, ids)[0]
        logprobs = F.log_softmax(logits, dim=-1)[:-1].gather(1, ids[0, 1:, None])[:, 0]
        out['logits'].append(logits.tolist())
        out['logprobs'].append(logprobs.tolist())
    if request.get('logits') is False:
        del out['logits']
    json.dump(out, sys.stdout)


if __name__ == '__main__':
    main()
