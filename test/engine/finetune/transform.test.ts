/**
 * GPT-1's input transformations and head: each task's token layout, the truncation rule,
 * similarity's symmetry, multiple choice's softmax over the candidates, and L3 = L2 + λ·L1.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../../src/engine/tf';
import { initBackend } from '../../../src/engine/backend';
import { GPT } from '../../../src/engine/model/gpt';
import {
  ClassifierHead,
  disposeBatch,
  finetuneLosses,
  forward,
  makeBatch,
  predictBatch,
  prepareModel,
} from '../../../src/engine/finetune/model';
import { addFinetuneTokens, encodeExample, frame } from '../../../src/engine/finetune/tasks';
import { charTokenizer, maxAbsDiff, randomWeights, tinyConfig } from '../helpers';

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
      const logits = (await forward(
        model,
        head,
        'similarity',
        batch,
      ).logits.data()) as Float32Array;
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
        const { logits } = forward(model, head, 'classification', one);
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

  it('λ = 0 gives the pure classification loss and its gradients; λ > 0 adds λ·L1', async () => {
    const { model, tok, sp } = tinyModel();
    const head = new ClassifierHead(model.config.nEmbd, 3, { seed: 6 });
    try {
      const texts = ['the cat', 'a dog sat', 'xyz'];
      const seqs = texts.map(
        (text) => encodeExample('classification', { text }, tok, sp, 32).sequences,
      );
      const labels = [2, 0, 1];
      const batch = makeBatch(seqs, labels);
      const vars = [...model.variables, head.weight, head.bias];

      // L2 by hand: −mean log softmax(logits)[y]
      const logits = (await forward(
        model,
        head,
        'classification',
        batch,
      ).logits.data()) as Float32Array;
      let l2 = 0;
      labels.forEach((y, i) => {
        const row = Array.from(logits.subarray(i * 3, i * 3 + 3));
        const m = Math.max(...row);
        const lse = m + Math.log(row.reduce((a, x) => a + Math.exp(x - m), 0));
        l2 += (lse - row[y]!) / labels.length;
      });
      const l0 = finetuneLosses(model, head, 'classification', batch, 0);
      expect((await l0.L3.data())[0]).toBeCloseTo(l2, 5);
      expect((await l0.L2.data())[0]).toBeCloseTo(l2, 5);

      // L1: the LM loss of the same sequences (each alone, no padding), mean over predicted tokens
      let nll = 0;
      let count = 0;
      for (const [s] of seqs) {
        const idx = tf.tensor2d(s!.slice(0, -1), [1, s!.length - 1], 'int32');
        const tgt = tf.tensor2d(s!.slice(1), [1, s!.length - 1], 'int32');
        nll += (await model.loss(idx, tgt).data())[0]! * (s!.length - 1);
        count += s!.length - 1;
      }
      const l1 = (await l0.L1.data())[0]!;
      expect(l1).toBeCloseTo(nll / count, 4);
      const half = finetuneLosses(model, head, 'classification', batch, 0.5);
      expect((await half.L3.data())[0]).toBeCloseTo(l2 + 0.5 * l1, 4);

      // the gradients of L3 at λ = 0 are those of L2 alone
      const g3 = tf.variableGrads(
        () => finetuneLosses(model, head, 'classification', batch, 0).L3,
        vars,
      );
      const g2 = tf.variableGrads(() => forwardL2(), vars);
      function forwardL2() {
        const { logits } = forward(model, head, 'classification', batch);
        return tf.neg(
          tf.mean(tf.sum(tf.mul(tf.logSoftmax(logits), tf.oneHot(batch.labels, 3)), 1)),
        ) as tf.Scalar;
      }
      for (const v of vars) {
        const a = g3.grads[v.name];
        const b = g2.grads[v.name];
        if (!b) continue;
        expect(a, v.name).toBeDefined();
        expect(
          maxAbsDiff((await a!.data()) as Float32Array, (await b.data()) as Float32Array),
        ).toBeLessThan(1e-5);
      }
      // and the head's gradient is not zero
      expect(
        Math.max(...((await g3.grads[head.weight.name]!.abs().data()) as Float32Array)),
      ).toBeGreaterThan(1e-6);
      disposeBatch(batch);
    } finally {
      head.dispose();
      model.dispose();
    }
  });
});
