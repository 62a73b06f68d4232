/**
 * Import of Hugging Face GPT-2 folders: the Hub's layout (no `transformer.` prefix, mask buffers,
 * vocab.json + merges.txt) and the prefixed one, F16 weights, gelu and layer-norm epsilon from
 * config.json, pytorch_model.bin refused; GPT-2's tokenizer equal to tiktoken after import;
 * export → import giving identical logits; and bad checkpoints refused with errors that name the
 * tensor or field, with nothing written.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { getEncoding } from 'js-tiktoken';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../../src/engine/backend';
import { exportModel } from '../../../src/engine/checkpoint/export';
import { loadGpt2Weights, readHfConfig } from '../../../src/engine/checkpoint/gpt2';
import { importModel } from '../../../src/engine/checkpoint/import';
import { loadModelDir } from '../../../src/engine/checkpoint/modelDir';
import { f16ToF32, f32ToF16, readSafetensors } from '../../../src/engine/checkpoint/safetensors';
import { generateTokens } from '../../../src/engine/generate';
import { VARIED_TEXTS } from '../tokenizer/helpers';
import {
  bpeTok,
  charTok,
  exists,
  gpt2VocabConfig,
  makeHubGpt2,
  makeRun,
  modelLogits,
  randomIdsFor,
} from './fixtures';
import { expectSameFloats, tempDir, tinyCheckpointConfig } from '../helpers';

let root: string;
beforeAll(async () => {
  await initBackend('wasm');
  root = await tempDir();
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe('import', () => {
  it("imports the Hub's gpt2 layout: no prefix, mask buffers, vocab.json + merges.txt", async () => {
    const cfg = gpt2VocabConfig();
    const src = path.join(root, 'hub-gpt2');
    const params = await makeHubGpt2(src, cfg);
    const out = path.join(root, 'models', 'gpt2');
    const phases: string[] = [];
    const r = await importModel({ from: src, out, onProgress: (p) => phases.push(p.phase) });
    expect(r).toMatchObject({ out, vocabSize: 50257, tokenizer: 'bpe', notes: [] });
    expect(r.files).toEqual([
      'config.json',
      'generation_config.json',
      'merges.txt',
      'model.safetensors',
      'tokenizer.json',
      'tokenizer_config.json',
      'vocab.json',
    ]);
    expect(phases).toEqual(['read', 'write', 'done']);
    const config = JSON.parse(await fs.readFile(path.join(out, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ bos_token_id: 50256, eos_token_id: 50256, n_positions: 16 });
    const { tensors, metadata } = await readSafetensors(path.join(out, 'model.safetensors'));
    expect([...tensors.keys()].some((n) => n.includes('attn.bias') && !n.includes('c_attn'))).toBe(
      false,
    );
    expect(metadata.imported_from).toBe(src);
    const back = await loadGpt2Weights(path.join(out, 'model.safetensors'), cfg);
    for (const [name, data] of params) expectSameFloats(back.params.get(name), data, name);

    // GPT-2's own tokenizer, through the import, encodes exactly as tiktoken does
    const loaded = await loadModelDir(out);
    try {
      const tiktoken = getEncoding('gpt2');
      for (const text of VARIED_TEXTS) {
        expect(loaded.tokenizer.encode(text), JSON.stringify(text)).toEqual(
          tiktoken.encode(text, [], []),
        );
      }
      // and the imported model can be prompted
      const ids: number[] = [];
      const it = generateTokens(loaded.model, loaded.tokenizer, loaded.tokenizer.encode('Hello'), {
        maxNewTokens: 3,
        temperature: 0,
      });
      for (;;) {
        const s = await it.next();
        if (s.done) break;
        ids.push(s.value.id);
      }
      expect(ids).toHaveLength(3);
    } finally {
      loaded.model.dispose();
    }
  });

  it('imports the prefixed layout with F16 weights as float32', async () => {
    const cfg = tinyCheckpointConfig({ vocabSize: 50257 });
    const src = path.join(root, 'prefixed-f16');
    const params = await makeHubGpt2(src, cfg, { prefix: true, dtype: 'F16', buffers: false });
    const out = path.join(root, 'models', 'prefixed-f16');
    await importModel({ from: src, out });
    const back = await loadGpt2Weights(path.join(out, 'model.safetensors'), cfg);
    const wte = params.get('wte.weight')!;
    expectSameFloats(back.params.get('wte.weight'), f16ToF32(f32ToF16(wte)), 'wte.weight');
  });

  it('honours gelu and layer_norm_epsilon from config.json', async () => {
    const cfg = gpt2VocabConfig({ activation: 'gelu', layerNormEpsilon: 1e-3, nLayer: 1 });
    const src = path.join(root, 'exact-gelu');
    await makeHubGpt2(src, cfg);
    const out = path.join(root, 'models', 'exact-gelu');
    await importModel({ from: src, out });
    const back = await readHfConfig(path.join(out, 'config.json'));
    expect(back.activation).toBe('gelu');
    expect(back.layerNormEpsilon).toBe(1e-3);
  });

  it('reads the tokenizer from tokenizer.json alone', async () => {
    const run = await makeRun(path.join(root, 'tj-run'), await bpeTok(), { state: false });
    const src = path.join(root, 'tj-src');
    await exportModel({ model: run.dir, out: src });
    await fs.rm(path.join(src, 'vocab.json'));
    await fs.rm(path.join(src, 'merges.txt'));
    const out = path.join(root, 'models', 'tj');
    const r = await importModel({ from: src, out });
    expect(r.tokenizer).toBe('bpe');
    expect(r.files).toContain('merges.txt');
  });

  it('refuses pytorch_model.bin and says why', async () => {
    const src = path.join(root, 'pickle');
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, 'config.json'), '{}');
    await fs.writeFile(path.join(src, 'pytorch_model.bin'), 'PK\u0003\u0004');
    const out = path.join(root, 'models', 'pickle');
    await expect(importModel({ from: src, out })).rejects.toThrow(
      /pytorch_model\.bin.*refused.*unpickling can run arbitrary code/,
    );
    expect(await exists(out)).toBe(false);
  });

  it('export → import gives identical logits (char and BPE models)', async () => {
    for (const [name, tok] of [
      ['char', charTok()],
      ['bpe', await bpeTok()],
    ] as const) {
      const run = await makeRun(path.join(root, `rt-${name}`), tok, { seed: 21 });
      const exported = path.join(root, `rt-${name}-hf`);
      await exportModel({ model: run.dir, out: exported });
      const imported = path.join(root, 'models', `rt-${name}`);
      await importModel({ from: exported, out: imported });
      const a = await loadModelDir(run.dir);
      const b = await loadModelDir(imported);
      try {
        const ids = randomIdsFor(16, tok.vocabSize, 5);
        expect(await modelLogits(b.model, ids)).toEqual(await modelLogits(a.model, ids));
        expect(b.tokenizer.encode('a truth 明月')).toEqual(a.tokenizer.encode('a truth 明月'));
      } finally {
        a.model.dispose();
        b.model.dispose();
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------

interface Entry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}
type Header = Record<string, Entry | undefined>;

/** Rewrites a safetensors file's JSON header (the data bytes stay as they are). */
async function editHeader(file: string, edit: (h: Header) => void): Promise<void> {
  const bytes = await fs.readFile(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Header;
  edit(header);
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  await fs.writeFile(file, Buffer.concat([len, json, bytes.subarray(8 + n)]));
}

describe('bad checkpoints: a clear error naming the tensor or field, nothing written', () => {
  let n = 0;
  async function bad(
    mutate: (dir: string) => Promise<void>,
    cfg = tinyCheckpointConfig({ vocabSize: 50257, nLayer: 1 }),
  ): Promise<string> {
    const src = path.join(root, `bad-${++n}`);
    await makeHubGpt2(src, cfg);
    await mutate(src);
    const out = path.join(root, 'models', `bad-${n}`);
    const err = await importModel({ from: src, out }).then(
      () => {
        throw new Error('import succeeded');
      },
      (e: Error) => e,
    );
    expect(await exists(out)).toBe(false);
    const left = await fs.readdir(path.join(root, 'models')).catch(() => [] as string[]);
    expect(left.some((f) => f.includes('partial'))).toBe(false);
    return err.message;
  }
  const st = (dir: string) => path.join(dir, 'model.safetensors');

  it('a truncated safetensors file', async () => {
    const msg = await bad(async (dir) => {
      const b = await fs.readFile(st(dir));
      await fs.writeFile(st(dir), b.subarray(0, b.length - 100));
    });
    expect(msg).toMatch(/model\.safetensors: tensor '[^']+' needs bytes up to \d+.*truncated/);
  });

  it('a file cut inside its header', async () => {
    const msg = await bad(async (dir) => {
      const b = await fs.readFile(st(dir));
      await fs.writeFile(st(dir), b.subarray(0, 40));
    });
    expect(msg).toMatch(/header length \d+ is larger than the file \(40 bytes\).*truncated/);
  });

  it('a header whose offsets are wrong', async () => {
    const msg = await bad((dir) =>
      editHeader(st(dir), (h) => {
        const [b, e] = h['h.0.ln_1.bias']!.data_offsets;
        h['h.0.ln_1.bias']!.data_offsets = [b + 4, e + 4];
      }),
    );
    expect(msg).toContain('h.0.ln_1.bias');
    expect(msg).toMatch(/overlaps|gap|unexpected bytes|needs bytes/);
  });

  it('a wrong shape', async () => {
    const msg = await bad((dir) =>
      editHeader(st(dir), (h) => {
        h['h.0.mlp.c_fc.weight']!.shape = [32, 8]; // transposed: same bytes, wrong layout
      }),
    );
    expect(msg).toContain("tensor 'h.0.mlp.c_fc.weight' has shape [32, 8], expected [8, 32]");
  });

  it('a missing tensor', async () => {
    const msg = await bad((dir) =>
      editHeader(st(dir), (h) => {
        // drop ln_f.bias and give its bytes to the tensor laid out before it
        const { data_offsets: gone } = h['ln_f.bias']!;
        delete h['ln_f.bias'];
        for (const t of Object.values(h)) {
          if (t?.data_offsets?.[1] === gone[0]) {
            t.data_offsets[1] = gone[1];
            t.shape = [t.shape.reduce((a: number, b: number) => a * b, 1) + 8];
            t.dtype = 'F32';
          }
        }
      }),
    );
    expect(msg).toMatch(/model\.safetensors: missing tensor ln_f\.bias$/);
  });

  it('an unknown dtype', async () => {
    const msg = await bad((dir) =>
      editHeader(st(dir), (h) => {
        h['wpe.weight']!.dtype = 'F8_E4M3';
      }),
    );
    expect(msg).toContain(`tensor 'wpe.weight' has unsupported dtype "F8_E4M3"`);
  });

  it('a config that disagrees with the weights', async () => {
    const msg = await bad(async (dir) => {
      const c = JSON.parse(await fs.readFile(path.join(dir, 'config.json'), 'utf8'));
      c.n_layer = 2;
      await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(c));
    });
    expect(msg).toMatch(/missing tensors? h\.1\./);
    expect(msg).toContain('the config disagrees with the weights: it says n_layer=2');
  });

  it('a config field that is invalid', async () => {
    const msg = await bad(async (dir) => {
      const c = JSON.parse(await fs.readFile(path.join(dir, 'config.json'), 'utf8'));
      c.n_head = 3;
      await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(c));
    });
    expect(msg).toMatch(/config\.json: n_embd \(8\) is not divisible by n_head \(3\)/);
  });

  it('a vocabulary larger than vocab_size', async () => {
    const msg = await bad(
      async (dir) => {
        const c = JSON.parse(await fs.readFile(path.join(dir, 'config.json'), 'utf8'));
        c.vocab_size = 100;
        await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(c));
      },
      tinyCheckpointConfig({ vocabSize: 100, nLayer: 1 }),
    );
    expect(msg).toMatch(
      /config\.json: field 'vocab_size' is 100, smaller than the tokenizer's 50257/,
    );
  });
});
