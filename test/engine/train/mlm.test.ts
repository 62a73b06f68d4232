/**
 * The masked-LM (BERT-style) objective on the GPT engine: BERT's 15% / 80-10-10 masking and its
 * determinism, bidirectional attention (and padding left out) with its backward against autodiff,
 * the loss on masked positions only, a step on two workers equal to one thread's,
 * a masked-LM pretrain that resumes bit for bit, fine-tuning from position 0, the refusals
 * (generate, score, few-shot, GGUF, Hugging Face) and GPT vs BERT producing both rows.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../../src/engine/tf';
import type { TrainEvent } from '../../../src/common/events';
import { initBackend } from '../../../src/engine/backend';
import { exportModel } from '../../../src/engine/checkpoint/export';
import { readHfConfig } from '../../../src/engine/checkpoint/gpt2';
import { loadModelDir } from '../../../src/engine/checkpoint/modelDir';
import { refuseMaskedLmDir } from '../../../src/engine/checkpoint/objective';
import { evaluateIcl } from '../../../src/engine/console/icl';
import { makeBatch, predictionLayout } from '../../../src/engine/finetune/batch';
import { finetune } from '../../../src/engine/finetune/finetune';
import { gptBert } from '../../../src/engine/finetune/gptBert';
import { generateTokens } from '../../../src/engine/generate';
import { GPT } from '../../../src/engine/model/gpt';
import { paramShapes } from '../../../src/engine/model/params';
import { scoreText } from '../../../src/engine/score';
import { MASK_TOKEN } from '../../../src/engine/tokenizer/types';
import {
  MASK_RATE,
  maskSpecOf,
  maskTokens,
  sampleLmBatch,
  type MaskSpec,
} from '../../../src/engine/train/mlm';
import { AdamW } from '../../../src/engine/train/optimizer';
import { openTrainer } from '../../../src/engine/train/parallel/trainer';
import { pretrain, resume } from '../../../src/engine/train/pretrain';
import { Rng } from '../../../src/engine/util/rng';
import { referenceGrads, referenceHidden, referenceLmLoss } from '../model/standardGpt';
import {
  charTokenizer,
  randomIds,
  randomWeights,
  relError,
  removeDir,
  sha256File,
  tempDir,
  TINY_MODEL,
  TINY_TRAIN,
  tinyConfig,
  toyCorpus,
  writeText,
} from '../helpers';

let dir: string;
let corpus: string;
let labeled: string;

/** Two easily told classes of short texts over the toy corpus's letters. */
function sentiment(n: number, seed: number): string {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const pos = rng.next() < 0.5;
    const letters = pos ? 'abcde' : 'mnost';
    const text = Array.from({ length: 3 + rng.int(6) }, () => letters[rng.int(5)]).join('');
    return JSON.stringify({ text, label: pos ? 'good' : 'bad' });
  }).join('\n');
}

beforeAll(async () => {
  await initBackend('wasm');
  dir = await tempDir('gpt-studio-mlm-');
  corpus = await writeText(dir, 'corpus.txt', toyCorpus(6));
  labeled = await writeText(dir, 'labeled.jsonl', sentiment(48, 3) + '\n');
});
afterAll(async () => {
  await removeDir(dir);
});

const SPEC: MaskSpec = { maskId: 999, ordinary: 900 };

describe("BERT's masking rule", () => {
  it('selects ≈15% of the positions; of those ≈80% [MASK], ≈10% random, ≈10% unchanged', () => {
    const n = 200_000;
    const tokens = Int32Array.from({ length: n }, (_, i) => i % 900);
    const { x, y } = maskTokens(tokens, new Rng(7), SPEC);
    let selected = 0;
    let masked = 0;
    let kept = 0;
    let wrong = 0;
    for (let i = 0; i < n; i++) {
      if (y[i] === -1) {
        // not selected: the input is untouched and nothing is predicted there
        if (x[i] !== tokens[i]) wrong++;
        continue;
      }
      selected++;
      if (y[i] !== tokens[i]) wrong++;
      if (x[i] === SPEC.maskId) masked++;
      else if (x[i] === tokens[i]) kept++;
      else if (x[i]! >= SPEC.ordinary) wrong++;
    }
    expect(wrong).toBe(0);
    const random = selected - masked - kept;
    expect(selected / n).toBeCloseTo(MASK_RATE, 2);
    expect(masked / selected).toBeGreaterThan(0.79);
    expect(masked / selected).toBeLessThan(0.81);
    // a random draw equal to the original (1 in 900) counts as unchanged
    expect(random / selected).toBeGreaterThan(0.09);
    expect(random / selected).toBeLessThan(0.11);
    expect(kept / selected).toBeGreaterThan(0.09);
    expect(kept / selected).toBeLessThan(0.11);
  });

  it('is deterministic from the seed, and never selects a position kept out', () => {
    const tokens = Int32Array.from({ length: 4000 }, (_, i) => (i * 7) % 900);
    const a = maskTokens(tokens, new Rng(3), SPEC);
    const b = maskTokens(tokens, new Rng(3), SPEC);
    const c = maskTokens(tokens, new Rng(4), SPEC);
    expect(b).toEqual(a);
    expect(c.y).not.toEqual(a.y);
    const odd = maskTokens(tokens, new Rng(3), SPEC, (i) => i % 2 === 0);
    expect(odd.y.filter((v, i) => i % 2 === 1 && v !== -1)).toHaveLength(0);
    expect(odd.y.filter((v) => v !== -1).length).toBeGreaterThan(0);
  });

  it("a tokenizer without [MASK] is refused for a masked-LM; a GPT's needs none", () => {
    const tok = charTokenizer();
    expect(maskSpecOf({}, tok)).toBeNull();
    expect(() => maskSpecOf({ objective: 'mlm' }, tok)).toThrow(/no \[MASK\] token/);
    const [maskId] = tok.addSpecialTokens([MASK_TOKEN]);
    expect(maskSpecOf({ objective: 'mlm' }, tok)).toEqual({
      maskId,
      ordinary: tok.specialTokens.get('<|endoftext|>'),
    });
  });
});

describe('attention and loss', () => {
  const ids = (last: number) => tf.tensor2d([[1, 2, 3, 4, 5, last]], [1, 6], 'int32');
  const firstRow = async (m: GPT, last: number) => {
    const x = ids(last);
    const h = m.hidden(x);
    const row = Array.from((await h.data()).slice(0, 16));
    tf.dispose([x, h]);
    return row;
  };

  it("a later token changes an earlier position's state for a masked-LM, not for a GPT", async () => {
    const clm = GPT.init(tinyConfig(), 5);
    const mlm = GPT.init(tinyConfig({ objective: 'mlm' }), 5);
    try {
      expect(await firstRow(clm, 6)).toEqual(await firstRow(clm, 9));
      const [a, b] = [await firstRow(mlm, 6), await firstRow(mlm, 9)];
      expect(Math.max(...a.map((v, i) => Math.abs(v - b[i]!)))).toBeGreaterThan(1e-4);
    } finally {
      clm.dispose();
      mlm.dispose();
    }
  });

  it("a masked-LM's padded row reads as the row alone (padding is left out)", async () => {
    const m = GPT.init(tinyConfig({ objective: 'mlm' }), 2);
    try {
      const alone = tf.tensor2d([[4, 5, 6]], [1, 3], 'int32');
      const padded = tf.tensor2d(
        [
          [4, 5, 6, 0, 0],
          [7, 8, 9, 10, 11],
        ],
        [2, 5],
        'int32',
      );
      const h1 = (await m.hidden(alone).data()).slice(0, 3 * 16);
      const h2 = (await m.hidden(padded, { lengths: [3, 5] }).data()).slice(0, 3 * 16);
      const unmasked = (await m.hidden(padded).data()).slice(0, 3 * 16);
      h1.forEach((v, i) => expect(h2[i]).toBeCloseTo(v, 5));
      expect(Math.max(...h1.map((v, i) => Math.abs(v - unmasked[i]!)))).toBeGreaterThan(1e-4);
      tf.dispose([alone, padded]);
    } finally {
      m.dispose();
    }
  });

  it('its explicit backward equals autodiff of a bidirectional GPT-2 with padding left out', async () => {
    const cfg = tinyConfig({ objective: 'mlm' });
    const weights = randomWeights(cfg, 7);
    const [B, T] = [3, 12];
    const lengths = [12, 9, 5];
    const ids = randomIds(B * T, cfg.vocabSize, 1);
    // targets on some real positions only, as a masked batch has them
    const tgt = randomIds(B * T, cfg.vocabSize, 2).map((t, i) =>
      i % T < lengths[Math.floor(i / T)]! && i % 3 === 0 ? t : -1,
    );
    const rows = (a: number[]) => Array.from({ length: B }, (_, b) => a.slice(b * T, (b + 1) * T));
    const shapes = paramShapes(cfg);
    const ref = await referenceGrads(
      new Map([...weights].map(([n, data]) => [n, { data, shape: shapes.get(n)! }] as const)),
      (P) => referenceLmLoss(P, referenceHidden(cfg, P, rows(ids), undefined, lengths), rows(tgt)),
      initBackend,
    );
    const model = new GPT(cfg, weights);
    const x = tf.tensor2d(ids, [B, T], 'int32');
    const y = tf.tensor2d(tgt, [B, T], 'int32');
    try {
      const warm = await model.lossAndGrads(x, model.lmLoss(y), { lengths });
      tf.dispose([warm.loss, ...warm.grads.values()]);
      const before = tf.memory().numTensors;
      const got = await model.lossAndGrads(x, model.lmLoss(y), { lengths });
      // only the loss and one gradient per parameter remain: the padding mask is freed
      expect(tf.memory().numTensors - before).toBe(1 + model.params.size);
      expect(Math.abs((await got.loss.data())[0]! - ref.loss)).toBeLessThan(1e-5);
      for (const [name, g] of got.grads) {
        expect(relError(await g.data(), ref.grads.get(name)!), name).toBeLessThan(1e-4);
      }
      tf.dispose([got.loss, ...got.grads.values()]);
    } finally {
      tf.dispose([x, y]);
      model.dispose();
    }
  });

  it('the masked-LM loss is the mean cross-entropy over the selected positions only', async () => {
    const m = GPT.init(tinyConfig({ vocabSize: 33, objective: 'mlm' }), 3);
    try {
      const data = Int32Array.from({ length: 400 }, (_, i) => (i * 5) % 30);
      const { x, y } = sampleLmBatch(data, 4, 16, new Rng(9), { maskId: 32, ordinary: 30 });
      const targets = Array.from(await y.data());
      const selected = targets.filter((t) => t >= 0).length;
      expect(selected).toBeGreaterThan(0);
      expect(selected).toBeLessThan(targets.length / 2);
      const loss = (await m.loss(x, y).data())[0]!;
      const logits = m.lmHead(m.hidden(x));
      const logp = (await tf.logSoftmax(logits).data()) as Float32Array;
      let sum = 0;
      targets.forEach((t, i) => {
        if (t >= 0) sum -= logp[i * 33 + t]!;
      });
      expect(loss).toBeCloseTo(sum / selected, 4);
      tf.dispose([x, y, logits]);
    } finally {
      m.dispose();
    }
  });
});

describe('on two workers', () => {
  /** The first two steps' losses of a masked-LM on `workers` training threads. */
  async function losses(workers: number): Promise<number[]> {
    const model = GPT.init(tinyConfig({ vocabSize: 33, objective: 'mlm' }), 4);
    const opt = new AdamW(model.params, {
      beta1: 0.9,
      beta2: 0.99,
      eps: 1e-8,
      weightDecay: 0.1,
      gradClip: 1,
    });
    const mask = { maskId: 32, ordinary: 30 };
    const trainer = await openTrainer(model, opt, workers, 'wasm', mask);
    const data = Int32Array.from({ length: 600 }, (_, i) => (i * 7 + (i >> 3)) % 30);
    const t = { batchSize: 4, gradAccum: 1, seed: 1 };
    const rng = new Rng(11);
    const out: number[] = [];
    try {
      for (let s = 0; s < 2; s++) out.push((await trainer.step(data, rng, t, s, 1e-3)).loss);
    } finally {
      await trainer.close();
      model.dispose();
      opt.dispose();
    }
    return out;
  }

  it("a step's loss is the mean over the whole batch's masked tokens, as on one thread", async () => {
    const [one, two] = [await losses(1), await losses(2)];
    expect(Math.abs(two[0]! - one[0]!)).toBeLessThan(1e-5);
    expect(Math.abs(two[1]! - one[1]!)).toBeLessThan(1e-4);
  }, 60_000);
});

const mlmTrain = { ...TINY_TRAIN, steps: 6, evalEvery: 3, sampleEvery: 2 };

async function pretrainMlm(out: string, signal?: AbortSignal, onEvent?: (e: TrainEvent) => void) {
  return pretrain({
    corpus: [corpus],
    out,
    tokenizer: 'char',
    model: { ...TINY_MODEL, dropout: 0.1 },
    train: mlmTrain,
    objective: 'mlm',
    ...(signal ? { signal } : {}),
    ...(onEvent ? { onEvent } : {}),
  });
}

describe('a masked-LM run', () => {
  let run: string;
  const events: TrainEvent[] = [];
  beforeAll(async () => {
    run = path.join(dir, 'bert');
    await pretrainMlm(run, undefined, (e) => events.push(e));
  }, 60_000);

  it('records its objective, adds [MASK] to the vocabulary and takes no samples', async () => {
    const config = JSON.parse(await fs.readFile(path.join(run, 'config.json'), 'utf8'));
    expect(config.objective).toBe('mlm');
    const { tokenizer, config: parsed, model } = await loadModelDir(run);
    model.dispose();
    expect(parsed.objective).toBe('mlm');
    expect(tokenizer.specialTokens.get(MASK_TOKEN)).toBe(tokenizer.vocabSize - 1);
    expect(parsed.vocabSize).toBe(charTokenizer(toyCorpus(6)).vocabSize + 1);
    expect(events.filter((e) => e.type === 'sample')).toHaveLength(0);
    const steps = events.filter((e) => e.type === 'step');
    expect(steps).toHaveLength(6);
    expect(events.some((e) => e.type === 'eval' && Number.isFinite(e.valLoss))).toBe(true);
  });

  it('an old config without the field reads as a GPT (clm)', async () => {
    const gptDir = path.join(dir, 'gpt-old');
    const m = GPT.init(tinyConfig(), 1);
    const { saveModelDir } = await import('../../../src/engine/checkpoint/modelDir');
    await saveModelDir(gptDir, m, charTokenizer());
    m.dispose();
    const raw = JSON.parse(await fs.readFile(path.join(gptDir, 'config.json'), 'utf8'));
    expect(raw.objective).toBeUndefined();
    expect((await readHfConfig(path.join(gptDir, 'config.json'))).objective).toBeUndefined();
    await expect(refuseMaskedLmDir(gptDir)).resolves.toBeUndefined();
  });

  it('a GPT cannot be continued as a masked-LM, nor a masked-LM tracked zero-shot', async () => {
    await expect(
      pretrain({
        corpus: [corpus],
        out: path.join(dir, 'from-gpt'),
        tokenizer: 'char',
        from: path.join(dir, 'gpt-old'),
        train: mlmTrain,
        objective: 'mlm',
      }),
    ).rejects.toThrow(
      /gpt-old: it is a GPT \(clm\) model; pretraining continues it only with its own objective \(--objective clm\)/,
    );
    await expect(
      pretrain({
        corpus: [corpus],
        out: path.join(dir, 'zs'),
        tokenizer: 'char',
        train: mlmTrain,
        objective: 'mlm',
        zeroShot: { sets: [] as never, every: 1, limit: 1, seed: 1 },
      }),
    ).rejects.toThrow(/zero-shot tracking ranks label words left to right/);
  });

  it('stopped at step 3 and resumed, it ends exactly as the uninterrupted run (masks included)', async () => {
    const ac = new AbortController();
    const runDir = path.join(dir, 'bert-resumed');
    await pretrainMlm(runDir, ac.signal, (e) => e.type === 'step' && e.step === 3 && ac.abort());
    const rest: TrainEvent[] = [];
    const r = await resume({ run: runDir, onEvent: (e) => rest.push(e) });
    expect(r).toMatchObject({ step: 6, stopped: 'completed' });
    const straight = events.filter((e) => e.type === 'step').slice(3);
    expect(
      rest.filter((e) => e.type === 'step').map((e) => (e as { trainLoss: number }).trainLoss),
    ).toEqual(straight.map((e) => (e as { trainLoss: number }).trainLoss));
    expect(sha256File(path.join(runDir, 'model.safetensors'))).toBe(
      sha256File(path.join(run, 'model.safetensors')),
    );
  }, 60_000);

  it('refuses generation, scoring and few-shot with the reason', async () => {
    const { model, tokenizer } = await loadModelDir(run);
    try {
      const reason =
        /masked-LM \(BERT-style\) model: it sees both sides of each token, so it cannot generate text left to right or rank continuations; fine-tune it or use a GPT model/;
      await expect(generateTokens(model, tokenizer, [1, 2]).next()).rejects.toThrow(reason);
      await expect(scoreText(model, tokenizer, 'the cat')).rejects.toThrow(reason);
      await expect(
        evaluateIcl(model, tokenizer, {
          examples: [{ text: 'a', label: 'x' }],
          labels: [{ label: 'x', word: 'x' }],
          shots: [0],
        } as never),
      ).rejects.toThrow(reason);
      await expect(refuseMaskedLmDir(run)).rejects.toThrow(/^bert is a masked-LM/);
    } finally {
      model.dispose();
    }
  });

  it('refuses GGUF and Hugging Face export, saying why', async () => {
    await expect(
      exportModel({ model: run, out: path.join(dir, 'x.gguf.d'), format: 'gguf' }),
    ).rejects.toThrow(/as GGUF: it is a masked-LM \(BERT-style\) model, and llama\.cpp's gpt2/);
    await expect(
      exportModel({ model: run, out: path.join(dir, 'hf'), format: 'hf' }),
    ).rejects.toThrow(
      /as a Hugging Face folder: .*BertForMaskedLM's blocks are post-LayerNorm with token-type embeddings/,
    );
    await expect(fs.access(path.join(dir, 'hf'))).rejects.toThrow();
  });

  it('fine-tunes, its classifier reading each sequence at position 0 ([s], as BERT reads [CLS])', async () => {
    const r = await finetune({
      model: run,
      task: 'classification',
      columns: { text: 'text', label: 'label' },
      data: labeled,
      settings: { epochs: 2, batchSize: 8, lr: 3e-3, lambda: 0.5 },
    });
    expect(r.outcome).toBe('completed');
    expect(r.metrics.accuracy).toBeGreaterThanOrEqual(0);
    expect(r.history).toHaveLength(2);

    const batch = makeBatch(
      [[[1, 2, 3, 4]], [[5, 6]]],
      [0, 1],
      predictionLayout({ objective: 'mlm' }),
    );
    const select = await batch.select.array();
    expect(select[0]![0]).toBe(1); // row 0 reads position 0
    expect(select[1]![4]).toBe(1); // row 1 reads its position 0 (offset T = 4)
    expect(batch.lengths).toEqual([4, 2]);
    expect(Array.from(await batch.targets.data()).every((t) => t === -1)).toBe(true);
    tf.dispose([batch.ids, batch.targets, batch.select, batch.labels]);
  }, 60_000);
});

describe('GPT vs BERT', () => {
  it('pretrains both like the run, fine-tunes both, and gives one row each', async () => {
    const base = path.join(dir, 'base-run');
    await pretrain({
      corpus: [corpus],
      out: base,
      tokenizer: 'char',
      model: { ...TINY_MODEL },
      train: { ...TINY_TRAIN, steps: 2, sampleEvery: 0 },
    });
    const phases: string[] = [];
    const r = await gptBert({
      model: base,
      task: 'classification',
      columns: { text: 'text', label: 'label' },
      data: labeled,
      pretrainSteps: 3,
      settings: { epochs: 1, batchSize: 16, lr: 3e-3 },
      onEvent: (e) => {
        if (e.type === 'gptbert.phase') phases.push(`${e.model} ${e.phase}`);
      },
    });
    expect(phases).toEqual(['GPT pretrain', 'GPT finetune', 'BERT pretrain', 'BERT finetune']);
    expect(r.rows.map((row) => [row.model, row.objective])).toEqual([
      ['GPT', 'clm'],
      ['BERT', 'mlm'],
    ]);
    expect(r.pretrain).toMatchObject({ steps: 3, nLayer: 1, nEmbd: 16, blockSize: 16 });
    // the same size, BERT with one more token ([MASK]) in its embedding
    expect(r.rows[1]!.params - r.rows[0]!.params).toBe(16);
    for (const row of r.rows) {
      expect(Number.isFinite(row.pretrainLoss)).toBe(true);
      expect(row.accuracy).toBeGreaterThanOrEqual(0);
      expect(row.history).toHaveLength(1);
    }
  }, 90_000);

  it('refuses a model without a pretraining record, naming it', async () => {
    const plain = path.join(dir, 'gpt-old');
    await expect(
      gptBert({
        model: plain,
        task: 'classification',
        columns: { text: 'text', label: 'label' },
        data: labeled,
      }),
    ).rejects.toThrow(/gpt-old: no pretraining record \(state\.json/);
  });
});
