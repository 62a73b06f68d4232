/**
 * Data-parallel training on worker threads (src/engine/train/parallel): the worker count, a run
 * that repeats bit for bit for the same N and resumes bit for bit, the first step equal to one
 * worker's up to rounding, one-vs-two-worker loss curves that agree, fine-tuning on two workers,
 * the NaN guard and the stop latency. One worker is the one-thread path itself (resume.test.ts).
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrainEvent, TrainResult } from '../../../src/common/events';
import { initBackend } from '../../../src/engine/backend';
import { saveModelDir } from '../../../src/engine/checkpoint/modelDir';
import { finetune } from '../../../src/engine/finetune/finetune';
import { GPT } from '../../../src/engine/model/gpt';
import { AdamW } from '../../../src/engine/train/optimizer';
import {
  coresOfCpuinfo,
  defaultWorkers,
  physicalCores,
  resolveWorkers,
} from '../../../src/engine/train/parallel/cores';
import { FlatAdamW } from '../../../src/engine/train/parallel/adamw';
import { splitRange, workerSeed } from '../../../src/engine/train/parallel/pool';
import { openTrainer } from '../../../src/engine/train/parallel/trainer';
import { pretrain, readState, resume, type TrainConfig } from '../../../src/engine/train/pretrain';
import * as tf from '../../../src/engine/tf';
import { Rng } from '../../../src/engine/util/rng';
import { bundledEntry } from '../../../src/engine/util/sourceBundle';
import { probeModel } from '../../../src/server/features/runs';
import {
  charTokenizer,
  removeDir,
  sha256File,
  tempDir,
  TINY_MODEL,
  TINY_TRAIN,
  tinyConfig,
  TOY_TEXT,
  toyCorpus,
  writeText,
} from '../helpers';

let dir: string;
let corpus: string;
let n = 0;
const out = () => path.join(dir, `run${n++}`);

beforeAll(async () => {
  await initBackend('wasm');
  dir = await tempDir('gpt-studio-workers-');
  corpus = await writeText(dir, 'corpus.txt', toyCorpus(6));
});
afterAll(async () => {
  await removeDir(dir);
});

type Step = Extract<TrainEvent, { type: 'step' }>;

async function train(
  runDir: string,
  t: Partial<TrainConfig>,
  opts: { onEvent?: (e: TrainEvent) => void; signal?: AbortSignal } = {},
): Promise<{ steps: Step[]; events: TrainEvent[]; result: TrainResult }> {
  const events: TrainEvent[] = [];
  const result = await pretrain({
    corpus: [corpus],
    out: runDir,
    tokenizer: 'char',
    model: { ...TINY_MODEL, dropout: 0.1 },
    train: { ...TINY_TRAIN, ...t },
    onEvent: (e) => {
      events.push(e);
      opts.onEvent?.(e);
    },
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  return { steps: events.filter((e): e is Step => e.type === 'step'), events, result };
}

const modelHash = (runDir: string) => sha256File(path.join(runDir, 'model.safetensors'));

describe('the worker count', () => {
  it('counts physical cores from /proc/cpuinfo, not hyperthreads', () => {
    const cpu = (p: number, c: number) =>
      `processor\t: x\nphysical id\t: ${p}\ncore id\t\t: ${c}\n`;
    // 2 packages × 2 cores × 2 threads
    const text = [0, 0, 1, 1, 0, 0, 1, 1].map((c, i) => cpu(i < 4 ? 0 : 1, c)).join('\n');
    expect(coresOfCpuinfo(text)).toBe(4);
    expect(coresOfCpuinfo('processor\t: 0\nmodel name\t: virtual\n')).toBeUndefined();
    expect(physicalCores()).toBeGreaterThanOrEqual(1);
  });

  it('follows the backend and the batch', () => {
    expect(defaultWorkers('wasm')).toBe(physicalCores());
    expect(defaultWorkers('cpu')).toBe(physicalCores());
    for (const b of ['node', 'node-gpu', 'webgpu']) expect(defaultWorkers(b)).toBe(1);
    expect(resolveWorkers(undefined, 'wasm', 16)).toEqual({ workers: 1 });
    expect(resolveWorkers(4, 'wasm', 16)).toEqual({ workers: 4 });
    expect(resolveWorkers(4, 'node', 16)).toMatchObject({ workers: 1, note: /threads itself/ });
    expect(resolveWorkers(8, 'cpu', 3)).toMatchObject({ workers: 3, note: /at most 3 workers/ });
    expect(() => resolveWorkers(0, 'wasm', 16)).toThrow(/from 1 to 64/);
  });

  it('splits rows and elements into contiguous, balanced ranges with a seed per worker', () => {
    expect(splitRange(16, 2)).toEqual([
      [0, 8],
      [8, 16],
    ]);
    expect(splitRange(5, 3)).toEqual([
      [0, 1],
      [1, 3],
      [3, 5],
    ]);
    expect(workerSeed(123, 0)).toBe(123);
    expect(new Set([0, 1, 2, 3].map((k) => workerSeed(123, k))).size).toBe(4);
  });
});

describe('the worker script, from the sources', () => {
  it('is worker.ts bundled once into node_modules/.cache, with its inputs recorded', async () => {
    const entry = fileURLToPath(
      new URL('../../../src/engine/train/parallel/worker.ts', import.meta.url),
    );
    const file = await bundledEntry(entry);
    expect(file).toMatch(/node_modules\/\.cache\/gpt-studio\/worker-\w+\/worker\.mjs$/);
    const inputs = JSON.parse(readFileSync(path.join(path.dirname(file!), 'inputs.json'), 'utf8'));
    expect(Object.keys(inputs.files)).toEqual(
      expect.arrayContaining(['src/engine/train/parallel/worker.ts', 'src/engine/tf.ts']),
    );
    const text = readFileSync(file!, 'utf8');
    // its packages stay imports, resolved from the project's node_modules …
    expect(text).toMatch(/from "@tensorflow\/tfjs-core"/);
    // … and each module keeps its own source's import.meta.url
    expect(text).not.toContain('import.meta.url');
    expect(text).toContain(pathToFileURL(path.resolve('src/engine/backend/wasm.ts')).href);
    expect(await bundledEntry(entry)).toBe(file);
  });
});

describe("the workers' AdamW", () => {
  it("takes the tensor AdamW's steps exactly, clip and 2-D-only decay included", async () => {
    const opts = { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, gradClip: 1 };
    const rng = new Rng(3);
    const rand = (n: number, s: number) => Float32Array.from({ length: n }, () => rng.normal() * s);
    const shapes = [[3, 4], [4]];
    const start = [rand(12, 0.5), rand(4, 0.5)];
    const vars = new Map(shapes.map((s, i) => [`p${i}`, tf.variable(tf.tensor(start[i]!, s))]));
    const ref = new AdamW(vars, opts);
    const flat = Float32Array.from([...start[0]!, ...start[1]!]);
    const segments = [
      { lo: 0, hi: 12, decay: true },
      { lo: 12, hi: 16, decay: false },
    ];
    const mine = new FlatAdamW(opts, segments, 0, new Float32Array(16), new Float32Array(16));
    for (let step = 0; step < 4; step++) {
      const g = rand(16, step === 2 ? 5 : 0.3); // step 2 is clipped
      const grads = new Map([
        ['p0', tf.tensor(g.slice(0, 12), [3, 4])],
        ['p1', tf.tensor(g.slice(12), [4])],
      ]);
      const norm = AdamW.norm(grads);
      const n = (await norm.data())[0]!;
      ref.step(grads, norm, 1e-2);
      mine.step(flat, g, n, 1e-2);
      tf.dispose([norm, ...grads.values()]);
    }
    const want = [...(await vars.get('p0')!.data()), ...(await vars.get('p1')!.data())];
    // float32, in the same order of operations: the same numbers
    expect([...flat]).toEqual(want);
    ref.dispose();
    tf.dispose([...vars.values()]);
  });
});

describe('pretraining on two workers', () => {
  let straight: Awaited<ReturnType<typeof train>>;
  beforeAll(async () => {
    straight = await train(out(), { steps: 8, workers: 2 });
  }, 60_000);

  it('repeats bit for bit for the same N, records N, and learns', async () => {
    expect(straight.events).toContainEqual(
      expect.objectContaining({ type: 'log', message: expect.stringMatching(/2 workers/) }),
    );
    expect((await readState(straight.result.runDir)).train.workers).toBe(2);
    const again = await train(out(), { steps: 8, workers: 2 });
    expect(again.steps.map((s) => [s.trainLoss, s.gradNorm])).toEqual(
      straight.steps.map((s) => [s.trainLoss, s.gradNorm]),
    );
    expect(modelHash(again.result.runDir)).toBe(modelHash(straight.result.runDir));
    expect(straight.steps.at(-1)!.trainLoss).toBeLessThan(straight.steps[0]!.trainLoss);
  });

  it('after a stop at step 4, resume continues bit for bit on the same N', async () => {
    const ac = new AbortController();
    const runDir = out();
    const first = await train(
      runDir,
      { steps: 8, workers: 2 },
      { signal: ac.signal, onEvent: (e) => e.type === 'step' && e.step === 4 && ac.abort() },
    );
    expect(first.result).toMatchObject({ step: 4, stopped: 'cancelled' });
    expect(await readState(runDir)).toMatchObject({ step: 4, adamT: 4 });
    const events: TrainEvent[] = [];
    await resume({ run: runDir, onEvent: (e) => events.push(e) });
    const steps = events.filter((e): e is Step => e.type === 'step');
    expect(steps.map((s) => s.step)).toEqual([5, 6, 7, 8]);
    expect(steps.map((s) => [s.trainLoss, s.gradNorm])).toEqual(
      straight.steps.slice(4).map((s) => [s.trainLoss, s.gradNorm]),
    );
    expect(modelHash(runDir)).toBe(modelHash(straight.result.runDir));
    expect(sha256File(path.join(runDir, 'checkpoint-8', 'optimizer.safetensors'))).toBe(
      sha256File(path.join(straight.result.runDir, 'checkpoint-8', 'optimizer.safetensors')),
    );
  });

  it('stops within a second of an abort and saves that step', async () => {
    const ac = new AbortController();
    const runDir = out();
    let abortedAt = 0;
    const first = await train(
      runDir,
      { steps: 100_000, evalEvery: 0, sampleEvery: 0, saveEvery: 0, workers: 2 },
      {
        signal: ac.signal,
        onEvent: (e) => {
          if (e.type === 'step' && e.step === 3) {
            setTimeout(() => {
              abortedAt = performance.now();
              ac.abort();
            }, 20);
          }
        },
      },
    );
    expect(performance.now() - abortedAt).toBeLessThan(1000);
    expect(first.result.stopped).toBe('cancelled');
    const at = first.result.step;
    expect(first.events.at(-1)).toMatchObject({ type: 'checkpoint', step: at });
    expect(await readState(runDir)).toMatchObject({ step: at, status: 'cancelled', adamT: at });
  });

  it('stops at a NaN loss with the message and the last good checkpoint, as on one thread', async () => {
    const runDir = out();
    const err = await train(runDir, {
      steps: 6,
      lr: 1e30,
      warmup: 0,
      minLr: 1e30,
      saveEvery: 1,
      workers: 2,
    }).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    const m = /The (loss|gradient) became (NaN|infinite) at step (\d+)/.exec(
      (err as Error).message,
    );
    expect(m).not.toBeNull();
    const failedAt = Number(m![3]);
    expect((await readState(runDir)).status).toBe('failed');
    const saved = await readState(path.join(runDir, `checkpoint-${failedAt - 1}`));
    expect(saved.step).toBe(failedAt - 1);
  });
});

describe('one worker against two', () => {
  const data = Int32Array.from(charTokenizer().encode(toyCorpus(6)));
  const config = tinyConfig({ vocabSize: charTokenizer().vocabSize, nLayer: 1, nEmbd: 32 });
  const t = { ...TINY_TRAIN, batchSize: 8, lr: 3e-3 };

  /** `steps` steps of the same model, batches and schedule on `workers` workers: the losses. */
  async function curve(workers: number, steps: number): Promise<number[]> {
    const model = GPT.init(config, 5);
    const opt = new AdamW(model.params, {
      beta1: 0.9,
      beta2: 0.99,
      eps: 1e-8,
      weightDecay: 0.1,
      gradClip: 1,
    });
    const trainer = await openTrainer(model, opt, workers, 'wasm');
    const rng = new Rng(11);
    const losses: number[] = [];
    try {
      for (let s = 0; s < steps; s++) {
        const r = await trainer.step(data, rng, t, s, t.lr);
        losses.push(r.loss);
      }
    } finally {
      await trainer.close();
      model.dispose();
      opt.dispose();
    }
    return losses;
  }

  it('the first loss matches to rounding, and the train loss agrees over 300 steps', async () => {
    const steps = 300;
    const [one, two] = [await curve(1, steps), await curve(2, steps)];
    // the same weights and rows: the mean over the two halves is the whole batch's mean
    expect(Math.abs(two[0]! - one[0]!)).toBeLessThan(1e-5);
    const windows = (xs: number[]) =>
      Array.from({ length: steps / 50 }, (_, w) => xs.slice(w * 50, w * 50 + 50)).map(
        (ys) => ys.reduce((a, b) => a + b, 0) / ys.length,
      );
    const [w1, w2] = [windows(one), windows(two)];
    expect(w1[5]!).toBeLessThan(w1[0]! - 0.5); // it learns
    // within noise: every 50-step mean within 0.02 nats (the summation order differs, so the
    // curves part after a few steps, as two seeds of float rounding would)
    for (let w = 0; w < w1.length; w++) expect(Math.abs(w2[w]! - w1[w]!)).toBeLessThan(0.02);
  });
});

describe('fine-tuning on two workers', () => {
  it('takes the same first step as one worker and learns the task', async () => {
    const alphabet = 'abcdefghijklmnopqrstuvwxyz ';
    const tok = charTokenizer(alphabet);
    const base = path.join(dir, 'ft-base');
    const model = GPT.init(
      tinyConfig({ vocabSize: tok.vocabSize, blockSize: 24, nEmbd: 32, nHead: 2, nLayer: 1 }),
      1,
    );
    await saveModelDir(base, model, tok);
    model.dispose();
    const rng = new Rng(1);
    const lines = Array.from({ length: 120 }, () => {
      const pos = rng.next() < 0.5;
      const letters = pos ? 'abcde' : 'vwxyz';
      const text = Array.from({ length: 3 + rng.int(6) }, () => letters[rng.int(5)]).join('');
      return JSON.stringify({ sentence: text, sentiment: pos ? 'positive' : 'negative' });
    });
    const data = await writeText(dir, 'ft.jsonl', lines.join('\n') + '\n');
    const run = async (workers: number) => {
      const steps: Array<{ loss: number; l1: number; l2: number }> = [];
      const r = await finetune({
        model: base,
        task: 'classification',
        columns: { text: 'sentence', label: 'sentiment' },
        data,
        workers,
        settings: {
          lr: 3e-3,
          batchSize: 16,
          epochs: 3,
          warmup: 0.05,
          valFraction: 0.2,
          clfDropout: 0,
          seed: 3,
        },
        onEvent: (e) => e.type === 'finetune.step' && steps.push(e),
      });
      return { r, steps };
    };
    const one = await run(1);
    const two = await run(2);
    expect(two.steps).toHaveLength(one.steps.length);
    // no dropout: the first step sees the same weights and examples, so the same losses
    for (const k of ['loss', 'l1', 'l2'] as const) {
      expect(Math.abs(two.steps[0]![k] - one.steps[0]![k])).toBeLessThan(1e-5);
      // and the same update, up to rounding
      expect(Math.abs(two.steps[1]![k] - one.steps[1]![k])).toBeLessThan(1e-4);
    }
    expect(two.r.outcome).toBe('completed');
    expect(two.r.metrics.accuracy).toBeGreaterThanOrEqual(0.9);
  });
});

describe("the wizard's probe", () => {
  it('times steps on the workers asked for', async () => {
    const tokDir = path.join(dir, 'probe-tok');
    await charTokenizer(TOY_TEXT).save(tokDir);
    const r = await probeModel({
      shards: [corpus],
      tokenizerDir: tokDir,
      model: { ...TINY_MODEL },
      train: { batchSize: 4, workers: 2 },
      steps: 3,
      signal: new AbortController().signal,
      onStep: () => {},
    });
    expect(r).toMatchObject({ type: 'probe.result', steps: 3, workers: 2 });
    expect(r.tokensPerSecond).toBeGreaterThan(0);
  });
});
