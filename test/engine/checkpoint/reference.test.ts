// Sanity checks of scripts/gpt2_reference.py, the independent PyTorch GPT-2 the engine is
// compared against. Skipped where PyTorch is not installed.
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GPTConfig } from '../../../src/engine/model/config';
import { saveGpt2Weights, writeHfConfig } from '../../../src/engine/checkpoint/gpt2';
import { f16ToF32, f32ToF16 } from '../../../src/engine/checkpoint/safetensors';
import { pythonHas, randomParams, tempDir, tinyCheckpointConfig } from '../helpers';

const PYTHON = '/usr/bin/python3';
const SCRIPT = path.resolve('scripts/gpt2_reference.py');
const hasTorch = pythonHas('torch', 'numpy');

// GPT-2 blocks are pre-LN transformer layers; map the HF weights onto torch.nn's version.
const CROSS_CHECK = `
import json, os, sys, torch
sys.path.insert(0, sys.argv[1])
import gpt2_reference as R
cfg = json.load(open(os.path.join(sys.argv[2], 'config.json')))
w = R.load_safetensors(os.path.join(sys.argv[2], 'model.safetensors'))
C, eps = cfg['n_embd'], cfg['layer_norm_epsilon']
torch.manual_seed(0)
ids = torch.randint(0, cfg['vocab_size'], (3, cfg['n_positions']))
torch.set_grad_enabled(False)
x = w['wte.weight'][ids] + w['wpe.weight'][: ids.shape[1]]
mask = torch.triu(torch.full((ids.shape[1],) * 2, float('-inf')), 1)
for i in range(cfg['n_layer']):
    l = torch.nn.TransformerEncoderLayer(C, cfg['n_head'], 4 * C, dropout=0.0,
        activation=R.gelu_new, layer_norm_eps=eps, batch_first=True, norm_first=True).eval()
    g = lambda n: w[f'h.{i}.{n}']
    for dst, src in [(l.self_attn.in_proj_weight, 'attn.c_attn.weight'),
                     (l.self_attn.out_proj.weight, 'attn.c_proj.weight'),
                     (l.linear1.weight, 'mlp.c_fc.weight'), (l.linear2.weight, 'mlp.c_proj.weight')]:
        dst.copy_(g(src).T)
    l.self_attn.in_proj_bias.copy_(g('attn.c_attn.bias'))
    l.self_attn.out_proj.bias.copy_(g('attn.c_proj.bias'))
    l.linear1.bias.copy_(g('mlp.c_fc.bias'))
    l.linear2.bias.copy_(g('mlp.c_proj.bias'))
    for norm, name in [(l.norm1, 'ln_1'), (l.norm2, 'ln_2')]:
        norm.weight.copy_(g(name + '.weight'))
        norm.bias.copy_(g(name + '.bias'))
    x = l(x, src_mask=mask)
x = torch.nn.functional.layer_norm(x, (C,), w['ln_f.weight'], w['ln_f.bias'], eps)
theirs = x @ w['wte.weight'].T
ours = R.forward(w, cfg, ids)
print(json.dumps({'diff': (ours - theirs).abs().max().item(), 'scale': theirs.abs().max().item()}))
`;

interface Output {
  logits: number[][][];
  logprobs: number[][];
}

let dir: string;
beforeAll(async () => {
  dir = await tempDir();
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function modelDir(
  name: string,
  cfg: GPTConfig,
  params: Map<string, Float32Array>,
  dtype: 'F32' | 'F16' = 'F32',
): Promise<string> {
  const model = path.join(dir, name);
  await writeHfConfig(path.join(model, 'config.json'), cfg);
  await saveGpt2Weights(path.join(model, 'model.safetensors'), cfg, params, { dtype });
  return model;
}

function reference(model: string, ids: number[][], logits = true): Output {
  const py = spawnSync(PYTHON, [SCRIPT, model], {
    input: JSON.stringify(logits ? { ids } : { ids, logits: false }),
    maxBuffer: 1 << 28,
  });
  expect(py.status, py.stderr?.toString()).toBe(0);
  return JSON.parse(py.stdout.toString()) as Output;
}

function logSoftmax(row: number[]): number[] {
  const max = Math.max(...row);
  const lse = max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
  return row.map((x) => x - lse);
}

describe.skipIf(!hasTorch)('scripts/gpt2_reference.py', () => {
  const cfg = tinyCheckpointConfig(); // V=50 T=16 L=2 H=2 C=8
  const params = randomParams(cfg, 5);
  const ids = [
    [1, 7, 49, 0, 3, 3, 12, 40, 8, 9, 10, 11, 2, 30, 31, 5],
    [4, 2],
  ];
  let tiny: string;
  beforeAll(async () => {
    tiny = await modelDir('tiny', cfg, params);
  });

  it('outputs logits [B][T][V] and log-probabilities of the next tokens', async () => {
    const out = reference(tiny, ids);
    expect(out.logits.map((seq) => seq.length)).toEqual([16, 2]);
    expect(out.logprobs.map((seq) => seq.length)).toEqual([15, 1]);
    ids.forEach((seq, b) => {
      for (let t = 0; t < seq.length; t++) {
        const row = out.logits[b]![t]!;
        expect(row).toHaveLength(cfg.vocabSize);
        expect(row.every(Number.isFinite)).toBe(true);
        if (t === seq.length - 1) continue;
        const lp = out.logprobs[b]![t]!;
        expect(lp).toBeLessThanOrEqual(0);
        expect(lp).toBeCloseTo(logSoftmax(row)[seq[t + 1]!]!, 4);
      }
    });
    expect(reference(tiny, ids, false)).toEqual({ logprobs: out.logprobs });
    // Rows are independent and attention is causal: a prefix gives the same logits.
    const prefix = reference(tiny, [ids[0]!.slice(0, 5)]);
    prefix.logits[0]!.forEach((row, t) => {
      row.forEach((x, v) => expect(x).toBeCloseTo(out.logits[0]![t]![v]!, 5));
    });
  });

  it('reads F16 weights as the same float32 values', async () => {
    const rounded = new Map([...params].map(([k, v]) => [k, f16ToF32(f32ToF16(v))]));
    const f32 = reference(await modelDir('rounded', cfg, rounded), ids);
    const f16 = reference(await modelDir('half', cfg, params, 'F16'), ids);
    expect(f16).toEqual(f32);
  });

  it('with no layers, computes ln_f(wte + wpe) @ wteᵀ', async () => {
    const flat = tinyCheckpointConfig({ nLayer: 0, activation: 'gelu', layerNormEpsilon: 1e-3 });
    const p = randomParams(flat, 9);
    const out = reference(await modelDir('flat', flat, p), [ids[1]!]);
    const C = flat.nEmbd;
    const wte = p.get('wte.weight')!;
    const wpe = p.get('wpe.weight')!;
    const g = p.get('ln_f.weight')!;
    const bias = p.get('ln_f.bias')!;
    ids[1]!.forEach((id, t) => {
      const x = Array.from({ length: C }, (_, c) => wte[id * C + c]! + wpe[t * C + c]!);
      const mean = x.reduce((s, v) => s + v, 0) / C;
      const variance = x.reduce((s, v) => s + (v - mean) ** 2, 0) / C;
      const y = x.map((v, c) => ((v - mean) / Math.sqrt(variance + 1e-3)) * g[c]! + bias[c]!);
      for (let v = 0; v < flat.vocabSize; v++) {
        const logit = y.reduce((s, yc, c) => s + yc * wte[v * C + c]!, 0);
        expect(out.logits[0]![t]![v]).toBeCloseTo(logit, 4);
      }
    });
  });

  it("agrees with PyTorch's own pre-LN TransformerEncoderLayer", async () => {
    const wide = tinyCheckpointConfig({ nLayer: 3, nHead: 4, nEmbd: 16, layerNormEpsilon: 1e-4 });
    const model = await modelDir('wide', wide, randomParams(wide, 42));
    const py = spawnSync(PYTHON, ['-c', CROSS_CHECK, path.dirname(SCRIPT), model]);
    expect(py.status, py.stderr.toString()).toBe(0);
    const { diff, scale } = JSON.parse(py.stdout.toString()) as { diff: number; scale: number };
    expect(scale).toBeGreaterThan(0.1);
    expect(diff).toBeLessThan(1e-5);
  });

  it('fails clearly on out-of-range input', () => {
    const py = spawnSync(PYTHON, [SCRIPT, tiny], {
      input: JSON.stringify({ ids: [[cfg.vocabSize]] }),
    });
    expect(py.status).not.toBe(0);
    expect(py.stderr.toString()).toMatch(/token id out of range/);
  });
});
