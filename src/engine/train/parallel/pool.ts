/**
 * Data-parallel training on N worker threads (./worker.ts), each a replica of the model on a
 * backend of its own. The main thread draws the batch as the one-thread path does and hands each
 * worker its rows; the workers write their gradients into a SharedArrayBuffer and sum them in
 * worker order (so a run repeats exactly for a given N). Each worker then applies AdamW to the
 * parameters it owns, with the global norm, and shares their new values through the shared
 * weights. The main thread's own model (and optimizer) is refreshed from those when it
 * evaluates, samples or saves.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import * as tf from '../../tf';
import type { TrainConfig } from '../../../common/defaults';
import type { MlmMasking } from '../../finetune/batch';
import type { Encoded } from '../../finetune/encode';
import type { Task } from '../../finetune/tasks';
import type { GPTConfig } from '../../model/config';
import { bundledEntry } from '../../util/sourceBundle';
import type { Rng } from '../../util/rng';
import { sampleLmRows, type MaskSpec } from '../mlm';
import type { AdamW, AdamWOptions } from '../optimizer';
import { resolveWorkers } from './cores';
import {
  offsetsOf,
  ownership,
  STOP,
  type FinetuneSlice,
  type Layout,
  type LmMicro,
  type Reply,
  type Request,
  type WorkerInit,
} from './protocol';

export interface PoolOptions {
  /** The backend every worker initialises: the main thread's ('wasm' or 'cpu'). */
  backend: string;
  workers: number;
  config: GPTConfig;
  /** The main thread's variables, in the optimizer's order: the replicas start from their values. */
  vars: Map<string, tf.Variable>;
  /** Fine-tuning: the classifier head's outputs. */
  classifier?: { outputs: number };
  optimizer: AdamWOptions;
  /** An optimizer whose moments and step count the replicas start from (a resumed run). */
  resumeFrom?: AdamW;
}

/** The share of a batch's targets (those ≥ 0) in y[from, to): a masked-LM's masked tokens. */
function targetShare(y: Int32Array, from: number, to: number): number {
  let all = 0;
  let part = 0;
  y.forEach((v, i) => {
    if (v < 0) return;
    all++;
    if (i >= from && i < to) part++;
  });
  return all > 0 ? part / all : (to - from) / y.length;
}

/** The dropout seed of a worker's slice: worker 0 keeps the step's own. */
export function workerSeed(seed: number, index: number): number {
  return index === 0 ? seed : (seed ^ Math.imul(index, 0x9e3779b1)) >>> 0;
}

/** [0, n) cut into `parts` contiguous ranges whose sizes differ by at most one. */
export function splitRange(n: number, parts: number): Array<[number, number]> {
  return Array.from({ length: parts }, (_, k) => [
    Math.floor((k * n) / parts),
    Math.floor(((k + 1) * n) / parts),
  ]);
}

/** The worker thread's entry: the TypeScript one through tsx, or the bundled build's. */
export function workerScript(): URL | null {
  const here = import.meta.url;
  const fromSource = here.endsWith('.ts');
  const name = fromSource ? 'boot.mjs' : 'trainWorker.js';
  for (const dir of fromSource ? ['./'] : ['./', '../']) {
    const url = new URL(dir + name, here);
    if (url.protocol === 'file:' && existsSync(fileURLToPath(url))) return url;
  }
  return null;
}

/** The workers a run gets, with a note when that is not what was asked for. */
export function planWorkers(
  requested: number | undefined,
  backend: string,
  rows: number,
): { workers: number; note?: string } {
  const plan = resolveWorkers(requested, backend, rows);
  if (plan.workers > 1 && !workerScript()) {
    return { workers: 1, note: 'the training worker script is missing from this build: 1 worker' };
  }
  return plan;
}

interface Pending {
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
}

/** One worker thread and the reply it owes. */
class Thread {
  private pending: Pending | null = null;
  /** Replies that came before anyone asked for them. */
  private early: Reply[] = [];
  private failure: Error | null = null;

  constructor(
    readonly index: number,
    readonly worker: Worker,
  ) {
    worker.on('message', (r: Reply) => {
      if (this.pending) this.settle((p) => p.resolve(r));
      else this.early.push(r);
    });
    worker.on('error', (err) => this.fail(err));
    worker.on('exit', (code) =>
      this.fail(new Error(`training worker ${index} stopped (exit code ${code})`)),
    );
    // a worker's console output goes to stderr, so the CLI's JSON on stdout stays clean
    worker.stdout.on('data', (d: Buffer) => process.stderr.write(d));
  }

  private settle(f: (p: Pending) => void) {
    const p = this.pending;
    this.pending = null;
    if (p) f(p);
  }

  private fail(err: Error) {
    this.failure ??= err;
    this.settle((p) => p.reject(err));
  }

  /** The next reply (the first is 'ready'), as a rejection when it is an error. */
  next(): Promise<Reply> {
    const early = this.early.shift();
    const reply = early
      ? Promise.resolve(early)
      : this.failure
        ? Promise.reject(this.failure)
        : new Promise<Reply>((resolve, reject) => {
            this.pending = { resolve, reject };
          });
    return reply.then((r) => {
      if (r.op !== 'error') return r;
      const err = new Error(r.message);
      err.name = r.name;
      throw err;
    });
  }

  request(req: Request): Promise<Reply> {
    const reply = this.next();
    if (!this.failure) this.worker.postMessage(req);
    return reply;
  }
}

export class TrainPool {
  private readonly layout: Layout;
  private readonly offsets: number[];
  private readonly total: number;
  private readonly params: Float32Array;
  private readonly control: Int32Array;
  private closed = false;

  private constructor(
    private readonly threads: Thread[],
    private readonly vars: Map<string, tf.Variable>,
    params: SharedArrayBuffer,
    control: SharedArrayBuffer,
  ) {
    this.layout = { names: [...vars.keys()], shapes: [...vars.values()].map((v) => v.shape) };
    ({ offsets: this.offsets, total: this.total } = offsetsOf(this.layout));
    this.params = new Float32Array(params);
    this.control = new Int32Array(control);
  }

  get workers(): number {
    return this.threads.length;
  }

  /** Starts the workers and waits until each holds its replica. */
  static async start(o: PoolOptions): Promise<TrainPool> {
    const found = workerScript();
    if (!found) throw new Error('the training worker script is missing from this build');
    // from the sources: one bundled file if esbuild is there, else tsx in each thread
    const bundled = found.pathname.endsWith('.mjs')
      ? await bundledEntry(fileURLToPath(new URL('./worker.ts', found)))
      : null;
    const script = bundled ? pathToFileURL(bundled) : found;
    const layout: Layout = {
      names: [...o.vars.keys()],
      shapes: [...o.vars.values()].map((v) => v.shape),
    };
    const { offsets, total } = offsetsOf(layout);
    const flatten = async <B extends ArrayBufferLike>(
      src: Map<string, tf.Tensor | Float32Array>,
      out: Float32Array<B>,
    ) => {
      for (const [i, name] of layout.names.entries()) {
        const t = src.get(name)!;
        out.set(t instanceof Float32Array ? t : ((await t.data()) as Float32Array), offsets[i]!);
      }
      return out;
    };
    const params = new SharedArrayBuffer(total * 4);
    await flatten(o.vars, new Float32Array(params));
    let moments: WorkerInit['moments'];
    if (o.resumeFrom) {
      const { m, v } = await o.resumeFrom.state();
      moments = {
        m: await flatten(m, new Float32Array(total)),
        v: await flatten(v, new Float32Array(total)),
        t: o.resumeFrom.t,
      };
    }
    const grads = new SharedArrayBuffer(o.workers * total * 4);
    const sum = new SharedArrayBuffer(total * 4);
    const control = new SharedArrayBuffer(4);
    const threads = Array.from({ length: o.workers }, (_, index) => {
      const init: WorkerInit = {
        backend: o.backend,
        index,
        workers: o.workers,
        config: o.config,
        layout,
        ...(o.classifier ? { classifier: o.classifier } : {}),
        optimizer: o.optimizer,
        params,
        ...(moments ? { moments } : {}),
        grads,
        sum,
        control,
      };
      return new Thread(index, new Worker(script, { workerData: init, stdout: true }));
    });
    const pool = new TrainPool(threads, o.vars, params, control);
    try {
      await pool.each(() => null);
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  /**
   * Sends each worker its request (or, for null, only waits for its next reply) and waits for
   * every reply; the first failure is thrown once all have answered.
   */
  private async each(req: (index: number) => Request | null): Promise<Reply[]> {
    const settled = await Promise.allSettled(
      this.threads.map((th) => {
        const r = req(th.index);
        return r ? th.request(r) : th.next();
      }),
    );
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    return settled.map((s) => (s as PromiseFulfilledResult<Reply>).value);
  }

  /** Sets the stop flag while `signal` aborts during the call. */
  private async stoppable<R>(signal: AbortSignal | undefined, f: () => Promise<R>): Promise<R> {
    Atomics.store(this.control, STOP, signal?.aborted ? 1 : 0);
    const stop = () => Atomics.store(this.control, STOP, 1);
    signal?.addEventListener('abort', stop, { once: true });
    try {
      return await f();
    } finally {
      signal?.removeEventListener('abort', stop);
    }
  }

  /**
   * One pretraining step, as trainStep takes it: gradAccum batches drawn from `rng` on this
   * thread, each split by rows over the workers, the loss their mean weighted by rows (a
   * masked-LM's by masked tokens, so that it is the mean over the whole batch's, as on one thread).
   */
  async lmStep(
    data: Int32Array,
    rng: Rng,
    t: Pick<TrainConfig, 'batchSize' | 'gradAccum'>,
    blockSize: number,
    seedOf: (micro: number) => number,
    lr: number,
    signal?: AbortSignal,
    mask: MaskSpec | null = null,
  ): Promise<{ loss: number; gradNorm: number; aborted: boolean }> {
    const B = t.batchSize;
    const ranges = splitRange(B, this.workers);
    const micros: LmMicro[][] = ranges.map(() => []);
    const shares: number[][] = [];
    for (let micro = 0; micro < t.gradAccum; micro++) {
      const { x, y } = sampleLmRows(data, B, blockSize, rng, mask);
      const seed = seedOf(micro);
      const share = ranges.map(([a, b]) =>
        mask ? targetShare(y, a * blockSize, b * blockSize) : (b - a) / B,
      );
      shares.push(share);
      ranges.forEach(([a, b], k) =>
        micros[k]!.push({
          x: x.slice(a * blockSize, b * blockSize),
          y: y.slice(a * blockSize, b * blockSize),
          rows: b - a,
          seed: workerSeed(seed, k),
          scale: share[k]! / t.gradAccum,
        }),
      );
    }
    const replies = await this.stoppable(signal, () =>
      this.each((k) => ({ op: 'lm', micros: micros[k]!, blockSize })),
    );
    if (replies.some((r) => r.op === 'stopped') || signal?.aborted) {
      return { loss: NaN, gradNorm: NaN, aborted: true };
    }
    let lossSum = 0;
    for (let micro = 0; micro < t.gradAccum; micro++) {
      replies.forEach((r, k) => {
        lossSum += shares[micro]![k]! * (r as Extract<Reply, { op: 'lm' }>).losses[micro]!;
      });
    }
    const loss = lossSum / t.gradAccum;
    return { loss, gradNorm: await this.reduceAndApply(lr, loss), aborted: false };
  }

  /**
   * One fine-tuning step on a batch of examples: split over the workers, L2 weighted by examples
   * and L1 by predicted tokens, so the summed gradient is the whole batch's.
   */
  async finetuneStep(
    items: readonly Encoded[],
    task: Task,
    s: { lambda: number; clfDropout: number },
    seed: number,
    lr: number,
    masking: MlmMasking | null = null,
  ): Promise<{ loss: number; l1: number; l2: number; gradNorm: number }> {
    const ranges = splitRange(items.length, this.workers);
    const tokens = (xs: readonly Encoded[]) =>
      xs.reduce((n, e) => n + e.sequences.reduce((m, q) => m + Math.max(q.length - 1, 0), 0), 0);
    const allTokens = Math.max(tokens(items), 1);
    const slices = ranges.map(([a, b], k): FinetuneSlice | null => {
      if (b === a) return null;
      const part = items.slice(a, b);
      return {
        task,
        sequences: part.map((e) => e.sequences),
        labels: part.map((e) => e.example.label),
        lambda: s.lambda,
        clfDropout: s.clfDropout,
        seed: workerSeed(seed, k),
        l2Scale: (b - a) / items.length,
        l1Scale: tokens(part) / allTokens,
        masking,
      };
    });
    const replies = await this.each((k) => ({ op: 'finetune', slice: slices[k]! }));
    let l1 = 0;
    let l2 = 0;
    replies.forEach((r, k) => {
      const slice = slices[k];
      if (!slice || r.op !== 'finetune') return;
      l1 += slice.l1Scale * r.l1;
      l2 += slice.l2Scale * r.l2;
    });
    const loss = s.lambda === 0 ? l2 : l2 + s.lambda * l1;
    return { loss, l1, l2, gradNorm: await this.reduceAndApply(lr, loss) };
  }

  /**
   * Sums the regions (each worker its own parameters' elements), takes the global norm from
   * their Σ g² in worker order, then each worker applies AdamW to its parameters.
   */
  private async reduceAndApply(lr: number, loss: number): Promise<number> {
    const replies = await this.each(() => ({ op: 'reduce' }));
    let squares = 0;
    for (const r of replies) squares += (r as Extract<Reply, { op: 'reduce' }>).sumSquares;
    // float32, as the one-thread path computes it: a norm beyond float32 is infinite there too
    const gradNorm = Math.fround(Math.sqrt(squares));
    await this.each(() => ({ op: 'apply', lr, loss, gradNorm }));
    return gradNorm;
  }

  /** Copies the shared weights into the main thread's variables (and the moments into `opt`). */
  async syncTo(opt?: AdamW): Promise<void> {
    const sizes = this.layout.shapes.map((s) => s.reduce((a, b) => a * b, 1));
    const unflatten = (flat: Float32Array) =>
      new Map(
        this.layout.names.map((n, i) => [
          n,
          flat.slice(this.offsets[i]!, this.offsets[i]! + sizes[i]!),
        ]),
      );
    for (const [name, values] of unflatten(this.params)) {
      const v = this.vars.get(name)!;
      tf.tidy(() => v.assign(tf.tensor(values, v.shape)));
    }
    if (!opt) return;
    const replies = await this.each(() => ({ op: 'moments' }));
    const m = new Float32Array(this.total);
    const v = new Float32Array(this.total);
    const owners = ownership(this.layout, this.workers);
    replies.forEach((r, k) => {
      if (r.op !== 'moments') throw new Error(`training worker ${k} answered ${r.op}`);
      const lo = this.offsets[owners[k]![0]] ?? this.total;
      m.set(r.m, lo);
      v.set(r.v, lo);
    });
    const t = (replies[0] as Extract<Reply, { op: 'moments' }>).t;
    opt.load(unflatten(m), unflatten(v), t);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.threads.map((th) => th.worker.terminate()));
  }
}
