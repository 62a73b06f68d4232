/**
 * Looking inside a forward pass (engine/console/inspect.ts): the captured attention is causal,
 * its rows sum to 1 and it equals PyTorch's (scripts/attention_reference.py, skipped without
 * torch); the capture leaves the forward's numbers as they were; the logit lens' last row is the
 * model's own prediction; a classifier's per-label logits at the last layer are its own; the
 * length limit says what sets it; the principal components are orthonormal eigenvectors, largest
 * variance first; the embedding map finds tokens by their text.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../../src/engine/backend';
import { saveModelDir } from '../../../src/engine/checkpoint/modelDir';
import {
  checkInspectLength,
  embeddingMap,
  inspectForward,
  principalComponents,
  topEigen,
  type ClassifierWeights,
} from '../../../src/engine/console/inspect';
import { GPT, type ForwardCapture } from '../../../src/engine/model/gpt';
import * as tf from '../../../src/engine/tf';
import {
  PYTHON,
  charTokenizer,
  maxAbsDiff,
  pythonHas,
  randomFloats,
  randomIds,
  randomWeights,
  removeDir,
  tempDir,
  tinyConfig,
} from '../helpers';

const SCRIPT = path.resolve('scripts/attention_reference.py');
const hasTorch = pythonHas('torch', 'numpy');
const tok = charTokenizer();
const cfg = tinyConfig({ vocabSize: tok.vocabSize, blockSize: 24, nLayer: 2, nHead: 2, nEmbd: 16 });
let model: GPT;
let dir: string;
const IDS = randomIds(12, tok.vocabSize, 5);

beforeAll(async () => {
  await initBackend('wasm');
  model = new GPT(cfg, randomWeights(cfg, 11, 0.4));
  dir = await tempDir();
});
afterAll(async () => {
  model?.dispose();
  await removeDir(dir);
});

/** The plain forward's logits [T, V] for one row. */
async function ownLogits(ids: number[]): Promise<Float32Array> {
  const x = tf.tensor2d([ids], undefined, 'int32');
  const l = tf.tidy(() => model.lmHead(model.hidden(x)));
  const out = (await l.data()) as Float32Array;
  tf.dispose([x, l]);
  return out;
}

const argmax = (a: ArrayLike<number>) => {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
};

describe('console.inspect in the engine', () => {
  it('attention is causal and each row sums to 1', async () => {
    const r = await inspectForward(model, tok, IDS);
    expect(r.attention).toHaveLength(cfg.nLayer);
    for (const layer of r.attention) {
      expect(layer).toHaveLength(cfg.nHead);
      for (const head of layer) {
        expect(head).toHaveLength(IDS.length);
        head.forEach((row, q) => {
          expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
          expect(row.slice(q + 1).every((w) => w === 0)).toBe(true);
          expect(row.slice(0, q + 1).every((w) => w > 0)).toBe(true);
        });
      }
    }
    expect(r.tokens.map((t) => t.id)).toEqual(IDS);
    expect(r.tokens.map((t) => t.text).join('')).toBe(tok.decode(IDS));
  });

  it('capturing leaves the forward exactly as it was', async () => {
    const x = tf.tensor2d([IDS], undefined, 'int32');
    const capture: ForwardCapture = { attention: [], residual: [] };
    const plain = tf.tidy(() => model.hidden(x));
    const seen = tf.tidy(() => model.hidden(x, { capture }));
    expect(maxAbsDiff(await plain.data(), await seen.data())).toBe(0);
    expect(capture.attention).toHaveLength(cfg.nLayer);
    expect(capture.residual).toHaveLength(cfg.nLayer + 1);
    // the last residual through the final LayerNorm is the top hidden state itself
    const top = tf.tidy(() => model.finalNorm(capture.residual[cfg.nLayer]!));
    expect(maxAbsDiff(await plain.data(), await top.data())).toBe(0);
    tf.dispose([x, plain, seen, top, ...capture.attention, ...capture.residual]);
  });

  it("the logit lens' last layer is the model's own next-token argmax", async () => {
    const r = await inspectForward(model, tok, IDS, { topK: 3 });
    expect(r.lens).toHaveLength(cfg.nLayer + 1);
    const logits = await ownLogits(IDS);
    const V = cfg.vocabSize;
    r.lens[cfg.nLayer]!.forEach((guesses, t) => {
      expect(guesses).toHaveLength(3);
      expect(guesses[0]!.id).toBe(argmax(logits.subarray(t * V, (t + 1) * V)));
      expect(guesses[0]!.p).toBeGreaterThanOrEqual(guesses[1]!.p);
      expect(guesses[0]!.text).toBe(tok.decode([guesses[0]!.id]));
    });
    expect(r.classifier).toBeNull();
  });

  it("GPT-1's post-LayerNorm layout (no ln_f): the lens' last layer is still its prediction", async () => {
    const c1 = { ...cfg, layout: 'gpt1' as const };
    const m1 = new GPT(c1, randomWeights(c1, 12, 0.4));
    try {
      const r = await inspectForward(m1, tok, IDS);
      const x = tf.tensor2d([IDS], undefined, 'int32');
      const l = tf.tidy(() => m1.lmHead(m1.hidden(x)));
      const logits = (await l.data()) as Float32Array;
      tf.dispose([x, l]);
      const V = c1.vocabSize;
      r.lens[c1.nLayer]!.forEach((g, t) =>
        expect(g[0]!.id).toBe(argmax(logits.subarray(t * V, (t + 1) * V))),
      );
    } finally {
      m1.dispose();
    }
  });

  it.skipIf(!hasTorch)('attention, residual stream and lens equal PyTorch', async () => {
    const out = path.join(dir, 'model');
    await saveModelDir(out, model, tok);
    const py = spawnSync(PYTHON, [SCRIPT, out], { input: JSON.stringify({ ids: IDS }) });
    expect(py.status, py.stderr?.toString()).toBe(0);
    const ref = JSON.parse(py.stdout.toString()) as {
      attention: number[][][][];
      residual: number[][][];
      lens: number[][];
    };
    const r = await inspectForward(model, tok, IDS);
    expect(maxAbsDiff(r.attention.flat(3), ref.attention.flat(3))).toBeLessThan(1e-5);
    expect(r.lens.map((row) => row.map((g) => g[0]!.id))).toEqual(ref.lens);
    const x = tf.tensor2d([IDS], undefined, 'int32');
    const capture: ForwardCapture = { attention: [], residual: [] };
    tf.tidy(() => {
      model.hidden(x, { capture });
    });
    for (let l = 0; l <= cfg.nLayer; l++) {
      const mine = (await capture.residual[l]!.data()) as Float32Array;
      expect(maxAbsDiff(mine, ref.residual[l]!.flat())).toBeLessThan(1e-4);
    }
    tf.dispose([x, ...capture.attention, ...capture.residual]);
  });

  it("a classifier's per-label logit at the last layer is its own, LN_f(h[e]) W_y + b", async () => {
    const K = 3;
    const cw: ClassifierWeights = {
      task: 'classification',
      labels: ['a', 'b', 'c'],
      weight: randomFloats(cfg.nEmbd * K, 2, 0.5),
      bias: randomFloats(K, 3, 0.5),
      outputs: K,
    };
    const r = await inspectForward(model, tok, IDS, { classifier: cw });
    expect(r.classifier?.labels).toEqual(['a', 'b', 'c']);
    expect(r.classifier?.logits).toHaveLength(cfg.nLayer + 1);
    const x = tf.tensor2d([IDS], undefined, 'int32');
    const z = tf.tidy(() => {
      const h = model.hidden(x);
      const last = tf.slice(h, [IDS.length - 1, 0], [1, -1]);
      return tf.add(tf.matMul(last, tf.tensor2d(cw.weight, [cfg.nEmbd, K])), cw.bias);
    });
    expect(maxAbsDiff(r.classifier!.logits[cfg.nLayer]!, await z.data())).toBeLessThan(1e-5);
    tf.dispose([x, z]);
    // a task reading several sequences has no logit per label here
    const mc = await inspectForward(model, tok, IDS, {
      classifier: { ...cw, task: 'multiple-choice' },
    });
    expect(mc.classifier).toBeNull();
    expect(mc.unsupportedTask).toBe('multiple-choice');
  });

  it('refuses a prompt past its limit, saying what sets it', () => {
    expect(() => checkInspectLength(cfg, 25)).toThrow(
      /prompt: 25 tokens; looking inside takes at most 24 \(the model's context is 24 tokens\)/,
    );
    expect(() => checkInspectLength(cfg, 0)).toThrow(/no tokens/);
    const big = { ...cfg, blockSize: 1024, nLayer: 12, nHead: 12 };
    expect(() => checkInspectLength(big, 128)).not.toThrow();
    expect(() => checkInspectLength(big, 129)).toThrow(/at most 128 \(an inspection shows/);
    const xl = { ...cfg, blockSize: 1024, nLayer: 48, nHead: 25 };
    expect(() => checkInspectLength(xl, 60)).toThrow(/at most 59 \(its 1200 attention heads/);
  });
});

describe('principal components of the token embedding', () => {
  it('topEigen finds the largest eigenpairs, in order', () => {
    const n = 4;
    const s = new Float64Array(n * n);
    [1, 4, 9, 2].forEach((v, i) => (s[i * n + i] = v));
    const { vectors, values } = topEigen(s, n, 2);
    expect(values[0]).toBeCloseTo(9, 8);
    expect(values[1]).toBeCloseTo(4, 8);
    expect(Math.abs(vectors[0]![2]!)).toBeCloseTo(1, 6);
    expect(Math.abs(vectors[1]![1]!)).toBeCloseTo(1, 6);
  });

  it('components are orthonormal eigenvectors of the covariance, largest variance first', async () => {
    // rows with a known spread: std 5, 3, 1, 0.5 … along random directions
    const rows = 600;
    const cols = 8;
    const z = randomFloats(rows * cols, 9);
    const mix = randomFloats(cols * cols, 10);
    const x = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < cols; j++) {
        let v = 0.3;
        for (let i = 0; i < cols; i++) {
          v += z[r * cols + i]! * [5, 3, 1, 0.5, 0.4, 0.3, 0.2, 0.1][i]! * mix[i * cols + j]!;
        }
        x[r * cols + j] = v;
      }
    }
    const pca = await principalComponents(x, rows, cols, 2);
    const [a, b] = pca.vectors;
    const dot = (u: ArrayLike<number>, v: ArrayLike<number>) =>
      Array.from(u).reduce((acc, ui, i) => acc + ui * v[i]!, 0);
    expect(dot(a!, a!)).toBeCloseTo(1, 10);
    expect(dot(b!, b!)).toBeCloseTo(1, 10);
    expect(Math.abs(dot(a!, b!))).toBeLessThan(1e-9);
    expect(pca.variances[0]!).toBeGreaterThan(pca.variances[1]!);
    // the covariance in float64, here: Σ v = λ v, and no direction has more variance than v₁
    const mean = pca.mean;
    const cov = new Float64Array(cols * cols);
    for (let r = 0; r < rows; r++) {
      for (let i = 0; i < cols; i++) {
        for (let j = 0; j < cols; j++) {
          const d = (x[r * cols + i]! - mean[i]!) * (x[r * cols + j]! - mean[j]!);
          cov[i * cols + j] = cov[i * cols + j]! + d / rows;
        }
      }
    }
    const apply = (v: Float64Array) =>
      Array.from({ length: cols }, (_, i) => dot(cov.subarray(i * cols, (i + 1) * cols), v));
    pca.vectors.forEach((v, k) => {
      const sv = apply(v);
      const lambda = pca.variances[k]!;
      expect(
        maxAbsDiff(
          sv,
          Array.from(v, (vi) => vi * lambda),
        ),
      ).toBeLessThan(1e-3 * lambda);
    });
    for (let t = 0; t < 20; t++) {
      const u = Float64Array.from(randomFloats(cols, 100 + t));
      const norm = Math.sqrt(dot(u, u));
      const q = dot(u, apply(u)) / (norm * norm);
      expect(q).toBeLessThanOrEqual(pca.variances[0]! * (1 + 1e-6));
    }
    let trace = 0;
    for (let i = 0; i < cols; i++) trace += cov[i * cols + i]!;
    expect(pca.total).toBeCloseTo(trace, 2);
  });

  it('the embedding map draws the vocabulary and finds tokens by their text', async () => {
    const m = await embeddingMap(model, tok, 'Q'); // case-insensitive
    expect(m.points).toHaveLength(tok.vocabSize);
    expect(m.vocabSize).toBe(tok.vocabSize);
    expect(m.explained).toHaveLength(2);
    expect(m.explained[0]!).toBeGreaterThanOrEqual(m.explained[1]!);
    expect(m.explained[0]! + m.explained[1]!).toBeLessThanOrEqual(1 + 1e-6);
    expect(m.matches.map((p) => p.text)).toEqual(['q']);
    expect(m.points[m.matches[0]!.id]).toEqual(m.matches[0]);
    expect((await embeddingMap(model, tok)).matches).toEqual([]);
  });
});
