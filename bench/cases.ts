/**
 * The bench cases: what each one measures on our side, with the same shapes and settings as the
 * PyTorch peer (../shared/bench/torch_gpt.py), and the targets they are held to.
 *
 * Every case runs in its own child process (see run.ts), so `peakRssMB` is that case's alone.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { GPT1_FINETUNE } from '../src/common/finetune';
import * as tf from '../src/engine/tf';
import { initBackend, type BackendPreference } from '../src/engine/backend';
import type { GPTConfig } from '../src/engine/model/config';
import { generateTokens } from '../src/engine/generate';
import { disposeCache } from '../src/engine/model/attention';
import { GPT } from '../src/engine/model/gpt';
import { CharTokenizer } from '../src/engine/tokenizer/index';
import { splitTokens } from '../src/engine/train/data';
import { AdamW } from '../src/engine/train/optimizer';
import {
  backendRunsWorkers,
  defaultWorkers,
  physicalCores,
  resolveWorkers,
} from '../src/engine/train/parallel/cores';
import { openTrainer } from '../src/engine/train/parallel/trainer';
import { evaluate, trainStep } from '../src/engine/train/pretrain';
import { learningRate } from '../src/engine/train/schedule';
import { Rng } from '../src/engine/util/rng';
import { benchBpeTrain, DEFAULT_CORPUS } from './bpe';

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The peer's CONFIGS: A is nanoGPT-ish tiny, B is nanoGPT's shakespeare_char. */
export const SHAPES = {
  A: { vocab: 65, block: 64, nLayer: 4, nHead: 4, nEmbd: 128, batch: 16 },
  B: { vocab: 65, block: 256, nLayer: 6, nHead: 6, nEmbd: 384, batch: 8 },
} as const;
export type ShapeName = keyof typeof SHAPES;

/** The peer's model: pre-LN GPT-2, exact (erf) GELU as F.gelu, LayerNorm eps 1e-5, dropout 0. */
export function peerConfig(shape: ShapeName, vocab: number = SHAPES[shape].vocab): GPTConfig {
  const s = SHAPES[shape];
  return {
    vocabSize: vocab,
    blockSize: s.block,
    nLayer: s.nLayer,
    nHead: s.nHead,
    nEmbd: s.nEmbd,
    dropout: 0,
    layerNormEpsilon: 1e-5,
    activation: 'gelu',
    bias: true,
  };
}

/** The peer's optimizer: AdamW betas 0.9/0.99, eps 1e-8 (torch default), wd 0.1 on 2-D, clip 1. */
const ADAMW = { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, gradClip: 1 };

/** The `learn` recipe (also the peer's `learn`): warm-up = steps / 10, cosine to lr / 10. */
export const LEARN = {
  steps: 300,
  lr: 1e-3,
  minLr: 1e-4,
  warmup: 30,
  valFraction: 0.1,
  /** The peer's estimate: mean of 40 random val batches of batch 16 × block 64. */
  evalIters: 40,
  corpusBytes: 1_000_000,
};

export type Kind =
  | 'train'
  | 'generate'
  | 'bpe'
  | 'learn'
  | 'gpt2'
  | 'finetune'
  | 'workers'
  | 'learnWorkers'
  | 'memory'
  | 'llama'
  | 'gpt2xl';

export interface Check {
  /** What is compared: 'ratio', 'peakRssMB', 'seconds', 'valLossDiff'. */
  what: string;
  op: '>=' | '<=' | '<';
  target: number;
  value: number | null;
  /** null when the value is unknown (e.g. the peer was skipped). */
  ok: boolean | null;
}

export interface CaseSpec {
  name: string;
  kind: Kind;
  shape?: ShapeName;
  /** In the default set (everything but `learn`). */
  byDefault: boolean;
  /** Arguments for torch_gpt.py, or undefined when the peer has no such case. */
  peerArgs?: (corpusFile: string) => string[];
  /** Ratio (ours / torch) to reach, for the speed cases. */
  ratioTarget?: number;
  memoryTargetMB?: number;
  secondsTarget?: number;
  valLossTolerance?: number;
  /** Speed-up of 2 workers over 1 to reach (the workers scaling case). */
  scalingTarget?: number;
  /** Largest difference of 50-step mean train losses, 1 worker vs N (learn-workers). */
  lossAgreement?: number;
  describe: string;
}

export const CASES: CaseSpec[] = [
  {
    name: 'train-A',
    kind: 'train',
    shape: 'A',
    byDefault: true,
    peerArgs: () => ['bench', 'A'],
    ratioTarget: 0.5,
    describe: 'training tokens/s, 4×128, block 64, batch 16; median of 10 steps after 3 warm-up',
  },
  {
    name: 'train-B',
    kind: 'train',
    shape: 'B',
    byDefault: true,
    peerArgs: () => ['bench', 'B'],
    ratioTarget: 0.4,
    memoryTargetMB: 2048,
    describe: 'training tokens/s, 6×384, block 256, batch 8; median of 10 steps after 3 warm-up',
  },
  {
    name: 'train-A-workers',
    kind: 'workers',
    shape: 'A',
    byDefault: true,
    scalingTarget: 1.7,
    describe:
      'train-A tokens/s on 1, 2, … N data-parallel workers (N: --workers, default the physical cores); speed-up over 1',
  },
  {
    name: 'generate-A',
    kind: 'generate',
    shape: 'A',
    byDefault: true,
    peerArgs: () => ['generate', 'A'],
    ratioTarget: 1.0,
    describe: 'generation tokens/s, 100 tokens, batch 1, KV cache (shape A)',
  },
  {
    name: 'generate-B',
    kind: 'generate',
    shape: 'B',
    byDefault: true,
    peerArgs: () => ['generate', 'B'],
    ratioTarget: 1.0,
    describe: 'generation tokens/s, 100 tokens, batch 1, KV cache (shape B)',
  },
  {
    name: 'bpe-train',
    kind: 'bpe',
    byDefault: true,
    secondsTarget: 60,
    describe: 'byte-level BPE, 8k vocab, on resources/samples/austen.txt (chars/s)',
  },
  {
    name: 'learn',
    kind: 'learn',
    shape: 'A',
    byDefault: false,
    peerArgs: (corpus) => ['learn', corpus, String(LEARN.steps)],
    valLossTolerance: 0.08,
    describe: 'char-level val loss after 300 steps on the first 1 MB of austen.txt (shape A)',
  },
  {
    name: 'learn-workers',
    kind: 'learnWorkers',
    shape: 'A',
    byDefault: false,
    lossAgreement: 0.05,
    describe:
      'the learn recipe (300 steps, shape A) on 1 worker and on N (--workers, default the physical cores): train loss per 50 steps of each',
  },
  {
    name: 'generate-gpt2-124M',
    kind: 'gpt2',
    byDefault: true,
    describe:
      'GPT-2 124M imported from the folder GPT_STUDIO_GPT2_DIR names (skipped when unset): import seconds, then generation tokens/s, 50 tokens, greedy, KV cache',
  },
  {
    name: 'generate-124M',
    kind: 'llama',
    byDefault: true,
    ratioTarget: 0.8,
    describe:
      'GPT-2 124M (real shape, random weights) generation tokens/s: 128 greedy tokens after 32, ' +
      'batch 1, KV cache, vs llama.cpp (node-llama-cpp) on the GGUF f16 the app exports',
  },
  {
    name: 'prefill-124M',
    kind: 'llama',
    byDefault: true,
    describe:
      'GPT-2 124M prefill tokens/s of a 512-token prompt (and scoring it) vs llama.cpp prompt ' +
      'processing on the same GGUF f16',
  },
  {
    name: 'gpt2-xl',
    kind: 'gpt2xl',
    byDefault: false,
    describe:
      'gpt2-xl (1.5B, the real shape and official layout, random weights; a 6.4 GB folder built ' +
      'once under .cache/bench): import seconds, load seconds with q8 weights, 32 greedy tokens/s ' +
      '(≥ 2), peak RSS',
  },
  {
    name: 'memory-12x640',
    kind: 'memory',
    byDefault: true,
    describe:
      'the tiny preset widened to 12 × 640 (BPE vocabulary), batch 1, on wasm: the heap after two ' +
      'training steps and an evaluation against the training-memory estimate (heap ≤ estimate < 2 × heap)',
  },
  {
    name: 'finetune-sentiment',
    kind: 'finetune',
    byDefault: false,
    describe:
      'GPT-1 fine-tuning of the bundled sample model (resources/models/austen-tiny) on ' +
      'resources/samples/sentiment-imdb.jsonl with GPT-1 settings: val accuracy from pretrained ' +
      'and from random init, with λ = 0.5 and λ = 0, and the time taken',
  },
];

export function findCase(name: string): CaseSpec {
  const c = CASES.find((x) => x.name === name);
  if (!c) throw new Error(`unknown case "${name}" (cases: ${CASES.map((x) => x.name).join(', ')})`);
  return c;
}

/** What one case measured on our side (in the child). */
export interface OurResult {
  name: string;
  backend: string;
  tokensPerSecond?: number;
  charsPerSecond?: number;
  seconds?: number;
  /** Each timed step / run, in ms (speed cases). */
  samplesMs?: number[];
  valLoss?: number;
  trainLoss?: number;
  vocab?: number;
  vocabSize?: number;
  steps?: number;
  peakRssMB: number;
  notes?: string[];
  /** generate-124M: the greedy tokens, compared with llama.cpp's. */
  tokens?: number[];
  /** generate-124M, prefill-124M: tokens/s with the weights held as f16, q8 and f32. */
  byWeights?: Record<string, number>;
  /** The case's own pass/fail checks (memory-12x640). */
  checks?: Check[];
  /** The data-parallel workers a training case ran on. */
  workers?: number;
  /** learn-workers: the largest difference of 50-step mean train losses, 1 worker vs N. */
  trainLossDiff?: number;
  /** train-A-workers: tokens/s on each worker count, and the speed-up over 1 worker. */
  scaling?: Array<{ workers: number; tokensPerSecond: number; speedup: number }>;
  /** finetune-sentiment: each variant's accuracy, macro-F1 and time. */
  finetune?: Array<{
    init: string;
    lambda: number;
    accuracy: number;
    macroF1: number;
    seconds: number;
  }>;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

export function peakRssMB(): number {
  // maxRSS is in kilobytes.
  return Math.round(process.resourceUsage().maxRSS / 1024);
}

/** Random token stream long enough that every batch is a fresh random window. */
function randomTokens(n: number, vocab: number, seed: number): Int32Array {
  const rng = new Rng(seed);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.int(vocab);
  return out;
}

/**
 * Training throughput: the engine's own step (sample, forward, backward, clip, AdamW) on this
 * thread, or on `workers` data-parallel workers, each taking its share of the batch.
 */
async function benchTrain(
  shape: ShapeName,
  backend: string,
  workers = 1,
  timed = 10,
): Promise<OurResult> {
  const s = SHAPES[shape];
  const model = GPT.init(peerConfig(shape), 1);
  const opt = new AdamW(model.params, ADAMW);
  const trainer = await openTrainer(model, opt, workers, backend);
  const data = randomTokens(s.batch * (s.block + 1) * 64, s.vocab, 1);
  const rng = new Rng(7);
  const times: number[] = [];
  const sync = model.p('ln_f.bias');
  try {
    for (let i = 0; i < 3 + timed; i++) {
      const t0 = performance.now();
      const r = await trainer.step(
        data,
        rng,
        { batchSize: s.batch, gradAccum: 1, seed: 1 },
        i,
        1e-3,
      );
      // the step has read the loss and the norm; also wait for the update to land (GPU backends).
      await sync.data();
      if (i >= 3) times.push(performance.now() - t0);
      if (!Number.isFinite(r.loss)) throw new Error(`train-${shape}: loss ${r.loss} at step ${i}`);
    }
  } finally {
    await trainer.close();
  }
  const tps = (s.batch * s.block) / (median(times) / 1000);
  opt.dispose();
  model.dispose();
  return {
    name: `train-${shape}`,
    backend,
    tokensPerSecond: round(tps),
    samplesMs: times.map((t) => round(t)),
    peakRssMB: peakRssMB(),
    workers,
    notes: [`${workers} worker${workers === 1 ? '' : 's'}`],
  };
}

/**
 * train-A on 1, 2, … `most` workers, one after another, each the median of 30 steps after 3
 * warm-up (a longer look than train-A's 10: two threads feel every hiccup of either core):
 * tokens/s and the speed-up over 1.
 */
async function benchWorkers(
  shape: ShapeName,
  backend: string,
  most: number,
  log: (s: string) => void,
): Promise<OurResult> {
  const scaling: NonNullable<OurResult['scaling']> = [];
  for (let n = 1; n <= most; n++) {
    const r = await benchTrain(shape, backend, n, 30);
    const tps = r.tokensPerSecond!;
    const speedup = round(tps / (scaling[0]?.tokensPerSecond ?? tps), 2);
    scaling.push({ workers: n, tokensPerSecond: tps, speedup });
    log(`train-${shape}-workers: ${n} worker${n === 1 ? '' : 's'}: ${tps} tok/s (×${speedup})`);
  }
  const best = scaling.reduce((a, b) => (b.tokensPerSecond > a.tokensPerSecond ? b : a));
  return {
    name: `train-${shape}-workers`,
    backend,
    tokensPerSecond: best.tokensPerSecond,
    peakRssMB: peakRssMB(),
    workers: best.workers,
    scaling,
    notes: [
      'scaling: ' +
        scaling.map((x) => `${x.workers} → ${x.tokensPerSecond} tok/s (×${x.speedup})`).join(', '),
    ],
  };
}

/**
 * Generation throughput with the engine's sampler and KV cache. The tokenizer has 65 characters
 * plus <|endoftext|> as id 65, which the 65-logit model can never produce, so every run makes
 * all 100 tokens.
 */
async function benchGenerate(shape: ShapeName, backend: string): Promise<OurResult> {
  const s = SHAPES[shape];
  const model = GPT.init(peerConfig(shape), 1);
  const tok = CharTokenizer.fromCodePoints(Array.from({ length: s.vocab }, (_, i) => 32 + i));
  const n = 100;
  const run = async (seed: number): Promise<number> => {
    const it = generateTokens(model, tok, [0], {
      maxNewTokens: n,
      temperature: 1,
      topK: 0,
      topP: 1,
      seed,
      useCache: true,
    });
    let made = 0;
    for (;;) {
      const r = await it.next();
      if (r.done) break;
      made++;
    }
    return made;
  };
  await run(1); // warm-up, as the peer does
  const t0 = performance.now();
  const made = await run(2);
  const dt = performance.now() - t0;
  if (made !== n) throw new Error(`generate-${shape}: made ${made} tokens, expected ${n}`);
  model.dispose();
  const notes: string[] = [];
  if (s.block < n) {
    notes.push(
      `block ${s.block} < ${n} tokens: the engine re-windows to the last ${s.block >> 1} tokens ` +
        'when the context fills (one 32-token prefill); the peer instead keeps growing its cache',
    );
  }
  return {
    name: `generate-${shape}`,
    backend,
    tokensPerSecond: round(n / (dt / 1000)),
    samplesMs: [round(dt)],
    peakRssMB: peakRssMB(),
    ...(notes.length ? { notes } : {}),
  };
}

async function benchBpe(): Promise<OurResult> {
  const r = await benchBpeTrain(DEFAULT_CORPUS, 8000);
  return {
    name: 'bpe-train',
    backend: 'js',
    tokensPerSecond: r.charsPerSecond,
    charsPerSecond: r.charsPerSecond,
    seconds: r.seconds,
    vocabSize: r.vocabSize,
    peakRssMB: peakRssMB(),
  };
}

/** The first `LEARN.corpusBytes` bytes of austen.txt, cut back to a whole UTF-8 character. */
export async function learnCorpusText(): Promise<string> {
  const buf = await fs.readFile(DEFAULT_CORPUS);
  let end = Math.min(buf.length, LEARN.corpusBytes);
  while (end > 0 && end < buf.length && (buf[end]! & 0xc0) === 0x80) end--;
  return buf.subarray(0, end).toString('utf8');
}

/** Writes the learn corpus to a temp file for the peer (which reads a whole file). */
export async function writeLearnCorpus(): Promise<string> {
  const file = path.join(os.tmpdir(), `gpt-studio-bench-learn-${process.pid}.txt`);
  await fs.writeFile(file, await learnCorpusText());
  return file;
}

/**
 * The peer's `learn`, on the engine: char-level (sorted code points, as the peer's
 * sorted(set(text))), 90/10 split, train-A shapes, 300 steps of the lr 1e-3 → 1e-4 recipe, then
 * the mean loss of 40 random val batches of 16 × 64, as the peer estimates it.
 */
async function benchLearn(backend: string, log: (s: string) => void): Promise<OurResult> {
  const r = await learnRun(backend, log, 1, 'learn');
  const s = SHAPES.A;
  return {
    name: 'learn',
    backend,
    valLoss: round(r.valLoss, 4),
    trainLoss: round(r.losses.at(-1)!, 4),
    vocab: r.vocab,
    steps: LEARN.steps,
    seconds: round(r.seconds, 1),
    tokensPerSecond: round((LEARN.steps * s.batch * s.block) / r.seconds),
    peakRssMB: peakRssMB(),
  };
}

/** The `learn` recipe on `workers` workers: every step's train loss, the val loss, the time. */
async function learnRun(
  backend: string,
  log: (s: string) => void,
  workers: number,
  tag: string,
): Promise<{ losses: number[]; valLoss: number; seconds: number; vocab: number }> {
  const text = await learnCorpusText();
  const tok = CharTokenizer.fromCodePoints(Array.from(text, (ch) => ch.codePointAt(0)!));
  // The peer's vocabulary is the distinct characters only; <|endoftext|> (the last id) never
  // occurs in the text, so the model leaves it out and the two softmaxes are the same size.
  const vocab = tok.vocabSize - tok.specialTokens.size;
  const tokens = Int32Array.from(tok.encode(text));
  const splits = splitTokens(tokens, LEARN.valFraction);
  const s = SHAPES.A;
  const model = GPT.init(peerConfig('A', vocab), 1);
  const opt = new AdamW(model.params, ADAMW);
  const trainer = await openTrainer(model, opt, workers, backend);
  const rng = new Rng(1);
  const t = { batchSize: s.batch, gradAccum: 1, seed: 1 };
  const sched = { lr: LEARN.lr, minLr: LEARN.minLr, warmup: LEARN.warmup, steps: LEARN.steps };
  const t0 = performance.now();
  const losses: number[] = [];
  try {
    for (let step = 0; step < LEARN.steps; step++) {
      const r = await trainer.step(splits.train, rng, t, step, learningRate(step, sched));
      losses.push(r.loss);
      if (!Number.isFinite(r.loss)) throw new Error(`${tag}: loss ${r.loss} at step ${step + 1}`);
      if ((step + 1) % 50 === 0) {
        const sec = (performance.now() - t0) / 1000;
        log(
          `${tag}: step ${step + 1}/${LEARN.steps} train loss ${r.loss.toFixed(4)} (${sec.toFixed(0)} s)`,
        );
      }
    }
    await trainer.sync(false);
  } finally {
    await trainer.close();
  }
  const seconds = (performance.now() - t0) / 1000;
  const valLoss = await evaluate(
    model,
    splits.val,
    { batchSize: s.batch, evalIters: LEARN.evalIters, seed: 1 },
    s.block,
  );
  opt.dispose();
  model.dispose();
  return { losses, valLoss, seconds, vocab };
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * The `learn` recipe on 1 worker and on N (the same batches, drawn on the main thread): the train
 * loss of every 50-step window of each, and their largest difference, beside the step-to-step
 * spread of one worker's loss in its last window (the noise a single run shows).
 */
async function benchLearnWorkers(
  backend: string,
  most: number,
  log: (s: string) => void,
): Promise<OurResult> {
  const one = await learnRun(backend, log, 1, 'learn 1 worker');
  const many = await learnRun(backend, log, most, `learn ${most} workers`);
  const windows = (xs: number[]) =>
    Array.from({ length: Math.ceil(xs.length / 50) }, (_, i) =>
      mean(xs.slice(i * 50, i * 50 + 50)),
    );
  const [w1, wn] = [windows(one.losses), windows(many.losses)];
  const diff = Math.max(...w1.map((x, i) => Math.abs(x - wn[i]!)));
  const last = one.losses.slice(-50);
  const spread = Math.sqrt(mean(last.map((x) => (x - mean(last)) ** 2)));
  const s = SHAPES.A;
  const tps = (sec: number) => round((LEARN.steps * s.batch * s.block) / sec);
  return {
    name: 'learn-workers',
    backend,
    trainLoss: round(mean(many.losses.slice(-50)), 4),
    valLoss: round(many.valLoss, 4),
    trainLossDiff: Number(diff.toPrecision(3)),
    steps: LEARN.steps,
    seconds: round(one.seconds + many.seconds, 1),
    tokensPerSecond: tps(many.seconds),
    workers: most,
    peakRssMB: peakRssMB(),
    notes: [
      `train loss per 50 steps, 1 worker: ${w1.map((x) => x.toFixed(4)).join(' ')}`,
      `train loss per 50 steps, ${most} workers: ${wn.map((x) => x.toFixed(4)).join(' ')}`,
      `largest window difference ${diff.toExponential(2)} nats; one worker's step-to-step spread ` +
        `(std, last 50 steps) ${spread.toFixed(4)}`,
      `val loss: 1 worker ${one.valLoss.toFixed(4)}, ${most} workers ${many.valLoss.toFixed(4)}; ` +
        `${tps(one.seconds)} vs ${tps(many.seconds)} tok/s`,
    ],
  };
}

/**
 * GPT-1's ablation on the bundled sentiment set from the bundled sample model: the same fine-tune
 * (GPT-1 settings: lr 6.25e-5, batch 32, 3 epochs, warmup 0.2%, λ = 0.5) from the pretrained
 * weights and from random ones, with λ = 0.5 and λ = 0; 900 train / 100 val (seed 42).
 * GPT_STUDIO_BENCH_FINETUNE_MODEL points it at another model folder.
 */
async function benchFinetune(backend: string, log: (s: string) => void): Promise<OurResult> {
  const model =
    process.env.GPT_STUDIO_BENCH_FINETUNE_MODEL ??
    path.join(REPO_ROOT, 'resources/models/austen-tiny');
  const data = path.join(REPO_ROOT, 'resources/samples/sentiment-imdb.jsonl');
  const present = await fs
    .access(path.join(model, 'config.json'))
    .then(() => true)
    .catch(() => false);
  if (!present) {
    return {
      name: 'finetune-sentiment',
      backend,
      peakRssMB: peakRssMB(),
      notes: [
        `skipped: the sample model ${path.relative(REPO_ROOT, model)} is not present ` +
          '(build it with scripts/build-sample-model.sh)',
      ],
    };
  }
  const { ablation } = await import('../src/engine/finetune/ablation');
  const t0 = performance.now();
  const r = await ablation({
    model,
    task: 'classification',
    columns: { text: 'text', label: 'label' },
    data,
    // GPT-1's own rate and epochs, as documented (the size rule would pick a higher rate here)
    settings: { lr: GPT1_FINETUNE.lr, epochs: GPT1_FINETUNE.epochs },
    onEvent: (e) => {
      if (e.type === 'finetune.variant') log(`finetune: ${e.variant} (${e.index + 1}/${e.count})`);
      if (e.type === 'finetune.epoch')
        log(`finetune: ${e.variant} epoch ${e.epoch} val accuracy ${e.valAccuracy.toFixed(3)}`);
    },
  });
  const seconds = (performance.now() - t0) / 1000;
  const variants = r.variants.map((v) => ({
    init: v.init,
    lambda: v.lambda,
    accuracy: round(v.accuracy, 3),
    macroF1: round(v.macroF1, 3),
    seconds: round(v.elapsedMs / 1000, 1),
  }));
  return {
    name: 'finetune-sentiment',
    backend,
    seconds: round(seconds, 1),
    peakRssMB: peakRssMB(),
    finetune: variants,
    notes: variants.map(
      (v) =>
        `${v.init} init, λ = ${v.lambda}: val accuracy ${v.accuracy}, macro-F1 ${v.macroF1} (${v.seconds} s)`,
    ),
  };
}

/** Runs one case in this process (the child). */
export async function runCase(
  name: string,
  opts: { backend: BackendPreference; log: (s: string) => void; workers?: number },
): Promise<OurResult> {
  const spec = findCase(name);
  if (spec.kind === 'bpe') return benchBpe();
  if (spec.kind === 'gpt2' && !process.env[GPT2_ENV]) {
    return {
      name,
      backend: 'none',
      peakRssMB: peakRssMB(),
      notes: [
        `skipped: set ${GPT2_ENV} to a local Hugging Face gpt2 folder (config.json, model.safetensors, vocab.json + merges.txt)`,
      ],
    };
  }
  const report = await initBackend(opts.backend);
  const backend = report.name;
  switch (spec.kind) {
    case 'train': {
      const asked = opts.workers ?? defaultWorkers(backend);
      const { workers } = resolveWorkers(asked, backend, SHAPES[spec.shape!].batch);
      return benchTrain(spec.shape!, backend, workers);
    }
    case 'workers':
      if (!backendRunsWorkers(backend)) {
        return {
          name,
          backend,
          peakRssMB: peakRssMB(),
          notes: [`skipped: the ${backend} backend threads itself and trains on 1 worker`],
        };
      }
      return benchWorkers(spec.shape!, backend, opts.workers ?? physicalCores(), opts.log);
    case 'generate':
      return benchGenerate(spec.shape!, backend);
    case 'learn':
      return benchLearn(backend, opts.log);
    case 'learnWorkers':
      return benchLearnWorkers(
        backend,
        backendRunsWorkers(backend) ? Math.max(2, opts.workers ?? physicalCores()) : 1,
        opts.log,
      );
    case 'gpt2':
      return benchGpt2(process.env[GPT2_ENV]!, backend);
    case 'finetune':
      return benchFinetune(backend, opts.log);
    case 'memory':
      return (await import('./memory')).benchMemory(name, backend);
    case 'llama':
      return (await import('./gpt2Cases')).runGpt2Case(name, backend, opts.log);
    case 'gpt2xl':
      return (await import('./gpt2Cases')).runGpt2Xl(name, backend, opts.log);
  }
}

/** The environment variable naming a GPT-2 124M folder for `generate-gpt2-124M`. */
export const GPT2_ENV = 'GPT_STUDIO_GPT2_DIR';

/**
 * GPT-2 124M end to end: import the Hugging Face folder (checks every tensor, writes the engine's
 * folder), load it, then time 50 greedy tokens with the KV cache after a 5-token warm-up.
 */
async function benchGpt2(dir: string, backend: string): Promise<OurResult> {
  const { importModel } = await import('../src/engine/checkpoint/import');
  const { loadModelDir } = await import('../src/engine/checkpoint/modelDir');
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'gpt-studio-bench-gpt2-'));
  try {
    const t0 = performance.now();
    const imported = await importModel({ from: dir, out: path.join(tmp, 'gpt2') });
    const importSeconds = (performance.now() - t0) / 1000;
    const t1 = performance.now();
    const { model, tokenizer } = await loadModelDir(imported.out);
    const loadSeconds = (performance.now() - t1) / 1000;
    const prompt = tokenizer.encode('The meaning of life is');
    const run = async (n: number): Promise<number> => {
      const it = generateTokens(model, tokenizer, prompt, {
        maxNewTokens: n,
        temperature: 0,
        useCache: true,
        stop: [],
      });
      let made = 0;
      for (;;) {
        const r = await it.next();
        if (r.done) break;
        made++;
      }
      return made;
    };
    await run(5);
    const n = 50;
    const t2 = performance.now();
    const made = await run(n);
    const dt = performance.now() - t2;
    model.dispose();
    return {
      name: 'generate-gpt2-124M',
      backend,
      tokensPerSecond: round(made / (dt / 1000)),
      seconds: round(importSeconds, 1),
      samplesMs: [round(dt)],
      peakRssMB: peakRssMB(),
      notes: [
        `${imported.params.toLocaleString('en-US')} parameters; import ${round(importSeconds, 1)} s ` +
          `(${Math.round(imported.bytes / 2 ** 20)} MiB written), load ${round(loadSeconds, 1)} s, ` +
          `${made} tokens generated`,
      ],
    };
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

export interface KernelTime {
  kernel: string;
  calls: number;
  ms: number;
  share: number;
}

/** Profile entries that wrap other kernels (customGrad forwards). */
const WRAPPERS = new Set(['forward', 'unnamed scope']);

/** "[64,64] [64,64] [64,64]" → "[64,64]×3": runs of equal input shapes, counted. */
function compactShapes(shapes: string[]): string {
  const out: string[] = [];
  for (let i = 0; i < shapes.length;) {
    let j = i;
    while (j < shapes.length && shapes[j] === shapes[i]) j++;
    out.push(j - i > 2 ? `${shapes[i]}×${j - i}` : shapes.slice(i, j).join(' '));
    i = j;
  }
  return out.join(' ');
}

export interface Profile {
  case: string;
  backend: string;
  /** What was profiled, in words. */
  what: string;
  kernels: number;
  totalKernelMs: number;
  /** Time inside customGrad forwards, already counted in their inner kernels. */
  customGradForwardMs: number;
  wallMs: number;
  byKernel: KernelTime[];
  byKernelAndShape: KernelTime[];
}

/**
 * tf.profile of one step of a case, after warm-up: for train-A/B one training step (trainStep:
 * forward and the explicit backward of GPT.lossAndGrads, clip, AdamW); for generate-A/B one cached decoding
 * step (one token after a 50-token context) and its logits read-back. Kernel times are wall
 * times per kernel on wasm/cpu (the profiler waits for each), GPU timestamps on webgpu.
 */
export async function profileCase(
  name: string,
  backend: BackendPreference,
  top = 25,
): Promise<Profile> {
  const spec = findCase(name);
  if ((spec.kind !== 'train' && spec.kind !== 'generate') || !spec.shape) {
    throw new Error('--profile takes train-A, train-B, generate-A or generate-B');
  }
  const report = await initBackend(backend);
  const s = SHAPES[spec.shape];
  const model = GPT.init(peerConfig(spec.shape), 1);
  let info: Awaited<ReturnType<typeof tf.profile>>;
  let what: string;
  let wallMs: number;
  if (spec.kind === 'train') {
    const opt = new AdamW(model.params, ADAMW);
    const data = randomTokens(s.batch * (s.block + 1) * 8, s.vocab, 1);
    const rng = new Rng(7);
    const t = { batchSize: s.batch, gradAccum: 1, seed: 1 };
    for (let i = 0; i < 2; i++) await trainStep(model, opt, data, rng, t, i, 1e-3);
    const t1 = performance.now();
    info = await tf.profile(async () => {
      await trainStep(model, opt, data, rng, t, 2, 1e-3);
    });
    wallMs = performance.now() - t1;
    opt.dispose();
    what = `one training step, batch ${s.batch} × block ${s.block}`;
  } else {
    const context = 50;
    const prompt = tf.tensor2d(
      Array.from({ length: context }, (_, i) => i % s.vocab),
      [1, context],
      'int32',
    );
    const first = model.forwardCached(prompt, null, true);
    first.logits.dispose();
    const one = tf.tensor2d([1], [1, 1], 'int32');
    const decode = async () => {
      const out = model.forwardCached(one, first.cache, true);
      await out.logits.data();
      out.logits.dispose();
      disposeCache(out.cache);
    };
    for (let i = 0; i < 3; i++) await decode();
    const t1 = performance.now();
    info = await tf.profile(decode);
    wallMs = performance.now() - t1;
    disposeCache(first.cache);
    tf.dispose([prompt, one]);
    what = `one cached decoding step after ${context} tokens, batch 1`;
  }
  model.dispose();
  const byName = new Map<string, { calls: number; ms: number }>();
  const byShape = new Map<string, { calls: number; ms: number }>();
  let total = 0;
  let wrapperMs = 0;
  for (const k of info.kernels) {
    const ms = Number(await k.kernelTimeMs) || 0;
    // customGrad's forward is logged as a kernel of its own ('forward' while recording
    // gradients, 'unnamed scope' otherwise) around the kernels it runs, which are logged too:
    // count it apart, or the total would count those twice.
    if (WRAPPERS.has(k.name)) {
      wrapperMs += ms;
      continue;
    }
    total += ms;
    const shapes = compactShapes(k.inputShapes.map((x) => `[${x?.join(',') ?? ''}]`));
    for (const [map, key] of [
      [byName, k.name],
      [byShape, `${k.name} ${shapes}`],
    ] as const) {
      const a = map.get(key) ?? { calls: 0, ms: 0 };
      a.calls++;
      a.ms += ms;
      map.set(key, a);
    }
  }
  const rank = (m: Map<string, { calls: number; ms: number }>): KernelTime[] =>
    [...m.entries()]
      .sort((a, b) => b[1].ms - a[1].ms)
      .slice(0, top)
      .map(([kernel, v]) => ({
        kernel,
        calls: v.calls,
        ms: round(v.ms, 2),
        share: round(v.ms / (total || 1), 3),
      }));
  return {
    case: name,
    backend: report.name,
    what,
    kernels: info.kernels.filter((k) => !WRAPPERS.has(k.name)).length,
    totalKernelMs: round(total, 1),
    customGradForwardMs: round(wrapperMs, 1),
    wallMs: round(wallMs, 1),
    byKernel: rank(byName),
    byKernelAndShape: rank(byShape),
  };
}
