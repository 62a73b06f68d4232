/**
 * Export of a model folder: the Hugging Face folder (files, config, model card, dtype, a
 * fine-tuned head), GGUF (read back with our own parser: metadata, tensor names, ggml dims,
 * values), the cluster folder, and the all-or-nothing destination.
 */
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLUSTER_FILES } from '../../../src/engine/checkpoint/cluster';
import { exportModel } from '../../../src/engine/checkpoint/export';
import { GGML_F16, GGML_F32, readGguf } from '../../../src/engine/checkpoint/gguf';
import { loadGpt2Weights, readHfConfig } from '../../../src/engine/checkpoint/gpt2';
import { readSafetensors } from '../../../src/engine/checkpoint/safetensors';
import { loadTokenizer } from '../../../src/engine/tokenizer';
import { bpeTok, charTok, CORPUS_TEXT, exists, makeRun, type RunFixture } from './fixtures';
import { expectSameFloats, pythonHas, tempDir } from '../helpers';

const PYTHON = '/usr/bin/python3';
const hasPython = spawnSync(PYTHON, ['--version']).status === 0;
const hasTorch = hasPython && pythonHas('torch');

const NOW = new Date('2026-03-04T05:06:07Z');

let root: string;
let charRun: RunFixture;
let bpeRun: RunFixture;
beforeAll(async () => {
  root = await tempDir();
  charRun = await makeRun(path.join(root, 'char-run'), charTok());
  bpeRun = await makeRun(path.join(root, 'bpe-run'), await bpeTok());
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe('export --format hf', () => {
  it('writes a transformers folder with a model card from the run', async () => {
    const out = path.join(root, 'hf-bpe');
    const phases: string[] = [];
    const r = await exportModel({
      model: bpeRun.dir,
      out,
      now: NOW,
      onProgress: (p) => phases.push(p.phase),
    });
    expect(r.files).toEqual([
      'README.md',
      'config.json',
      'generation_config.json',
      'merges.txt',
      'model.safetensors',
      'tokenizer.json',
      'tokenizer_config.json',
      'vocab.json',
    ]);
    expect(phases[0]).toBe('read');
    expect(phases.at(-1)).toBe('done');
    const config = JSON.parse(await fs.readFile(path.join(out, 'config.json'), 'utf8'));
    expect(config).toMatchObject({
      architectures: ['GPT2LMHeadModel'],
      model_type: 'gpt2',
      vocab_size: 300,
      n_positions: 16,
      n_embd: 8,
      n_layer: 2,
      n_head: 2,
      torch_dtype: 'float32',
      bos_token_id: 299,
      eos_token_id: 299,
    });
    const gen = JSON.parse(await fs.readFile(path.join(out, 'generation_config.json'), 'utf8'));
    expect(gen).toMatchObject({ bos_token_id: 299, eos_token_id: 299 });
    const { tensors } = await readSafetensors(path.join(out, 'model.safetensors'));
    expect([...tensors.keys()].every((n) => n.startsWith('transformer.'))).toBe(true);
    expect(tensors.has('lm_head.weight')).toBe(false);
    const back = await loadGpt2Weights(path.join(out, 'model.safetensors'), bpeRun.cfg);
    for (const [name, data] of bpeRun.params) expectSameFloats(back.params.get(name), data, name);
    const tokConfig = JSON.parse(
      await fs.readFile(path.join(out, 'tokenizer_config.json'), 'utf8'),
    );
    expect(tokConfig).toMatchObject({ model_max_length: 16, tokenizer_class: 'GPT2Tokenizer' });
    const tok = await loadTokenizer(out);
    expect(tok.encode(CORPUS_TEXT)).toEqual((await loadTokenizer(bpeRun.dir)).encode(CORPUS_TEXT));

    const card = await fs.readFile(path.join(out, 'README.md'), 'utf8');
    expect(card).toMatch(/^---\nlibrary_name: transformers/);
    expect(card).toContain('# bpe-run');
    expect(card).toContain('2026-03-04');
    expect(card).toContain('`bpe-run-corpus.txt`');
    expect(card).toContain('**Steps**: 120 of 200 planned');
    expect(card).toContain('**Validation loss**: 2.5678 (best 2.5000)');
    expect(card).toContain('**Train loss**: 2.3456');
    expect(card).toContain('| lr | 0.003 |');
    expect(card).toContain('| gradAccum | 2 |');
    expect(card).toContain('GPT2LMHeadModel.from_pretrained');
    expect(card).toContain('2 × 2 × 8');
  });

  it('writes float16 weights and says so in config.json', async () => {
    const out = path.join(root, 'hf-half');
    await exportModel({ model: charRun.dir, out, dtype: 'float16', now: NOW });
    const { tensors } = await readSafetensors(path.join(out, 'model.safetensors'));
    expect(new Set([...tensors.values()].map((t) => t.dtype))).toEqual(new Set(['F16']));
    expect((await readHfConfig(path.join(out, 'config.json'))).vocabSize).toBe(
      charRun.cfg.vocabSize,
    );
    expect(JSON.parse(await fs.readFile(path.join(out, 'config.json'), 'utf8')).torch_dtype).toBe(
      'float16',
    );
    // a char tokenizer has no merges: tokenizer.json only
    expect(await exists(path.join(out, 'merges.txt'))).toBe(false);
    expect(await exists(path.join(out, 'tokenizer.json'))).toBe(true);
  });

  it("exports a fine-tuned model's head and labels, and the card says transformers drops the head", async () => {
    const tok = charTok();
    const cls = new Float32Array(8 * 3).map((_, i) => i / 10);
    const ft = await makeRun(path.join(root, 'finetuned'), tok, {
      state: false,
      extra: new Map([
        ['classifier.weight', { shape: [8, 3], data: cls }],
        ['classifier.bias', { shape: [3], data: new Float32Array([1, 2, 3]) }],
      ]),
      configExtra: {
        id2label: { 0: 'negative', 1: 'neutral', 2: 'positive' },
        label2id: { negative: 0, neutral: 1, positive: 2 },
        gpt_studio: { task: 'classification' },
      },
    });
    const out = path.join(root, 'hf-finetuned');
    await exportModel({ model: ft.dir, out, now: NOW });
    const config = JSON.parse(await fs.readFile(path.join(out, 'config.json'), 'utf8'));
    expect(config.id2label).toEqual({ 0: 'negative', 1: 'neutral', 2: 'positive' });
    expect(config.label2id).toEqual({ negative: 0, neutral: 1, positive: 2 });
    expect(config.gpt_studio).toEqual({ task: 'classification' });
    const { tensors } = await readSafetensors(path.join(out, 'model.safetensors'));
    expect(tensors.get('classifier.weight')!.data).toEqual(cls);
    expect(tensors.get('classifier.bias')!.shape).toEqual([3]);
    const card = await fs.readFile(path.join(out, 'README.md'), 'utf8');
    expect(card).toContain('## Fine-tuned head');
    expect(card).toContain('`negative`, `neutral`, `positive`');
    expect(card).toMatch(
      /\*\*Not loaded\*\*: `classifier\.(weight|bias)`, `classifier\.(weight|bias)`/,
    );
    expect(card).toContain('No training record came with this model');
  });

  it('refuses a destination that holds files, and leaves nothing behind on failure or cancel', async () => {
    const busy = path.join(root, 'busy');
    await fs.mkdir(busy);
    await fs.writeFile(path.join(busy, 'keep.txt'), 'mine');
    await expect(exportModel({ model: charRun.dir, out: busy })).rejects.toThrow(
      /already exists and is not empty/,
    );
    expect(await fs.readdir(busy)).toEqual(['keep.txt']);

    const controller = new AbortController();
    const out = path.join(root, 'cancelled');
    await expect(
      exportModel({
        model: charRun.dir,
        out,
        signal: controller.signal,
        onProgress: (p) => p.phase === 'write' && controller.abort(),
      }),
    ).rejects.toThrow(/abort/i);
    expect(await exists(out)).toBe(false);
    expect((await fs.readdir(root)).filter((f) => f.includes('partial'))).toEqual([]);
  });
});

describe('export --format gguf', () => {
  it("writes llama.cpp's gpt2 layout, read back by our own parser", async () => {
    const out = path.join(root, 'gguf');
    const r = await exportModel({ model: bpeRun.dir, out, format: 'gguf', name: 'Austen tiny' });
    expect(r.files).toEqual(['Austen-tiny.f32.gguf']);
    const g = await readGguf(path.join(out, r.files[0]!));
    expect(g.version).toBe(3);
    expect(g.dataStart % 32).toBe(0);
    const m = g.metadata;
    expect(m.get('general.architecture')).toBe('gpt2');
    expect(m.get('general.name')).toBe('Austen tiny');
    expect(m.get('gpt2.context_length')).toBe(16);
    expect(m.get('gpt2.embedding_length')).toBe(8);
    expect(m.get('gpt2.feed_forward_length')).toBe(32);
    expect(m.get('gpt2.block_count')).toBe(2);
    expect(m.get('gpt2.attention.head_count')).toBe(2);
    expect(m.get('gpt2.attention.layer_norm_epsilon')).toBeCloseTo(1e-5, 10);
    expect(m.get('tokenizer.ggml.model')).toBe('gpt2');
    const tok = await loadTokenizer(bpeRun.dir);
    const tokens = m.get('tokenizer.ggml.tokens') as string[];
    expect(tokens).toHaveLength(300);
    expect(tokens.slice(0, 300)).toEqual(Array.from({ length: 300 }, (_, i) => tok.idToToken(i)));
    const types = m.get('tokenizer.ggml.token_type') as number[];
    expect(types[299]).toBe(3); // <|endoftext|> is a control token
    expect(types.slice(0, 299).every((t) => t === 1)).toBe(true);
    const merges = m.get('tokenizer.ggml.merges') as string[];
    const mergesTxt = (await fs.readFile(path.join(bpeRun.dir, 'merges.txt'), 'utf8'))
      .trim()
      .split('\n')
      .slice(1);
    expect(merges).toEqual(mergesTxt);
    expect(m.get('tokenizer.ggml.eos_token_id')).toBe(299);

    const names = [...g.tensors.keys()];
    expect(names.slice(0, 2)).toEqual(['token_embd.weight', 'position_embd.weight']);
    expect(names).toContain('blk.1.ffn_down.bias');
    expect(names.slice(-3)).toEqual(['output_norm.weight', 'output_norm.bias', 'output.weight']);
    expect(names).toHaveLength(2 + 2 * 12 + 3);
    // ggml dims are fastest-first: [n_embd, n_vocab] for a [V, C] embedding
    expect(g.tensors.get('token_embd.weight')!.dims).toEqual([8, 300]);
    expect(g.tensors.get('position_embd.weight')!.dims).toEqual([8, 16]);
    expect(g.tensors.get('blk.0.attn_qkv.weight')!.dims).toEqual([8, 24]);
    expect(g.tensors.get('blk.0.ffn_up.weight')!.dims).toEqual([8, 32]);
    expect(g.tensors.get('blk.0.ffn_down.weight')!.dims).toEqual([32, 8]);
    expect(g.tensors.get('blk.0.attn_qkv.bias')!.dims).toEqual([24]);
    for (const [, t] of g.tensors) expect(t.offset % 32).toBe(0);

    // values: embeddings as they are, Conv1D weights [in, out] transposed to [out, in]
    const P = bpeRun.params;
    expect(g.tensors.get('token_embd.weight')!.data).toEqual(P.get('wte.weight'));
    expect(g.tensors.get('output.weight')!.data).toEqual(P.get('wte.weight'));
    expect(g.tensors.get('blk.1.attn_norm.bias')!.data).toEqual(P.get('h.1.ln_1.bias'));
    const qkv = g.tensors.get('blk.1.attn_qkv.weight')!.data;
    const cAttn = P.get('h.1.attn.c_attn.weight')!; // [8, 24]
    for (let o = 0; o < 24; o++) {
      for (let i = 0; i < 8; i++) expect(qkv[o * 8 + i]).toBe(cAttn[i * 24 + o]);
    }
    const down = g.tensors.get('blk.0.ffn_down.weight')!.data;
    const cProj = P.get('h.0.mlp.c_proj.weight')!; // [32, 8]
    expect(down[3 * 32 + 17]).toBe(cProj[17 * 8 + 3]);
  });

  it('float16 keeps norms, biases and position embeddings in F32', async () => {
    const out = path.join(root, 'gguf-half');
    const r = await exportModel({ model: bpeRun.dir, out, format: 'gguf', dtype: 'float16' });
    const g = await readGguf(path.join(out, r.files[0]!));
    expect(g.metadata.get('general.file_type')).toBe(1);
    expect(g.tensors.get('token_embd.weight')!.type).toBe(GGML_F16);
    expect(g.tensors.get('blk.0.attn_qkv.weight')!.type).toBe(GGML_F16);
    expect(g.tensors.get('blk.0.attn_qkv.bias')!.type).toBe(GGML_F32);
    expect(g.tensors.get('position_embd.weight')!.type).toBe(GGML_F32);
    const wte = bpeRun.params.get('wte.weight')!;
    const half = g.tensors.get('token_embd.weight')!.data;
    for (let i = 0; i < wte.length; i += 37) expect(half[i]).toBeCloseTo(wte[i]!, 3);
  });

  it('refuses a character-level tokenizer, says why, and writes nothing', async () => {
    const out = path.join(root, 'gguf-char');
    await expect(exportModel({ model: charRun.dir, out, format: 'gguf' })).rejects.toThrow(
      /character-level.*byte-level BPE/,
    );
    expect(await exists(out)).toBe(false);
  });
});

describe('export --format cluster', () => {
  it('writes the model, the corpus as token ids, the run state, a DDP script and a README', async () => {
    const out = path.join(root, 'cluster');
    const r = await exportModel({ model: bpeRun.dir, out, format: 'cluster', now: NOW });
    expect(r.files).toEqual(
      [
        'README.md',
        'data/meta.json',
        'data/train.bin',
        'data/val.bin',
        'hyperparameters.json',
        'model/README.md',
        'model/config.json',
        'model/generation_config.json',
        'model/merges.txt',
        'model/model.safetensors',
        'model/tokenizer.json',
        'model/tokenizer_config.json',
        'model/vocab.json',
        'requirements.txt',
        'train.py',
        'training_state.json',
      ].sort(),
    );
    // the fixture has no train.bin: the corpus is tokenized as pretraining does, then split
    const ids = (await loadTokenizer(bpeRun.dir)).encode(
      await fs.readFile(bpeRun.corpusFile, 'utf8'),
    );
    const n = Math.floor(ids.length * 0.9);
    const read = async (f: string) =>
      Array.from(new Uint16Array(new Uint8Array(await fs.readFile(path.join(out, f))).buffer));
    expect(await read(CLUSTER_FILES.trainTokens)).toEqual(ids.slice(0, n));
    expect(await read(CLUSTER_FILES.valTokens)).toEqual(ids.slice(n));
    const meta = JSON.parse(await fs.readFile(path.join(out, CLUSTER_FILES.dataMeta), 'utf8'));
    expect(meta).toMatchObject({ dtype: 'uint16', train_tokens: n, val_tokens: ids.length - n });

    const hp = JSON.parse(await fs.readFile(path.join(out, CLUSTER_FILES.hyperparameters), 'utf8'));
    expect(hp.train).toEqual({
      batch_size: 4,
      grad_accum: 2,
      steps: 200,
      lr: 0.003,
      min_lr: 0.0003,
      warmup: 10,
      weight_decay: 0.1,
      beta1: 0.9,
      beta2: 0.99,
      eps: 1e-8,
      grad_clip: 1,
      seed: 7,
      val_fraction: 0.1,
      eval_every: 50,
      eval_iters: 5,
      save_every: 100,
    });
    // no checkpoint-120/optimizer.safetensors beside the fixture: AdamW starts afresh
    const state = JSON.parse(await fs.readFile(path.join(out, CLUSTER_FILES.state), 'utf8'));
    expect(state).toMatchObject({ step: 120, rng: [1, 2, 3, 4], adam_t: 0 });

    // the script names the files that are there, and every hyperparameter
    const script = await fs.readFile(path.join(out, 'train.py'), 'utf8');
    const named = [...script.matchAll(/^[A-Z_]+ = os\.path\.join\(HERE, "([^"]+)"\)$/gm)].map(
      (x) => x[1]!,
    );
    expect(named.sort()).toEqual(
      [
        'model',
        'data',
        CLUSTER_FILES.hyperparameters,
        CLUSTER_FILES.state,
        CLUSTER_FILES.optimizer,
      ].sort(),
    );
    for (const f of named.filter((x) => x !== CLUSTER_FILES.optimizer)) {
      expect(await exists(path.join(out, f)), f).toBe(true);
    }
    for (const key of Object.keys(hp.train as object).filter((k) => k !== 'val_fraction')) {
      expect(script, key).toMatch(new RegExp(`t\\["${key}"\\]`));
    }
    // plain PyTorch: transformers is imported only inside the optional check, and only if there
    expect(script).not.toMatch(/^(from|import) (transformers|accelerate|numpy|safetensors)/m);

    const readme = await fs.readFile(path.join(out, 'README.md'), 'utf8');
    expect(readme).toContain('torchrun --standalone --nproc_per_node N train.py');
    expect(readme).toContain('--rdzv_backend c10d --rdzv_endpoint HOST:29500 train.py');
    expect(readme).toContain('gpt-studio import --from output/checkpoint-STEP');
    expect(readme).toContain('gpt-studio pretrain --from models/NAME');
    expect(readme).toContain('| lr | 0.003 |');
    expect(readme).toContain('the moments start at zero');
  });

  it.skipIf(!hasPython)('train.py compiles (python3 -m py_compile)', async () => {
    const out = path.join(root, 'cluster');
    const py = spawnSync(PYTHON, ['-m', 'py_compile', path.join(out, 'train.py')]);
    expect(py.status, py.stderr.toString()).toBe(0);
  });

  it.skipIf(!hasTorch)(
    'train.py trains, writes checkpoints, and --resume repeats a step',
    async () => {
      const out = path.join(root, 'cluster');
      const train = (o: string, ...args: string[]) => {
        const py = spawnSync(
          PYTHON,
          [path.join(out, 'train.py'), '--output-dir', path.join(root, o), ...args],
          { env: { ...process.env, OMP_NUM_THREADS: '1' } },
        );
        expect(py.status, py.stderr.toString()).toBe(0);
        const lines = py.stdout
          .toString()
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as { type: string; step: number; loss?: number; lr?: number });
        return { steps: lines.filter((l) => l.type === 'step'), stderr: py.stderr.toString() };
      };
      const first = train('o1', '--stop-after', '2', '--save-every', '1');
      expect(first.stderr).toContain('AdamW starts with zero moments');
      expect(first.steps.map((s) => s.step)).toEqual([121, 122]);
      expect(first.steps.every((s) => Number.isFinite(s.loss))).toBe(true);
      // the run's cosine at step 120 of 200 (warmup 10), from 3e-3 to 3e-4
      const lr = 3e-4 + 0.5 * (1 + Math.cos((Math.PI * 110) / 190)) * (3e-3 - 3e-4);
      expect(first.steps[0]!.lr).toBeCloseTo(lr, 12);
      const ckpt = path.join(root, 'o1', 'checkpoint-121');
      for (const f of [
        'config.json',
        'model.safetensors',
        'tokenizer.json',
        'optimizer.safetensors',
      ]) {
        expect(await exists(path.join(ckpt, f)), f).toBe(true);
      }
      const back = await loadGpt2Weights(path.join(ckpt, 'model.safetensors'), bpeRun.cfg);
      expect(back.params.size).toBe(bpeRun.params.size);
      // from the step-121 checkpoint, step 122 again: the same loss
      const again = train('o2', '--resume', ckpt, '--stop-after', '1');
      expect(again.steps.map((s) => s.step)).toEqual([122]);
      expect(again.steps[0]!.loss).toBe(first.steps[1]!.loss);
    },
  );

  it('refuses a model without a training record', async () => {
    const bare = await makeRun(path.join(root, 'bare'), charTok(), { state: false });
    const out = path.join(root, 'cluster-bare');
    await expect(exportModel({ model: bare.dir, out, format: 'cluster' })).rejects.toThrow(
      /no training record/,
    );
    expect(await exists(out)).toBe(false);
  });
});
