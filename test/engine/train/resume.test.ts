/**
 * Runs on disk: seeded reproducibility, resume = uninterrupted (bit for bit on wasm), stopping
 * with an AbortSignal, and the checkpoint layout of a run directory.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrainEvent, TrainResult } from '../../../src/common/events';
import { initBackend } from '../../../src/engine/backend';
import {
  loadGpt2Weights,
  readHfConfig,
  saveGpt2Weights,
} from '../../../src/engine/checkpoint/gpt2';
import { loadModelDir } from '../../../src/engine/checkpoint/modelDir';
import { readSafetensors } from '../../../src/engine/checkpoint/safetensors';
import {
  pretrain,
  readState,
  resume,
  evaluate,
  type TrainConfig,
} from '../../../src/engine/train/pretrain';
import { loadTokens } from '../../../src/engine/train/data';
import {
  listFiles,
  removeDir,
  sha256File,
  tempDir,
  TINY_MODEL,
  TINY_TRAIN,
  toyCorpus,
  writeText,
} from '../helpers';

let dir: string;
let corpus: string;
let n = 0;
const out = () => path.join(dir, `run${n++}`);

beforeAll(async () => {
  await initBackend('wasm');
  dir = await tempDir();
  corpus = await writeText(dir, 'corpus.txt', toyCorpus(6));
});
afterAll(async () => {
  await removeDir(dir);
});

interface Recorded {
  events: TrainEvent[];
  result: TrainResult;
  steps: Array<Extract<TrainEvent, { type: 'step' }>>;
  evals: Array<Extract<TrainEvent, { type: 'eval' }>>;
}

function recorder(onEvent?: (e: TrainEvent) => void) {
  const events: TrainEvent[] = [];
  return {
    events,
    sink: (e: TrainEvent) => {
      events.push(e);
      onEvent?.(e);
    },
    done: (result: TrainResult): Recorded => ({
      events,
      result,
      steps: events.filter((e): e is Extract<TrainEvent, { type: 'step' }> => e.type === 'step'),
      evals: events.filter((e): e is Extract<TrainEvent, { type: 'eval' }> => e.type === 'eval'),
    }),
  };
}

async function train(
  runDir: string,
  train: Partial<TrainConfig> = {},
  opts: { onEvent?: (e: TrainEvent) => void; signal?: AbortSignal; dropout?: number } = {},
): Promise<Recorded> {
  const rec = recorder(opts.onEvent);
  const result = await pretrain({
    corpus: [corpus],
    out: runDir,
    tokenizer: 'char',
    model: { ...TINY_MODEL, dropout: opts.dropout ?? 0.1 },
    train: { ...TINY_TRAIN, ...train },
    onEvent: rec.sink,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  return rec.done(result);
}

async function resumeRun(
  runDir: string,
  steps?: number,
  opts: { onEvent?: (e: TrainEvent) => void; signal?: AbortSignal } = {},
): Promise<Recorded> {
  const rec = recorder(opts.onEvent);
  const result = await resume({
    run: runDir,
    ...(steps !== undefined ? { steps } : {}),
    onEvent: rec.sink,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  return rec.done(result);
}

/** The fields of a metrics line that must not depend on timing. */
async function metricLines(runDir: string) {
  const text = await fs.readFile(path.join(runDir, 'metrics.jsonl'), 'utf8');
  return text
    .trim()
    .split('\n')
    .map((l) => {
      const e = JSON.parse(l) as Record<string, unknown>;
      return {
        type: e.type,
        step: e.step,
        trainLoss: e.trainLoss,
        valLoss: e.valLoss,
        lr: e.lr,
        gradNorm: e.gradNorm,
      };
    });
}

describe('seeded reproducibility', () => {
  it('two runs with the same seed give identical losses and weights; another seed does not', async () => {
    const a = await train(out(), { steps: 6 });
    const b = await train(out(), { steps: 6 });
    const c = await train(out(), { steps: 6, seed: 2 });
    expect(a.steps.map((s) => s.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(b.steps.map((s) => s.trainLoss)).toEqual(a.steps.map((s) => s.trainLoss));
    expect(b.evals.map((s) => s.valLoss)).toEqual(a.evals.map((s) => s.valLoss));
    expect(sha256File(path.join(b.result.runDir, 'model.safetensors'))).toBe(
      sha256File(path.join(a.result.runDir, 'model.safetensors')),
    );
    expect(c.steps.map((s) => s.trainLoss)).not.toEqual(a.steps.map((s) => s.trainLoss));
    // and it learns: the char model's loss falls from ≈ ln V
    expect(a.steps.at(-1)!.trainLoss).toBeLessThan(a.steps[0]!.trainLoss);
  });
});

describe('resume', () => {
  let straight: Recorded;
  beforeAll(async () => {
    straight = await train(out(), { steps: 12 });
  }, 60_000);

  it('after a stop at step 6 continues exactly like the uninterrupted run (bitwise)', async () => {
    const ac = new AbortController();
    const runDir = out();
    const first = await train(
      runDir,
      { steps: 12 },
      { signal: ac.signal, onEvent: (e) => e.type === 'step' && e.step === 6 && ac.abort() },
    );
    expect(first.result).toMatchObject({ step: 6, stopped: 'cancelled' });
    const state = await readState(runDir);
    expect(state).toMatchObject({ step: 6, status: 'cancelled', adamT: 6 });

    const second = await resumeRun(runDir);
    expect(second.events[0]).toMatchObject({ type: 'start', step: 6, resumed: true });
    expect(second.steps.map((s) => s.step)).toEqual([7, 8, 9, 10, 11, 12]);
    // exact equality: same weights, moments, RNG state, schedule and dropout seeds
    expect(second.steps.map((s) => s.trainLoss)).toEqual(
      straight.steps.slice(6).map((s) => s.trainLoss),
    );
    expect(second.steps.map((s) => s.gradNorm)).toEqual(
      straight.steps.slice(6).map((s) => s.gradNorm),
    );
    expect(second.steps.map((s) => s.lr)).toEqual(straight.steps.slice(6).map((s) => s.lr));
    expect(second.evals.map((e) => [e.step, e.valLoss])).toEqual(
      straight.evals.filter((e) => e.step > 6).map((e) => [e.step, e.valLoss]),
    );
    expect(second.result).toMatchObject({ step: 12, stopped: 'completed' });
    expect(sha256File(path.join(runDir, 'model.safetensors'))).toBe(
      sha256File(path.join(straight.result.runDir, 'model.safetensors')),
    );
    expect(sha256File(path.join(runDir, 'checkpoint-12', 'optimizer.safetensors'))).toBe(
      sha256File(path.join(straight.result.runDir, 'checkpoint-12', 'optimizer.safetensors')),
    );
    // metrics.jsonl reads as one run: steps 1..12 once each, same values
    expect(await metricLines(runDir)).toEqual(await metricLines(straight.result.runDir));
  });

  it('a finished 6-step run extended with resume({steps: 12}) matches a 12-step run (constant lr)', async () => {
    // The cosine schedule depends on `steps`, so this compares runs whose lr does not.
    const constant = { warmup: 0, minLr: TINY_TRAIN.lr };
    const ref = await train(out(), { ...constant, steps: 12 });
    const runDir = out();
    const first = await train(runDir, { ...constant, steps: 6 });
    expect(first.result).toMatchObject({ step: 6, stopped: 'completed' });
    expect((await readState(runDir)).status).toBe('completed');
    const second = await resumeRun(runDir, 12);
    expect(second.steps.map((s) => s.step)).toEqual([7, 8, 9, 10, 11, 12]);
    expect(second.steps.map((s) => s.trainLoss)).toEqual(
      ref.steps.slice(6).map((s) => s.trainLoss),
    );
    expect(sha256File(path.join(runDir, 'model.safetensors'))).toBe(
      sha256File(path.join(ref.result.runDir, 'model.safetensors')),
    );
    expect((await readState(runDir)).train.steps).toBe(12);
  });

  it('an AbortSignal stops within a second, saves, and resume continues from that step', async () => {
    const ac = new AbortController();
    const runDir = out();
    let abortedAt = 0;
    let fired = false;
    const pending = train(
      runDir,
      { steps: 100_000, evalEvery: 0, sampleEvery: 0, saveEvery: 0 },
      {
        signal: ac.signal,
        onEvent: (e) => {
          if (e.type === 'step' && e.step === 3) {
            // abort from a timer, as a UI or IPC message would, not from inside the step
            setTimeout(() => {
              fired = true;
              abortedAt = performance.now();
              ac.abort();
            }, 20);
          }
        },
      },
    );
    const first = await pending;
    const latency = performance.now() - abortedAt;
    expect(fired).toBe(true);
    expect(latency).toBeLessThan(1000);
    expect(first.result.stopped).toBe('cancelled');
    const stoppedAt = first.result.step;
    expect(stoppedAt).toBeGreaterThanOrEqual(3);
    expect(stoppedAt).toBeLessThan(1000);
    expect(first.steps.at(-1)!.step).toBe(stoppedAt);
    expect(first.events.at(-1)).toMatchObject({ type: 'checkpoint', step: stoppedAt });
    const state = await readState(runDir);
    expect(state).toMatchObject({ step: stoppedAt, status: 'cancelled', adamT: stoppedAt });
    const { metadata } = await readSafetensors(
      path.join(runDir, `checkpoint-${stoppedAt}`, 'optimizer.safetensors'),
    );
    expect(metadata.step).toBe(String(stoppedAt));

    const second = await resumeRun(runDir, stoppedAt + 2);
    expect(second.events[0]).toMatchObject({ type: 'start', step: stoppedAt, resumed: true });
    expect(second.steps.map((s) => s.step)).toEqual([stoppedAt + 1, stoppedAt + 2]);
    expect(await readState(runDir)).toMatchObject({ step: stoppedAt + 2, status: 'completed' });
  });

  it('a stop between accumulated micro-batches still resumes exactly (gradAccum 2)', async () => {
    const accum = { steps: 8, gradAccum: 2, batchSize: 2 };
    const ref = await train(out(), accum);
    // A signal that turns aborted after the loop's check at the top of step 4, i.e. at
    // trainStep's check before micro-batch 2, once micro-batch 1 has drawn its windows. (A real
    // abort lands there whenever it arrives while micro-batch 1 is computing.)
    let armed = false;
    let reads = 0;
    const signal = {
      get aborted() {
        if (!armed) return false;
        return ++reads > 1;
      },
      throwIfAborted() {},
      addEventListener() {},
      removeEventListener() {},
    } as unknown as AbortSignal;
    const runDir = out();
    const first = await train(runDir, accum, {
      signal,
      onEvent: (e) => {
        if (e.type === 'step' && e.step === 3) armed = true;
      },
    });
    expect(first.result).toMatchObject({ step: 3, stopped: 'cancelled' });
    expect(reads).toBeGreaterThanOrEqual(2);
    const second = await resumeRun(runDir);
    expect(second.steps.map((s) => s.step)).toEqual([4, 5, 6, 7, 8]);
    expect(second.steps.map((s) => s.trainLoss)).toEqual(
      ref.steps.slice(3).map((s) => s.trainLoss),
    );
  });

  it('after a crash, resume drops the samples logged after the checkpoint (no duplicates)', async () => {
    const runDir = out();
    const crash = new Error('simulated crash');
    // saved at step 2; sample at step 3; the process "dies" during step 4
    const err = await train(
      runDir,
      { steps: 6, saveEvery: 2, sampleEvery: 3, evalEvery: 0 },
      {
        onEvent: (e) => {
          if (e.type === 'step' && e.step === 4) throw crash;
        },
      },
    ).catch((e: unknown) => e);
    expect(err).toBe(crash);
    expect((await readState(runDir)).step).toBe(2);
    // and the crash cut the last metrics line short
    await fs.appendFile(path.join(runDir, 'metrics.jsonl'), '{"type":"step","step":4,"trainLo');
    await resumeRun(runDir);
    const samples = (await fs.readFile(path.join(runDir, 'samples.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { step: number }).step);
    expect(samples).toEqual([3, 6]);
    expect((await metricLines(runDir)).map((l) => l.step)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  // Checkpoints commit as a unit (checkpoint-<step>/ is renamed into place whole), and resume
  // reads the newest such folder, so a top level left half-updated by a crash cannot mix steps.
  it('resumes from the newest whole checkpoint folder, whatever the top level holds', async () => {
    const straight = await train(out(), { steps: 3, sampleEvery: 0 });
    const runDir = out();
    await train(runDir, { steps: 2, sampleEvery: 0 });
    const cfg = await readHfConfig(path.join(runDir, 'config.json'));
    const file = path.join(runDir, 'model.safetensors');
    const { params } = await loadGpt2Weights(file, cfg);
    for (const w of params.values()) w.fill(0.5);
    await saveGpt2Weights(file, cfg, params, { metadata: { step: '4' } }); // as if from step 4
    const resumed = await resumeRun(runDir, 3);
    expect(resumed.steps.map((s) => s.trainLoss)).toEqual([straight.steps[2]!.trainLoss]);
  });

  it('an abort before the first step leaves a resumable run at step 0', async () => {
    const runDir = out();
    // abort once the run directory exists (after tokenizer training)
    const ac = new AbortController();
    const first = await train(
      runDir,
      { steps: 5 },
      { signal: ac.signal, onEvent: (e) => e.type === 'start' && ac.abort() },
    );
    expect(first.result).toMatchObject({ step: 0, stopped: 'cancelled' });
    expect(first.steps).toHaveLength(0);
    const second = await resumeRun(runDir);
    expect(second.steps.map((s) => s.step)).toEqual([1, 2, 3, 4, 5]);
  });
});

describe('run directory layout', () => {
  it('is a Hugging Face GPT-2 dir plus optimizer, state, tokens and metrics; no temp files', async () => {
    const r = await train(out(), { steps: 5, saveEvery: 2, evalEvery: 5, sampleEvery: 5 });
    const runDir = r.result.runDir;
    const files = await listFiles(runDir);
    for (const f of [
      'config.json',
      'generation_config.json',
      'model.safetensors',
      'tokenizer.json',
      'checkpoint-5/model.safetensors',
      'checkpoint-5/optimizer.safetensors',
      'checkpoint-5/state.json',
      'checkpoint-4/state.json',
      'state.json',
      'metrics.jsonl',
      'train.bin',
      'val.bin',
    ]) {
      expect(files, f).toContain(f);
    }
    expect(files.filter((f) => f.endsWith('.tmp') || path.basename(f).startsWith('.'))).toEqual([]);

    const config = JSON.parse(
      await fs.readFile(path.join(runDir, 'config.json'), 'utf8'),
    ) as Record<string, unknown>;
    expect(config).toMatchObject({
      model_type: 'gpt2',
      architectures: ['GPT2LMHeadModel'],
      n_embd: 16,
      n_layer: 1,
      n_head: 2,
      n_positions: 16,
      activation_function: 'gelu_new',
    });
    const C = 16;
    const { tensors, metadata } = await readSafetensors(path.join(runDir, 'model.safetensors'));
    expect(metadata).toMatchObject({ format: 'pt', step: '5' });
    expect(tensors.get('transformer.h.0.attn.c_attn.weight')?.shape).toEqual([C, 3 * C]);
    expect(tensors.get('transformer.wte.weight')?.shape).toEqual([config.vocab_size, C]);
    expect(tensors.has('lm_head.weight')).toBe(false);
    expect([...tensors.keys()].every((k) => k.startsWith('transformer.'))).toBe(true);

    expect(files.some((f) => f.startsWith('checkpoint-2'))).toBe(false); // only the newest 2 kept
    const opt = await readSafetensors(path.join(runDir, 'checkpoint-5', 'optimizer.safetensors'));
    expect(opt.metadata.step).toBe('5');
    expect(opt.tensors.get('exp_avg.h.0.attn.c_attn.weight')?.shape).toEqual([C, 3 * C]);
    expect(opt.tensors.get('exp_avg_sq.wte.weight')?.shape).toEqual([config.vocab_size, C]);

    const state = await readState(runDir);
    expect(state).toMatchObject({ version: 1, step: 5, status: 'completed', adamT: 5 });
    expect(state.corpus).toEqual([
      { path: path.resolve(corpus), bytes: (await fs.stat(corpus)).size },
    ]);

    const lines = await metricLines(runDir);
    expect(lines.filter((l) => l.type === 'step').map((l) => l.step)).toEqual([1, 2, 3, 4, 5]);
    expect(lines.filter((l) => l.type === 'eval').map((l) => l.step)).toEqual([5]);
    expect(r.events.filter((e) => e.type === 'checkpoint').map((e) => e.step)).toEqual([2, 4, 5]);

    // the saved model is the final one: its validation loss is the run's last one
    const loaded = await loadModelDir(runDir);
    expect(loaded.tokenizer.vocabSize).toBe(config.vocab_size);
    const splits = await loadTokens(runDir, state.tokens.dtype);
    expect(splits.val.length).toBe(state.tokens.val);
    const val = await evaluate(loaded.model, splits.val, state.train, 16);
    loaded.model.dispose();
    expect(val).toBe(state.valLoss);
  });
});
