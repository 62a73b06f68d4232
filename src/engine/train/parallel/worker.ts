/**
 * A training worker thread: a replica of the model on a backend of its own, and AdamW for the
 * parameters it owns (./protocol.ts `ownership`). Each step it computes the gradient of its slice
 * of the batch into its region of the shared gradient buffer, sums its own parameters' gradients
 * over every region (in worker order, so the sum is the same on every run), and updates them in
 * the shared weights with AdamW (./adamw.ts), from which every worker refreshes its replica
 * before its next forward.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '../../tf';
import { initBackend, type BackendName } from '../../backend';
import { disposeBatch, makeBatch, trainingLayout } from '../../finetune/batch';
import { ClassifierHead, gpt1Objective } from '../../finetune/head';
import { activeHeapBackend, heapFloats } from '../../kernels/heap';
import { GPT } from '../../model/gpt';
import { FlatAdamW } from './adamw';
import {
  offsetsOf,
  ownership,
  sizesOf,
  STOP,
  type FinetuneSlice,
  type LmMicro,
  type Reply,
  type Request,
  type WorkerInit,
} from './protocol';

type Grads = Map<string, tf.Tensor>;

class Replica {
  private readonly model: GPT;
  private readonly head: ClassifierHead | null;
  private readonly vars = new Map<string, tf.Variable>();
  private readonly opt: FlatAdamW;
  private readonly names: string[];
  private readonly shapes: number[][];
  private readonly sizes: number[];
  private readonly offsets: number[];
  private readonly total: number;
  /** The parameters this worker updates: indices [first, end) of the layout … */
  private readonly own: [number, number];
  /** … and their elements [lo, hi) in the flat vectors. */
  private readonly lo: number;
  private readonly hi: number;
  private readonly params: Float32Array;
  private readonly all: Float32Array;
  private readonly region: Float32Array;
  private readonly sum: Float32Array;
  private readonly control: Int32Array;
  /** The shared weights were updated since this replica last read them. */
  private stale = false;

  constructor(private readonly init: WorkerInit) {
    ({ names: this.names, shapes: this.shapes } = init.layout);
    this.sizes = sizesOf(init.layout);
    ({ offsets: this.offsets, total: this.total } = offsetsOf(init.layout));
    this.own = ownership(init.layout, init.workers)[init.index]!;
    this.lo = this.offsets[this.own[0]] ?? this.total;
    this.hi = this.offsets[this.own[1]] ?? this.total;
    this.params = new Float32Array(init.params);
    this.all = new Float32Array(init.grads);
    this.region = this.all.subarray(init.index * this.total, (init.index + 1) * this.total);
    this.sum = new Float32Array(init.sum);
    this.control = new Int32Array(init.control);
    const flat = this.unflatten(this.params);
    this.model = new GPT(init.config, flat);
    this.head = init.classifier
      ? new ClassifierHead(init.config.nEmbd, init.classifier.outputs, {
          weight: flat.get('classifier.weight')!,
          bias: flat.get('classifier.bias')!,
        })
      : null;
    for (const name of this.names) this.vars.set(name, this.variable(name));
    const segments = this.ownedNames().map((_, j) => {
      const i = this.own[0] + j;
      const lo = this.offsets[i]!;
      return { lo, hi: lo + this.sizes[i]!, decay: this.shapes[i]!.length === 2 };
    });
    const { lo, hi } = this;
    const m = init.moments?.m.slice(lo, hi) ?? new Float32Array(hi - lo);
    const v = init.moments?.v.slice(lo, hi) ?? new Float32Array(hi - lo);
    this.opt = new FlatAdamW(init.optimizer, segments, lo, m, v);
    this.opt.t = init.moments?.t ?? 0;
  }

  private variable(name: string): tf.Variable {
    const v =
      this.model.params.get(name) ??
      (name === 'classifier.weight' ? this.head?.weight : undefined) ??
      (name === 'classifier.bias' ? this.head?.bias : undefined);
    if (!v) throw new Error(`worker ${this.init.index}: no parameter ${name}`);
    return v;
  }

  private ownedNames(): string[] {
    return this.names.slice(this.own[0], this.own[1]);
  }

  /** A flat vector as one copy per parameter, by name. */
  private unflatten(flat: Float32Array): Map<string, Float32Array> {
    return new Map(
      this.names.map((n, i) => [
        n,
        flat.slice(this.offsets[i]!, this.offsets[i]! + this.sizes[i]!),
      ]),
    );
  }

  /** Reads the updated shared weights into this replica. */
  private refresh(): void {
    if (!this.stale) return;
    // wasm copies a tensor's values into its heap; other backends may keep the array itself
    const copy = !activeHeapBackend();
    for (const [i, name] of this.names.entries()) {
      const off = this.offsets[i]!;
      const v = this.vars.get(name)!;
      const values = this.params.subarray(off, off + this.sizes[i]!);
      tf.tidy(() => v.assign(tf.tensor(copy ? values.slice() : values, v.shape)));
    }
    this.stale = false;
  }

  private get stopRequested(): boolean {
    return Atomics.load(this.control, STOP) !== 0;
  }

  async handle(req: Request): Promise<Reply> {
    switch (req.op) {
      case 'lm':
        this.refresh();
        return this.lm(req.micros, req.blockSize);
      case 'finetune':
        this.refresh();
        return this.finetune(req.slice);
      case 'reduce':
        return { op: 'reduce', sumSquares: this.reduce() };
      case 'apply':
        this.apply(req.lr, req.loss, req.gradNorm);
        return { op: 'apply' };
      case 'moments':
        return this.moments();
    }
  }

  /** Σ over the micro-batches of this worker's rows' gradients, each already scaled to its share. */
  private async lm(micros: LmMicro[], T: number): Promise<Reply> {
    let acc: Grads | null = null;
    const losses: number[] = [];
    try {
      for (const m of micros) {
        if (this.stopRequested) return { op: 'stopped' };
        const x = tf.tensor2d(m.x, [m.rows, T], 'int32');
        const y = tf.tensor2d(m.y, [m.rows, T], 'int32');
        let stopped = false;
        const r = await this.model
          .lossAndGrads(x, this.model.lmLoss(y, m.scale), {
            train: true,
            seed: m.seed,
            // a turn of the event loop between blocks, as on the main thread: V8's incremental
            // GC tasks run there (without it this thread's forward and backward were slower)
            between: async () => {
              await new Promise((r) => setImmediate(r));
              if (this.stopRequested) {
                stopped = true;
                throw new Error('stopped');
              }
            },
          })
          .catch((err: unknown) => {
            if (stopped) return null;
            throw err;
          })
          .finally(() => tf.dispose([x, y]));
        if (!r) return { op: 'stopped' };
        losses.push(((await r.loss.data()) as Float32Array)[0]!);
        r.loss.dispose();
        acc = accumulate(acc, r.grads);
      }
      await this.writeRegion(acc!);
      return { op: 'lm', losses };
    } finally {
      if (acc) tf.dispose([...acc.values()]);
    }
  }

  /** L3's gradient on this worker's examples, L2 and L1 scaled to their shares of the batch. */
  private async finetune(slice: FinetuneSlice | null): Promise<Reply> {
    if (!slice) {
      this.region.fill(0);
      return { op: 'finetune', loss: 0, l1: 0, l2: 0 };
    }
    const batch = makeBatch(
      slice.sequences,
      slice.labels,
      trainingLayout(this.model.config, slice.masking, slice.lambda, slice.seed),
    );
    const objective = gpt1Objective(this.model, this.head!, slice.task, batch, {
      lambda: slice.lambda,
      seed: slice.seed,
      clfDropout: slice.clfDropout,
      l2Scale: slice.l2Scale,
      l1Scale: slice.l1Scale,
    });
    const r = await this.model
      .lossAndGrads(batch.ids, objective, {
        train: true,
        seed: slice.seed,
        lengths: batch.lengths,
      })
      .finally(() => disposeBatch(batch));
    const { L1, L2 } = r.report;
    try {
      await this.writeRegion(r.grads);
      const [loss, l2, l1] = await Promise.all([r.loss.data(), L2!.data(), L1!.data()]);
      return { op: 'finetune', loss: loss[0]!, l1: l1[0]!, l2: l2[0]! };
    } finally {
      tf.dispose([r.loss, L1!, L2!, ...r.grads.values()]);
    }
  }

  private async writeRegion(grads: Grads): Promise<void> {
    for (const [i, name] of this.names.entries()) {
      const g = grads.get(name);
      if (!g) throw new Error(`worker ${this.init.index}: no gradient for ${name}`);
      const be = activeHeapBackend();
      const values = be ? heapFloats(be, g) : ((await g.data()) as Float32Array);
      this.region.set(values, this.offsets[i]!);
    }
  }

  /**
   * The owned elements of the sum, region 0 + region 1 + … in worker order, and their Σ g² (in
   * double precision, over the float32 sums AdamW will read).
   */
  private reduce(): number {
    const { lo, hi, total: P } = this;
    const regions = Array.from({ length: this.init.workers }, (_, k) =>
      this.all.subarray(k * P, (k + 1) * P),
    );
    return this.opt.sumRegions(regions, lo, hi, this.sum);
  }

  /**
   * AdamW on the owned parameters, in the shared weights, with the global norm (every worker
   * updates its own, so after all have answered every replica is stale).
   */
  private apply(lr: number, loss: number, gradNorm: number): void {
    if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) return;
    this.opt.step(this.params, this.sum, gradNorm, lr);
    this.stale = true;
  }

  /** The owned parameters' AdamW moments, flat over [lo, hi), and the step count. */
  private moments(): Reply {
    return { op: 'moments', m: this.opt.m.slice(), v: this.opt.v.slice(), t: this.opt.t };
  }
}

function accumulate(acc: Grads | null, g: Grads): Grads {
  if (!acc) return g;
  for (const [name, a] of acc) {
    acc.set(name, tf.add(a, g.get(name)!));
    tf.dispose([a, g.get(name)!]);
  }
  return acc;
}

/** The buffers a reply hands over rather than copies. */
function transferList(reply: Reply): ArrayBuffer[] {
  if (reply.op !== 'moments') return [];
  return [reply.m.buffer as ArrayBuffer, reply.v.buffer as ArrayBuffer];
}

function errorReply(err: unknown): Reply {
  const e = err as { name?: unknown; message?: unknown };
  return {
    op: 'error',
    name: typeof e?.name === 'string' ? e.name : 'Error',
    message: typeof e?.message === 'string' ? e.message : String(err),
  };
}

async function main(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('the training worker runs only as a worker thread');
  const init = workerData as WorkerInit;
  let replica: Replica;
  try {
    await initBackend(init.backend as BackendName);
    replica = new Replica(init);
  } catch (err) {
    port.postMessage(errorReply(err));
    return;
  }
  // one request at a time: the main thread waits for each reply before it sends the next
  port.on('message', (req: Request) => {
    replica.handle(req).then(
      (reply) => port.postMessage(reply, transferList(reply)),
      (err: unknown) => port.postMessage(errorReply(err)),
    );
  });
  port.postMessage({ op: 'ready' } satisfies Reply);
}

void main();
