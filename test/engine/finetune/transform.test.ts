/**
 * GPT-1's input transformations and head: each task's token layout, the truncation rule,
 * similarity's symmetry, multiple choice's softmax over the candidates, and L3 = L2 + λ·L1 with
 * its gradients (GPT.lossAndGrads with the head gpt1Objective) against autodiff of a standard-op
 * reference.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../../src/engine/tf';
import { initBackend } from '../../../src/engine/backend';
import { GPT } from '../../../src/engine/model/gpt';
import { paramShapes } from '../../../src/engine/model/params';
import { disposeBatch, makeBatch, type Batch } from '../../../src/engine/finetune/batch';
import {
  ClassifierHead,
  classifierLogits,
  gpt1Objective,
  predictBatch,
} from '../../../src/engine/finetune/head';
import { prepareModel } from '../../../src/engine/finetune/prepare';
import {
  addFinetuneTokens,
  encodeExample,
  frame,
  type Task,
} from '../../../src/engine/finetune/tasks';
import { charTokenizer, maxAbsDiff, randomWeights, relError, tinyConfig } from '../helpers';
import {
  referenceCrossEntropy,
  referenceGrads,
  referenceHidden,
  referenceLmLoss,
} from '../model/standardGpt';

beforeAll(async () => {
  await initBackend('wasm');
});

const TEXT = 'abcdefghijklmnopqrstuvwxyz .,';

function setup() {
  const tok = charTokenizer(TEXT);
  const sp = addFinetuneTokens(tok);
  return { tok, sp };
}

describe('input transformations', () => {
  it('adds [s], $ and [e] once, at the end of the vocabulary', () => {
    const tok = charTokenizer(TEXT);
    const before = tok.vocabSize;
    const sp = addFinetuneTokens(tok);
    expect([sp.start, sp.delim, sp.extract]).toEqual([before, before + 1, before + 2]);
    expect(addFinetuneTokens(tok)).toEqual(sp);
    expect(tok.idToToken(sp.start)).toBe('<|start|>');
    expect(tok.idToToken(sp.delim)).toBe('<|delim|>');
    expect(tok.idToToken(sp.extract)).toBe('<|extract|>');
  });

  it('classification: [s] text [e]', () => {
    const { tok, sp } = setup();
    const e = encodeExample('classification', { text: 'ab c' }, tok, sp, 16);
    expect(e.sequences).toEqual([[sp.start, ...tok.encode('ab c'), sp.extract]]);
    expect(e.truncated).toBe(false);
  });

  it('entailment: [s] premise $ hypothesis [e]', () => {
    const { tok, sp } = setup();
    const e = encodeExample('entailment', { premise: 'abc', hypothesis: 'xy' }, tok, sp, 16);
    expect(e.sequences).toEqual([
      [sp.start, ...tok.encode('abc'), sp.delim, ...tok.encode('xy'), sp.extract],
    ]);
  });

  it('similarity: both orders, [s] a $ b [e] and [s] b $ a [e]', () => {
    const { tok, sp } = setup();
    const e = encodeExample('similarity', { a: 'abc', b: 'xy' }, tok, sp, 16);
    const a = tok.encode('abc');
    const b = tok.encode('xy');
    expect(e.sequences).toEqual([
      [sp.start, ...a, sp.delim, ...b, sp.extract],
      [sp.start, ...b, sp.delim, ...a, sp.extract],
    ]);
  });

  it('multiple choice: one [s] context $ answer [e] per answer', () => {
    const { tok, sp } = setup();
    const e = encodeExample(
      'multiple-choice',
      { context: 'the cat', answers: ['sat', 'ran', 'hid'] },
      tok,
      sp,
      32,
    );
    const ctx = tok.encode('the cat');
    expect(e.sequences).toEqual(
      ['sat', 'ran', 'hid'].map((a) => [sp.start, ...ctx, sp.delim, ...tok.encode(a), sp.extract]),
    );
  });

  it('truncates the first part from the front, keeping [s], $, the second part and [e]', () => {
    const { tok, sp } = setup();
    const first = tok.encode('abcdefghij');
    const second = tok.encode('xyz');
    const { ids, truncated } = frame(first, second, sp, 10);
    expect(truncated).toBe(true);
    expect(ids).toHaveLength(10);
    expect(ids).toEqual([sp.start, ...tok.encode('ghij'), sp.delim, ...second, sp.extract]);
    // a second part that alone is too long is cut from its front too
    const long = frame(first, tok.encode('abcdefghijklmno'), sp, 8);
    expect(long.ids).toEqual([sp.start, sp.delim, ...tok.encode('klmno'), sp.extract]);
    // classification: the text's end is kept
    const c = encodeExample('classification', { text: 'abcdefghij' }, tok, sp, 6);
    expect(c.sequences[0]).toEqual([sp.start, ...tok.encode('ghij'), sp.extract]);
    expect(c.truncated).toBe(true);
  });

  it('similarity cuts both sentences the same way in both orders', () => {
    const { tok, sp } = setup();
    const e = encodeExample(
      'similarity',
      { a: 'abcdefghij', b: 'klmnopqrst' },
      tok,
      sp,
      11, // 8 tokens for the two sentences: each keeps its last 4
    );
    const a = tok.encode('ghij');
    const b = tok.encode('qrst');
    expect(e.sequences).toEqual([
      [sp.start, ...a, sp.delim, ...b, sp.extract],
      [sp.start, ...b, sp.delim, ...a, sp.extract],
    ]);
  });
});

/** A tiny model with random (large-scale) weights and the fine-tuning tokens added. */
function tinyModel(seed = 3) {
  const { tok, sp } = setup();
  const cfg = tinyConfig({ vocabSize: tok.vocabSize - 3, blockSize: 32 });
  const weights = randomWeights(cfg, seed, 0.3);
  const base = new GPT(cfg, weights);
  const tokBefore = charTokenizer(TEXT);
  const { model, special } = prepareModel(base, weights, tokBefore, { init: 'pretrained', seed });
  expect(special).toEqual(sp);
  return { model, tok, sp };
}

describe('the head', () => {
  it('grows W_e by the three new tokens, keeping the pretrained rows', async () => {
    const tok = charTokenizer(TEXT);
    const cfg = tinyConfig({ vocabSize: tok.vocabSize, blockSize: 32 });
    const weights = randomWeights(cfg, 5);
    const base = new GPT(cfg, weights);
    const { model, newTokens } = prepareModel(base, weights, tok, { init: 'pretrained', seed: 1 });
    try {
      expect(newTokens).toEqual(['<|start|>', '<|delim|>', '<|extract|>']);
      expect(model.config.vocabSize).toBe(cfg.vocabSize + 3);
      const wte = (await model.p('wte.weight').data()) as Float32Array;
      const old = weights.get('wte.weight')!;
      expect(maxAbsDiff(wte.subarray(0, old.length), old)).toBe(0);
      const fresh = wte.subarray(old.length);
      expect(fresh).toHaveLength(3 * cfg.nEmbd);
      const std = Math.sqrt(fresh.reduce((a, x) => a + x * x, 0) / fresh.length);
      expect(std).toBeGreaterThan(0.01);
      expect(std).toBeLessThan(0.04);
      // the other parameters are the pretrained ones
      const w = (await model.p('h.0.attn.c_attn.weight').data()) as Float32Array;
      expect(maxAbsDiff(w, weights.get('h.0.attn.c_attn.weight')!)).toBe(0);
    } finally {
      model.dispose();
    }
  });

  it('similarity is symmetric in its two sentences', async () => {
    const { model, tok, sp } = tinyModel();
    const head = new ClassifierHead(model.config.nEmbd, 2, { seed: 9 });
    try {
      const enc = (a: string, b: string) =>
        encodeExample('similarity', { a, b }, tok, sp, 32).sequences;
      const batch = makeBatch([enc('the cat sat', 'a dog'), enc('a dog', 'the cat sat')], [0, 1]);
      const { probs } = await predictBatch(model, head, 'similarity', batch);
      disposeBatch(batch);
      expect(maxAbsDiff(probs[0]!, probs[1]!)).toBeLessThan(1e-5);
      // and it is not trivially constant: another pair gives other probabilities
      const other = makeBatch([enc('xyz', 'q')], [0]);
      const p2 = await predictBatch(model, head, 'similarity', other);
      disposeBatch(other);
      expect(maxAbsDiff(p2.probs[0]!, probs[0]!)).toBeGreaterThan(1e-4);
    } finally {
      head.dispose();
      model.dispose();
    }
  });

  it('the similarity representation is the sum of both orders’ h at [e], then W_y', async () => {
    const { model, tok, sp } = tinyModel();
    const head = new ClassifierHead(model.config.nEmbd, 2, { seed: 2 });
    try {
      const seqs = encodeExample('similarity', { a: 'ab', b: 'cde' }, tok, sp, 32).sequences;
      const batch = makeBatch([seqs], [0]);
      const logits = (await classifierLogits(
        model,
        head,
        'similarity',
        batch,
      ).data()) as Float32Array;
      disposeBatch(batch);
      // by hand: h of each order alone, at its last position
      const hLast = async (ids: number[]) => {
        const h = model.hidden(tf.tensor2d(ids, [1, ids.length], 'int32'));
        const all = (await h.data()) as Float32Array;
        const C = model.config.nEmbd;
        return all.subarray((ids.length - 1) * C, ids.length * C);
      };
      const h1 = await hLast(seqs[0]!);
      const h2 = await hLast(seqs[1]!);
      const w = (await head.weight.data()) as Float32Array;
      const b = (await head.bias.data()) as Float32Array;
      const C = model.config.nEmbd;
      const expected = [0, 1].map((k) => {
        let z = b[k]!;
        for (let j = 0; j < C; j++) z += (h1[j]! + h2[j]!) * w[j * 2 + k]!;
        return z;
      });
      expect(maxAbsDiff(logits, expected)).toBeLessThan(1e-4);
    } finally {
      head.dispose();
      model.dispose();
    }
  });

  it('multiple choice takes its softmax over the candidates', async () => {
    const { model, tok, sp } = tinyModel();
    const head = new ClassifierHead(model.config.nEmbd, 1, { seed: 4 });
    try {
      const answers = ['sat', 'ran away', 'hid', 'slept']; // different lengths: padded
      const seqs = encodeExample(
        'multiple-choice',
        { context: 'the cat', answers },
        tok,
        sp,
        32,
      ).sequences;
      const batch = makeBatch([seqs], [2]);
      const { probs } = await predictBatch(model, head, 'multiple-choice', batch);
      disposeBatch(batch);
      expect(probs[0]).toHaveLength(4);
      expect(probs[0]!.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
      // each candidate's score computed alone, then a softmax over the four
      const scores: number[] = [];
      for (const s of seqs) {
        const one = makeBatch([[s]], [0]);
        const logits = classifierLogits(model, head, 'classification', one);
        scores.push(((await logits.data()) as Float32Array)[0]!);
        disposeBatch(one);
      }
      const m = Math.max(...scores);
      const z = scores.map((x) => Math.exp(x - m));
      const sum = z.reduce((a, b) => a + b, 0);
      expect(
        maxAbsDiff(
          probs[0]!,
          z.map((x) => x / sum),
        ),
      ).toBeLessThan(1e-5);
    } finally {
      head.dispose();
      model.dispose();
    }
  });

  /** L3's value, its report (L1, L2) and every gradient, by GPT.lossAndGrads with gpt1Objective. */
  async function objective(
    model: GPT,
    head: ClassifierHead,
    task: Task,
    batch: Batch,
    o: { lambda: number; clfDropout: number },
  ) {
    const seed = 77;
    const r = await model.lossAndGrads(
      batch.ids,
      gpt1Objective(model, head, task, batch, { ...o, seed }),
      { train: true, seed },
    );
    const read = async (t: tf.Tensor) => (await t.data()) as Float32Array;
    const grads = new Map<string, Float32Array>();
    for (const [n, g] of r.grads) grads.set(n, await read(g));
    const out = {
      L3: (await read(r.loss))[0]!,
      L2: (await read(r.report.L2!))[0]!,
      L1: (await read(r.report.L1!))[0]!,
      grads,
    };
    tf.dispose([r.loss, ...Object.values(r.report), ...r.grads.values()]);
    return out;
  }

  it('λ = 0 gives the pure classification loss; λ > 0 adds λ·L1', async () => {
    const { model, tok, sp } = tinyModel();
    const head = new ClassifierHead(model.config.nEmbd, 3, { seed: 6 });
    try {
      const texts = ['the cat', 'a dog sat', 'xyz'];
      const seqs = texts.map(
        (text) => encodeExample('classification', { text }, tok, sp, 32).sequences,
      );
      const labels = [2, 0, 1];
      const batch = makeBatch(seqs, labels);

      // L2 by hand: −mean log softmax(logits)[y]
      const logits = (await classifierLogits(
        model,
        head,
        'classification',
        batch,
      ).data()) as Float32Array;
      let l2 = 0;
      labels.forEach((y, i) => {
        const row = Array.from(logits.subarray(i * 3, i * 3 + 3));
        const m = Math.max(...row);
        const lse = m + Math.log(row.reduce((a, x) => a + Math.exp(x - m), 0));
        l2 += (lse - row[y]!) / labels.length;
      });
      const l0 = await objective(model, head, 'classification', batch, {
        lambda: 0,
        clfDropout: 0,
      });
      expect(l0.L3).toBeCloseTo(l2, 5);
      expect(l0.L2).toBeCloseTo(l2, 5);

      // L1: the LM loss of the same sequences (each alone, no padding), mean over predicted tokens
      let nll = 0;
      let count = 0;
      for (const [s] of seqs) {
        const idx = tf.tensor2d(s!.slice(0, -1), [1, s!.length - 1], 'int32');
        const tgt = tf.tensor2d(s!.slice(1), [1, s!.length - 1], 'int32');
        nll += (await model.loss(idx, tgt).data())[0]! * (s!.length - 1);
        count += s!.length - 1;
      }
      expect(l0.L1).toBeCloseTo(nll / count, 4);
      const half = await objective(model, head, 'classification', batch, {
        lambda: 0.5,
        clfDropout: 0,
      });
      expect(half.L3).toBeCloseTo(l2 + 0.5 * l0.L1, 4);
      // and the head's gradient is not zero
      expect(Math.max(...l0.grads.get('classifier.weight')!.map(Math.abs))).toBeGreaterThan(1e-6);
      disposeBatch(batch);
    } finally {
      head.dispose();
      model.dispose();
    }
  });

  const gradCases: Array<{
    task: Exclude<Task, 'entailment'>;
    lambda: number;
    clfDropout: number;
  }> = [
    { task: 'classification', lambda: 0, clfDropout: 0 },
    { task: 'classification', lambda: 0.5, clfDropout: 0.3 },
    { task: 'similarity', lambda: 0.5, clfDropout: 0 },
    { task: 'multiple-choice', lambda: 0.25, clfDropout: 0.3 },
  ];
  for (const c of gradCases) {
    it(`the gradients of L3 = autodiff of a standard-op reference (${c.task}, λ ${c.lambda}, classifier dropout ${c.clfDropout})`, async () => {
      const { model, tok, sp } = tinyModel();
      const outputs = c.task === 'multiple-choice' ? 1 : 2;
      const head = new ClassifierHead(model.config.nEmbd, outputs, { seed: 8 });
      const inputs = {
        classification: [{ text: 'the cat' }, { text: 'a dog sat' }, { text: 'xyz' }],
        similarity: [
          { a: 'the cat', b: 'a dog' },
          { a: 'xyz', b: 'q r' },
        ],
        'multiple-choice': [
          { context: 'the cat', answers: ['sat', 'ran away'] },
          { context: 'a dog', answers: ['hid', 'slept'] },
        ],
      }[c.task];
      const labels = inputs.map((_, i) => i % 2);
      const seqs = inputs.map((x) => encodeExample(c.task, x, tok, sp, 32).sequences);
      const batch = makeBatch(seqs, labels);
      try {
        const ours = await objective(model, head, c.task, batch, c);
        // the reference: h by standard ops, then the rows at each [e], W_y, cross-entropy, + λ·L1
        const [S, T] = batch.ids.shape;
        const ids = (await batch.ids.array()) as number[][];
        const targets = (await batch.targets.array()) as number[][];
        const at = seqs.flat().map((q, s) => s * T + q.length - 1);
        const weights = new Map(
          [...(await model.weights())].map(
            ([n, data]) => [n, { data, shape: paramShapes(model.config).get(n)! }] as const,
          ),
        );
        weights.set('classifier.weight', {
          data: (await head.weight.data()) as Float32Array,
          shape: head.weight.shape,
        });
        weights.set('classifier.bias', {
          data: (await head.bias.data()) as Float32Array,
          shape: head.bias.shape,
        });
        const C = model.config.nEmbd;
        const ref = await referenceGrads(
          weights,
          (P) => {
            const h = referenceHidden(model.config, P, ids);
            let x: tf.Tensor = tf.gather(h, tf.tensor1d(at, 'int32'));
            if (c.task === 'similarity') x = tf.sum(tf.reshape(x, [S / 2, 2, C]), 1);
            if (c.clfDropout > 0) {
              const seed = (77 * 977 + 5) >>> 1;
              const u = tf.randomUniform(x.shape, 0, 1, 'float32', seed);
              x = tf.mul(
                x,
                tf.div(tf.cast(tf.greaterEqual(u, c.clfDropout), 'float32'), 1 - c.clfDropout),
              );
            }
            let z = tf.add(
              tf.matMul(x as tf.Tensor2D, P.get('classifier.weight') as tf.Tensor2D),
              P.get('classifier.bias')!,
            );
            if (c.task === 'multiple-choice') z = tf.reshape(z, [labels.length, 2]);
            const l2 = referenceCrossEntropy(z as tf.Tensor2D, labels);
            if (c.lambda === 0) return l2;
            return tf.add(l2, tf.mul(c.lambda, referenceLmLoss(P, h, targets))) as tf.Scalar;
          },
          initBackend,
        );
        expect(Math.abs(ours.L3 - ref.loss) / ref.loss).toBeLessThan(1e-5);
        expect([...ours.grads.keys()].sort()).toEqual([...ref.grads.keys()].sort());
        for (const [name, g] of ref.grads) {
          // zero in exact arithmetic: at λ = 0 the rows of W_e no token reads; under multiple
          // choice's softmax over the answers, the bias (it shifts every answer's score alike)
          if (Math.max(...g.map(Math.abs)) < 1e-7) {
            expect(Math.max(...ours.grads.get(name)!.map(Math.abs)), name).toBeLessThan(1e-7);
            continue;
          }
          expect(relError(ours.grads.get(name)!, g), name).toBeLessThan(1e-4);
        }
      } finally {
        disposeBatch(batch);
        head.dispose();
        model.dispose();
      }
    });
  }
});
