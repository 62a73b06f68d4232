#!/usr/bin/env python3
"""Independent reader and forward pass for a GGUF file of llama.cpp's gpt2 architecture.

Parses the GGUF container with struct alone (no gguf-py, no llama.cpp) and runs GPT-2 the way
llama.cpp's gpt2 graph does, in numpy: ggml lists dimensions fastest-first, so a tensor with dims
[ne0, ne1] is the row-major numpy array of shape (ne1, ne0), and ggml_mul_mat(W, x) is x @ W.T.
Usage: python3 scripts/gguf_reference.py FILE.gguf < input.json
input: {"ids": [[...], ...]}; output: {"logits": [B][T][V], "metadata": {...scalars...},
"tensors": {name: dims}, "n_tokens": len(tokenizer.ggml.tokens)}
"""
import json
import math
import struct
import sys

import numpy as np

SCALARS = {0: '<B', 1: '<b', 2: '<H', 3: '<h', 4: '<I', 5: '<i', 6: '<f', 7: '<?', 10: '<Q', 11: '<q', 12: '<d'}


class Reader:
    def __init__(self, raw):
        self.raw, self.pos = raw, 0

    def take(self, fmt):
        (v,) = struct.unpack_from(fmt, self.raw, self.pos)
        self.pos += struct.calcsize(fmt)
        return v

    def string(self):
        n = self.take('<Q')
        s = self.raw[self.pos : self.pos + n].decode('utf-8')
        self.pos += n
        return s

    def value(self, t):
        if t in SCALARS:
            return self.take(SCALARS[t])
        if t == 8:
            return self.string()
        if t == 9:
            item, n = self.take('<I'), self.take('<Q')
            return [self.value(item) for _ in range(n)]
        raise ValueError(f'unknown GGUF value type {t}')


def load(path):
    with open(path, 'rb') as f:
        raw = f.read()
    r = Reader(raw)
    if raw[:4] != b'GGUF':
        sys.exit('not a GGUF file')
    r.pos = 4
    version, n_tensors, n_kv = r.take('<I'), r.take('<Q'), r.take('<Q')
    if version != 3:
        sys.exit(f'GGUF version {version}')
    meta = {}
    for _ in range(n_kv):
        key = r.string()
        meta[key] = r.value(r.take('<I'))
    infos = []
    for _ in range(n_tensors):
        name = r.string()
        dims = [r.take('<Q') for _ in range(r.take('<I'))]
        infos.append((name, dims, r.take('<I'), r.take('<Q')))
    align = meta.get('general.alignment', 32)
    start = (r.pos + align - 1) // align * align
    tensors = {}
    for name, dims, ggml_type, offset in infos:
        dtype = {0: '<f4', 1: '<f2'}[ggml_type]
        n = int(np.prod(dims))
        a = np.frombuffer(raw, dtype, n, start + offset).astype(np.float32)
        tensors[name] = a.reshape(list(reversed(dims)))
    return meta, tensors, {name: dims for name, dims, _, _ in infos}


def gelu(x):  # ggml_gelu: the tanh approximation
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def forward(meta, w, ids):
    C = meta['gpt2.embedding_length']
    nh = meta['gpt2.attention.head_count']
    eps = meta['gpt2.attention.layer_norm_epsilon']
    T = len(ids)

    def norm(x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * w[p + '.weight'] + w[p + '.bias']

    def mul_mat(x, p):
        return x @ w[p + '.weight'].T + w[p + '.bias']

    x = w['token_embd.weight'][ids] + w['position_embd.weight'][:T]
    hs = C // nh
    for i in range(meta['gpt2.block_count']):
        b = f'blk.{i}.'
        qkv = mul_mat(norm(x, b + 'attn_norm'), b + 'attn_qkv')
        q, k, v = (qkv[:, j * C : (j + 1) * C].reshape(T, nh, hs).transpose(1, 0, 2) for j in range(3))
        att = q @ k.transpose(0, 2, 1) / math.sqrt(hs)
        att = np.where(np.tril(np.ones((T, T), bool)), att, -np.inf)
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        x = x + mul_mat((att @ v).transpose(1, 0, 2).reshape(T, C), b + 'attn_output')
        x = x + mul_mat(gelu(mul_mat(norm(x, b + 'ffn_norm'), b + 'ffn_up')), b + 'ffn_down')
    return norm(x, 'output_norm') @ w['output.weight'].T


def main():
    meta, w, dims = load(sys.argv[1])
    if meta.get('general.architecture') != 'gpt2':
        sys.exit('not a gpt2 GGUF')
    request = json.load(sys.stdin)
    out = {
        'logits': [forward(meta, w, np.array(row)).astype(np.float64).tolist() for row in request['ids']],
        'metadata': {k: v for k, v in meta.items() if not isinstance(v, list)},
        'tensors': dims,
        'n_tokens': len(meta['tokenizer.ggml.tokens']),
    }
    json.dump(out, sys.stdout)


if __name__ == '__main__':
    main()
