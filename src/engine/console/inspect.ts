/**
 * Looking inside a model (the console's "Look inside" tab):
 *
 * - one forward pass over a prompt through the same `block` training runs (GPT.hidden with a
 *   capture), handing out every layer's attention probabilities and residual stream;
 * - the logit lens: each layer's residual stream read through the final LayerNorm and the tied LM
 *   head, softmax(LN_f(x_l) W_eᵀ), the top tokens per position;
 * - a fine-tuned classifier's logit per label from each layer's last-token state, LN_f(x_l) W_y + b;
 * - the token embedding W_e on its top two principal components (power iteration on the
 *   covariance), for a 2-D map of the vocabulary.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import {
  EMBEDDING_MAP_MATCHES,
  EMBEDDING_MAP_POINTS,
  LENS_TOP_K,
  inspectTokenLimit,
  type EmbeddingMap,
  type EmbeddingPoint,
  type InspectResult,
  type LensGuess,
} from '../../common/console';
import { openGpt2Weights, readHfConfig } from '../checkpoint/gpt2';
import type { GPTConfig } from '../model/config';
import type { ForwardCapture, GPT } from '../model/gpt';
import * as tf from '../tf';
import { DELIMITER_TOKEN, EXTRACT_TOKEN, START_TOKEN, type Tokenizer } from '../tokenizer/types';
import { Rng } from '../util/rng';
import { betweenBatches } from '../score';
import { tokenPiece } from './prompt';

type T2 = tf.Tensor2D;

/** A prompt too long (or empty) to inspect; the message says the limit and what sets it. */
export class InspectInputError extends Error {}

/** Throws unless `n` tokens can be inspected on a model of this config. */
export function checkInspectLength(config: GPTConfig, n: number): void {
  if (n < 1) throw new InspectInputError('prompt: it has no tokens; type something to look inside');
  const { max, by } = inspectTokenLimit(config);
  if (n <= max) return;
  const why = {
    context: `the model's context is ${config.blockSize} tokens`,
    cap: `an inspection shows at most ${max} tokens`,
    attention: `its ${config.nLayer * config.nHead} attention heads are shown whole`,
  }[by];
  throw new InspectInputError(
    `prompt: ${n} tokens; looking inside takes at most ${max} (${why}). Shorten the prompt.`,
  );
}

// ---------------------------------------------------------------------------------------------
// A fine-tuned classifier's head, read from its folder

export interface ClassifierWeights {
  task: string;
  labels: string[];
  /** W_y [C, K] row-major, and its bias [K]. */
  weight: Float32Array;
  bias: Float32Array;
  outputs: number;
}

/** The classifier head of a fine-tuned model folder, or null for a language model. */
export async function readClassifierWeights(dir: string): Promise<ClassifierWeights | null> {
  const configFile = path.join(dir, 'config.json');
  const raw = JSON.parse(await fs.readFile(configFile, 'utf8')) as {
    gpt_studio?: { task?: unknown };
    id2label?: Record<string, string>;
  };
  const task = raw.gpt_studio?.task;
  if (typeof task !== 'string') return null;
  const id2label = raw.id2label ?? {};
  const labels = Object.keys(id2label)
    .sort((a, b) => Number(a) - Number(b))
    .map((k) => String(id2label[k]));
  const f = await openGpt2Weights(
    path.join(dir, 'model.safetensors'),
    await readHfConfig(configFile),
  );
  try {
    const w = f.found.get('classifier.weight');
    const b = f.found.get('classifier.bias');
    if (!w || !b)
      throw new Error(`${dir}/model.safetensors: no classifier.weight / classifier.bias`);
    const weight = await f.reader.readFloat32(w);
    const bias = await f.reader.readFloat32(b);
    return { task, labels, weight, bias, outputs: bias.length };
  } finally {
    await f.close();
  }
}

/** Tasks whose classifier reads one sequence and gives a logit per label. */
const ONE_SEQUENCE_TASKS = ['classification', 'entailment'];

/**
 * The ids a model reads for `prompt`: as typed for a language model; framed as its fine-tuning
 * framed them for a classifier ([s] text [e]; entailment: [s] premise $ hypothesis [e], the
 * prompt's first line the premise).
 */
export function inspectIds(
  tokenizer: Tokenizer,
  prompt: string,
  classifier: ClassifierWeights | null,
): number[] {
  if (!classifier || !ONE_SEQUENCE_TASKS.includes(classifier.task)) return tokenizer.encode(prompt);
  const sp = tokenizer.specialTokens;
  const [s, d, e] = [START_TOKEN, DELIMITER_TOKEN, EXTRACT_TOKEN].map((t) => sp.get(t));
  if (s === undefined || d === undefined || e === undefined) {
    throw new Error(`the tokenizer lacks ${START_TOKEN}, ${DELIMITER_TOKEN} or ${EXTRACT_TOKEN}`);
  }
  if (classifier.task === 'classification') return [s, ...tokenizer.encode(prompt), e];
  const cut = prompt.indexOf('\n');
  const [premise, hypothesis] =
    cut < 0 ? [prompt, ''] : [prompt.slice(0, cut), prompt.slice(cut + 1)];
  return [s, ...tokenizer.encode(premise), d, ...tokenizer.encode(hypothesis), e];
}

// ---------------------------------------------------------------------------------------------
// One forward pass, looked inside

/** Probabilities as sent: 1e-7 is finer than any display, and keeps the reply small. */
const round7 = (v: number) => Math.round(v * 1e7) / 1e7;

/** [H·T·T] → [H][T][T]. */
function headsOf(data: Float32Array, heads: number, t: number): number[][][] {
  return Array.from({ length: heads }, (_, h) =>
    Array.from({ length: t }, (_, q) =>
      Array.from(data.subarray((h * t + q) * t, (h * t + q + 1) * t), round7),
    ),
  );
}

/**
 * The logit lens on residual streams [N, C] (rows of every layer): the top `k` tokens of
 * softmax(LN_f(x) W_eᵀ) per row, in chunks so the logits [chunk, V] stay small (16 MB). Between
 * chunks the event loop runs, so the host goes on answering (a generation streaming beside it)
 * while a large model is looked into.
 */
async function lensRows(
  model: GPT,
  x: T2,
  k: number,
): Promise<{ ids: Int32Array; p: Float32Array }> {
  const [n, c] = x.shape;
  const V = model.config.vocabSize;
  const chunk = Math.max(1, Math.floor(2 ** 22 / V));
  const ids = new Int32Array(n * k);
  const p = new Float32Array(n * k);
  for (let r = 0; r < n; r += chunk) {
    if (r > 0) await betweenBatches();
    const m = Math.min(chunk, n - r);
    const top = tf.tidy(() => {
      const logits = model.lmHead(model.finalNorm(tf.slice(x, [r, 0], [m, c])));
      const best = tf.topk(logits, k);
      // softmax of the top k alone: exp(logit − logsumexp over the vocabulary)
      const values = tf.exp(tf.sub(best.values, tf.logSumExp(logits, 1, true)));
      return { indices: best.indices, values };
    });
    ids.set((await top.indices.data()) as Int32Array, r * k);
    p.set((await top.values.data()) as Float32Array, r * k);
    tf.dispose([top.indices, top.values]);
  }
  return { ids, p };
}

/** LN_f(x_l[last]) W_y + b for each row's last-token state: [rows][K]. */
async function classifierLogitsByLayer(
  model: GPT,
  lastRows: T2,
  cw: ClassifierWeights,
): Promise<number[][]> {
  const z = tf.tidy(() => {
    const w = tf.tensor2d(cw.weight, [model.config.nEmbd, cw.outputs]);
    return tf.add(tf.matMul(model.finalNorm(lastRows), w), tf.tensor1d(cw.bias)) as T2;
  });
  const data = (await z.data()) as Float32Array;
  z.dispose();
  return Array.from({ length: lastRows.shape[0] }, (_, l) =>
    Array.from(data.subarray(l * cw.outputs, (l + 1) * cw.outputs)),
  );
}

/**
 * Runs the model once over `ids` and shows what happened inside: attention, logit lens and (for
 * a classifier) its logit per label at each layer. Throws InspectInputError past the length limit.
 */
export async function inspectForward(
  model: GPT,
  tokenizer: Tokenizer,
  ids: number[],
  opts: { classifier?: ClassifierWeights | null; topK?: number } = {},
): Promise<InspectResult> {
  const { nLayer, nHead } = model.config;
  checkInspectLength(model.config, ids.length);
  const T = ids.length;
  const k = Math.min(opts.topK ?? LENS_TOP_K, model.config.vocabSize);
  const cw = opts.classifier ?? null;
  const capture: ForwardCapture = { attention: [], residual: [] };
  const idx = tf.tensor2d([ids], [1, T], 'int32');
  let rows: T2 | null = null;
  let last: T2 | null = null;
  try {
    tf.tidy(() => {
      model.hidden(idx, { capture });
    });
    const attention: number[][][][] = [];
    for (const p of capture.attention) {
      attention.push(headsOf((await p.data()) as Float32Array, nHead, T));
    }
    rows = tf.concat(capture.residual) as T2; // [(L+1)·T, C]
    const lens = await lensRows(model, rows, k);
    const guess = (r: number, j: number): LensGuess => {
      const id = lens.ids[r * k + j]!;
      return { id, text: tokenPiece(tokenizer, id), p: round7(lens.p[r * k + j]!) };
    };
    const lensTable = Array.from({ length: nLayer + 1 }, (_, l) =>
      Array.from({ length: T }, (_, t) => Array.from({ length: k }, (_, j) => guess(l * T + t, j))),
    );
    let classifier: InspectResult['classifier'] = null;
    const oneSequence = cw !== null && ONE_SEQUENCE_TASKS.includes(cw.task);
    if (cw && oneSequence) {
      const r = rows;
      last = tf.tidy(() =>
        tf.concat(
          Array.from({ length: nLayer + 1 }, (_, l) => tf.slice(r, [l * T + T - 1, 0], [1, -1])),
        ),
      ) as T2;
      const logits = await classifierLogitsByLayer(model, last, cw);
      classifier = { task: cw.task, labels: cw.labels, logits };
    }
    return {
      tokens: ids.map((id) => ({ id, text: tokenPiece(tokenizer, id) })),
      nLayer,
      nHead,
      maxTokens: inspectTokenLimit(model.config).max,
      attention,
      lens: lensTable,
      classifier,
      ...(cw && !oneSequence ? { unsupportedTask: cw.task } : {}),
    };
  } finally {
    tf.dispose([idx, ...capture.attention, ...capture.residual]);
    if (rows) rows.dispose();
    if (last) last.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// Principal components

export interface Components {
  /** Unit vectors [cols], largest variance first. */
  vectors: Float64Array[];
  /** The variance along each (eigenvalues of the covariance). */
  variances: number[];
  /** The total variance (the covariance's trace). */
  total: number;
  mean: Float64Array;
}

/** S v for a symmetric S [n, n] row-major. */
function matVec(s: Float64Array, v: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let acc = 0;
    const row = i * n;
    for (let j = 0; j < n; j++) acc += s[row + j]! * v[j]!;
    out[i] = acc;
  }
  return out;
}

const dot = (a: Float64Array, b: Float64Array) => a.reduce((acc, x, i) => acc + x * b[i]!, 0);

/** Modified Gram–Schmidt in place, in order (a vector that vanishes is redrawn). */
function orthonormalize(vs: Float64Array[], rng: Rng): void {
  for (let i = 0; i < vs.length; i++) {
    const v = vs[i]!;
    for (let tries = 0; ; tries++) {
      for (let j = 0; j < i; j++) {
        const d = dot(v, vs[j]!);
        for (let x = 0; x < v.length; x++) v[x] = v[x]! - d * vs[j]![x]!;
      }
      const norm = Math.sqrt(dot(v, v));
      if (norm > 1e-12 || tries > 3) {
        for (let x = 0; x < v.length; x++) v[x] = v[x]! / (norm || 1);
        break;
      }
      for (let x = 0; x < v.length; x++) v[x] = rng.normal();
    }
  }
}

/**
 * The top `k` eigenvectors of a symmetric positive semi-definite S [n, n] by orthogonal
 * (block power) iteration, with two extra vectors to speed up convergence; values largest first.
 */
export function topEigen(
  s: Float64Array,
  n: number,
  k: number,
  opts: { iterations?: number; tolerance?: number; seed?: number } = {},
): { vectors: Float64Array[]; values: number[] } {
  const kk = Math.min(k, n);
  const m = Math.min(n, kk + 2);
  const rng = new Rng(opts.seed ?? 1);
  let q: Float64Array[] = Array.from({ length: m }, () =>
    Float64Array.from({ length: n }, () => rng.normal()),
  );
  orthonormalize(q, rng);
  const tol = opts.tolerance ?? 1e-10;
  let values = new Array<number>(kk).fill(0);
  for (let it = 0; it < (opts.iterations ?? 300); it++) {
    const z = q.map((v) => matVec(s, v, n));
    // the Rayleigh quotients: once they stop moving, so has the top-k subspace (near-equal
    // eigenvalues leave the vectors turning inside it, which a picture of it does not mind)
    const next = z.slice(0, kk).map((zi, i) => dot(q[i]!, zi));
    const settled = next.every((v, i) => Math.abs(v - values[i]!) <= tol * Math.abs(v));
    values = next;
    orthonormalize(z, rng);
    const change = Math.max(...z.slice(0, kk).map((v, i) => 1 - Math.abs(dot(v, q[i]!))));
    q = z;
    if (change < tol || settled) break;
  }
  const pairs = q.map((v) => ({ v, value: dot(v, matVec(s, v, n)) }));
  pairs.sort((a, b) => b.value - a.value);
  return {
    vectors: pairs.slice(0, kk).map((p) => p.v),
    values: pairs.slice(0, kk).map((p) => p.value),
  };
}

/** The top `k` principal components of the rows of x [rows, cols] (row-major). */
export async function principalComponents(
  x: Float32Array,
  rows: number,
  cols: number,
  k = 2,
): Promise<Components> {
  const mean = new Float64Array(cols);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) mean[c] = mean[c]! + x[r * cols + c]!;
  for (let c = 0; c < cols; c++) mean[c] = mean[c]! / rows;
  // Σ = Xcᵀ Xc / rows on the backend (the one large product), then symmetrised in float64
  const cov = tf.tidy(() => {
    const t = tf.tensor2d(x.subarray(0, rows * cols), [rows, cols]);
    const centered = tf.sub(t, tf.tensor2d(Float32Array.from(mean), [1, cols]));
    return tf.div(tf.matMul(centered, centered, true, false), rows);
  });
  const raw = (await cov.data()) as Float32Array;
  cov.dispose();
  const s = new Float64Array(cols * cols);
  for (let i = 0; i < cols; i++) {
    for (let j = 0; j < cols; j++) s[i * cols + j] = (raw[i * cols + j]! + raw[j * cols + i]!) / 2;
  }
  let total = 0;
  for (let i = 0; i < cols; i++) total += s[i * cols + i]!;
  const { vectors, values } = topEigen(s, cols, k);
  return { vectors, variances: values, total, mean };
}

// ---------------------------------------------------------------------------------------------
// The embedding map

/** The most rows the covariance is computed on (evenly spread over the vocabulary). */
const COVARIANCE_ROWS = 4096;

interface MapBasis {
  /** Every token's coordinates on the two components. */
  xs: Float32Array;
  ys: Float32Array;
  texts: string[];
  explained: number[];
}

/** Per model object: a model reloaded (retrained, another format) is a new object. */
const bases = new WeakMap<GPT, Promise<MapBasis>>();

/** Rows `rows` of x [*, cols] evenly spread, at most `max` of them. */
function spreadRows(x: Float32Array, rows: number, cols: number, max: number): Float32Array {
  if (rows <= max) return x.subarray(0, rows * cols);
  const out = new Float32Array(max * cols);
  for (let i = 0; i < max; i++) {
    const r = Math.floor((i * rows) / max);
    out.set(x.subarray(r * cols, (r + 1) * cols), i * cols);
  }
  return out;
}

async function computeBasis(model: GPT, tokenizer: Tokenizer): Promise<MapBasis> {
  const C = model.config.nEmbd;
  const rows = Math.min(tokenizer.vocabSize, model.config.vocabSize);
  const wte = await model.tokenEmbedding();
  const sample = spreadRows(wte, rows, C, COVARIANCE_ROWS);
  const pca = await principalComponents(sample, sample.length / C, C, 2);
  const xs = new Float32Array(rows);
  const ys = new Float32Array(rows);
  const [c0, c1] = pca.vectors;
  for (let id = 0; id < rows; id++) {
    let x = 0;
    let y = 0;
    for (let j = 0; j < C; j++) {
      const v = wte[id * C + j]! - pca.mean[j]!;
      x += v * c0![j]!;
      if (c1) y += v * c1[j]!;
    }
    xs[id] = x;
    ys[id] = y;
  }
  const texts = Array.from({ length: rows }, (_, id) => tokenPiece(tokenizer, id));
  const total = pca.total || 1;
  return { xs, ys, texts, explained: pca.variances.map((v) => v / total) };
}

function basisOf(model: GPT, tokenizer: Tokenizer): Promise<MapBasis> {
  let b = bases.get(model);
  if (!b) {
    b = computeBasis(model, tokenizer);
    bases.set(model, b);
    b.catch(() => bases.delete(model));
  }
  return b;
}

const pointOf = (b: MapBasis, id: number): EmbeddingPoint => ({
  id,
  text: b.texts[id]!,
  x: b.xs[id]!,
  y: b.ys[id]!,
});

/**
 * W_e on its top two principal components (of the tokenizer's vocabulary, at most
 * COVARIANCE_ROWS of its tokens evenly spread): the first EMBEDDING_MAP_POINTS tokens, and those
 * whose text contains `query`.
 */
export async function embeddingMap(
  model: GPT,
  tokenizer: Tokenizer,
  query = '',
): Promise<EmbeddingMap> {
  const b = await basisOf(model, tokenizer);
  const rows = b.texts.length;
  const points = Array.from({ length: Math.min(rows, EMBEDDING_MAP_POINTS) }, (_, id) =>
    pointOf(b, id),
  );
  const q = query.toLowerCase();
  const matches: EmbeddingPoint[] = [];
  for (let id = 0; q && id < rows && matches.length < EMBEDDING_MAP_MATCHES; id++) {
    if (b.texts[id]!.toLowerCase().includes(q)) matches.push(pointOf(b, id));
  }
  return { points, matches, vocabSize: rows, explained: b.explained };
}
