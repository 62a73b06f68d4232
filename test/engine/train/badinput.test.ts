/**
 * Bad input and failures: clear errors that name the file, and nothing on disk lost or left half
 * written — empty / binary / missing / unreadable corpora, a corpus shorter than one block, an
 * existing run, and a loss that turns NaN mid-run.
 */
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../../src/engine/tf';
import type { TrainEvent } from '../../../src/common/events';
import { initBackend } from '../../../src/engine/backend';
import {
  loadGpt2Weights,
  readHfConfig,
  saveGpt2Weights,
} from '../../../src/engine/checkpoint/gpt2';
import { GPT } from '../../../src/engine/model/gpt';
import { initParams } from '../../../src/engine/model/params';
import { AdamW } from '../../../src/engine/train/optimizer';
import {
  pretrain,
  readState,
  resume,
  trainStep,
  TrainingError,
  type PretrainOptions,
} from '../../../src/engine/train/pretrain';
import { Rng } from '../../../src/engine/util/rng';
import {
  hashTree,
  randomIds,
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
let good: string;
let n = 0;
const out = () => path.join(dir, `run${n++}`);

beforeAll(async () => {
  await initBackend('wasm');
  dir = await tempDir();
  good = await writeText(dir, 'good.txt', toyCorpus(4));
});
afterAll(async () => {
  await removeDir(dir);
});

function opts(corpus: string[], runDir: string, extra: Partial<PretrainOptions> = {}) {
  return {
    corpus,
    out: runDir,
    tokenizer: 'char' as const,
    model: { ...TINY_MODEL },
    train: { ...TINY_TRAIN, steps: 3, sampleEvery: 0, evalEvery: 0 },
    ...extra,
  } satisfies PretrainOptions;
}

/** pretrain's error message; fails if it resolves. Also checks nothing was created. */
async function refused(corpus: string[]): Promise<string> {
  const runDir = out();
  const err = await pretrain(opts(corpus, runDir)).then(
    () => {
      throw new Error('pretrain accepted the corpus');
    },
    (e: Error) => e,
  );
  expect(existsSync(runDir), 'no run directory is left behind').toBe(false);
  return err.message;
}

describe('corpus errors name the file and create nothing', () => {
  it('empty file', async () => {
    const f = await writeText(dir, 'empty.txt', '');
    const msg = await refused([good, f]);
    expect(msg).toContain(f);
    expect(msg).toMatch(/empty/i);
  });

  it('binary file', async () => {
    const f = await writeText(
      dir,
      'image.txt',
      new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 0, 1, 2]),
    );
    const msg = await refused([f]);
    expect(msg).toContain(f);
    expect(msg).toMatch(/binary/i);
  });

  it('invalid UTF-8', async () => {
    const f = await writeText(
      dir,
      'latin1.txt',
      new Uint8Array([0x63, 0x61, 0x66, 0xe9, 0x20, 0x41]),
    );
    const msg = await refused([f]);
    expect(msg).toContain(f);
    expect(msg).toMatch(/UTF-8/);
  });

  it('missing path', async () => {
    const f = path.join(dir, 'no-such-file.txt');
    const msg = await refused([good, f]);
    expect(msg).toContain(f);
    expect(msg).toMatch(/not found/i);
  });

  it('a folder with no text files', async () => {
    const d = path.join(dir, 'no-text');
    await fs.mkdir(d, { recursive: true });
    await writeText(d, 'data.bin', 'x');
    const msg = await refused([d]);
    expect(msg).toContain(d);
  });

  it.skipIf(process.getuid?.() === 0)('unreadable file (skipped as root)', async () => {
    const f = await writeText(dir, 'secret.txt', 'hello world');
    await fs.chmod(f, 0o000);
    try {
      const msg = await refused([f]);
      expect(msg).toContain(f);
    } finally {
      await fs.chmod(f, 0o644);
    }
  });

  it('a corpus shorter than one block says so, with the sizes', async () => {
    const f = await writeText(dir, 'short.txt', 'hello there'); // 11 tokens < 16 + 1
    const msg = await refused([f]);
    expect(msg).toContain(f);
    expect(msg).toMatch(/shorter than one block/);
    expect(msg).toMatch(/--block-size 16/);
  });

  it('a validation split shorter than one block says how to fix it', async () => {
    // 40 tokens: 36 train, 4 validation (< 17)
    const f = await writeText(dir, 'forty.txt', 'abcdefghij'.repeat(4));
    const msg = await refused([f]);
    expect(msg).toContain(f);
    expect(msg).toMatch(/validation split/);
    expect(msg).toMatch(/--val-percent/);
  });
});

describe('an existing run', () => {
  it('is not overwritten by a new pretrain into the same directory', async () => {
    const runDir = out();
    await pretrain(opts([good], runDir));
    const before = await hashTree(runDir);
    expect(Object.keys(before)).toContain('model.safetensors');
    const err = await pretrain(
      opts([good], runDir, { train: { ...TINY_TRAIN, steps: 2, seed: 99 } }),
    ).catch((e: Error) => e);
    expect(err).toBeInstanceOf(TrainingError);
    expect((err as Error).message).toContain(runDir);
    expect((err as Error).message).toMatch(/already holds a run/);
    expect(await hashTree(runDir)).toEqual(before);
  });

  it('resume of a directory that is not a run names it', async () => {
    const d = path.join(dir, 'not-a-run');
    await fs.mkdir(d, { recursive: true });
    await expect(resume({ run: d })).rejects.toThrow(`${d}: not a run directory`);
  });
});

describe('a NaN loss', () => {
  it('stops the run with a message naming NaN and the step; the saved checkpoint is kept', async () => {
    const runDir = out();
    const saved = new Map<number, string>();
    const onEvent = (e: TrainEvent) => {
      if (e.type === 'checkpoint')
        saved.set(e.step, sha256File(path.join(runDir, 'model.safetensors')));
    };
    // lr = 1e30: step 1 succeeds (and is saved), step 2 overflows to NaN
    const err = await pretrain(
      opts([good], runDir, {
        train: { ...TINY_TRAIN, steps: 10, lr: 1e30, minLr: 0, warmup: 0, saveEvery: 1 },
        onEvent,
      }),
    ).catch((e: Error) => e);
    expect(err).toBeInstanceOf(TrainingError);
    const msg = (err as Error).message;
    const m = /The loss became (NaN|infinite) at step (\d+)/.exec(msg);
    expect(m, msg).not.toBeNull();
    const failedAt = Number(m![2]);
    const lastSaved = Math.max(...saved.keys());
    expect(lastSaved).toBe(failedAt - 1);
    expect(msg).toContain(`last good checkpoint (step ${lastSaved})`);
    expect(msg).toContain(runDir);
    // the checkpoint on disk is exactly the last one saved before the failure
    expect(sha256File(path.join(runDir, 'model.safetensors'))).toBe(saved.get(lastSaved));
    expect((await readState(runDir)).step).toBe(lastSaved);
    const metrics = await fs.readFile(path.join(runDir, 'metrics.jsonl'), 'utf8');
    expect(metrics).not.toMatch(/NaN|null/);
  });

  it('from a corrupted weight: resume stops at the next step with "NaN" and leaves the files as they were', async () => {
    const runDir = out();
    await pretrain(opts([good], runDir));
    // resume reads the newest checkpoint folder
    const weightsFile = path.join(runDir, 'checkpoint-3', 'model.safetensors');
    const cfg = await readHfConfig(path.join(runDir, 'config.json'));
    const { params } = await loadGpt2Weights(weightsFile, cfg);
    params.get('h.0.mlp.c_fc.weight')![5] = NaN;
    await saveGpt2Weights(weightsFile, cfg, params, { metadata: { step: '3' } });
    const before = await hashTree(runDir);

    const err = await resume({ run: runDir, steps: 6 }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(TrainingError);
    expect((err as Error).message).toMatch(/The loss became NaN at step 4\b/);
    expect((err as Error).message).toContain('last good checkpoint (step 3)');
    const after = await hashTree(runDir);
    // the failed step wrote nothing but the failure itself: not the weights, the optimizer, the
    // checkpoint's state, nor metrics; the top-level state.json records status 'failed'
    const { ['state.json']: stateAfter, ...restAfter } = after;
    const { ['state.json']: stateBefore, ...restBefore } = before;
    expect(restAfter).toEqual(restBefore);
    expect(stateAfter).not.toBe(stateBefore);
    const state = await readState(runDir);
    expect(state).toMatchObject({ step: 3, status: 'failed' });
    expect(state.error).toMatch(/NaN at step 4/);
  });

  it('never reaches the weights: trainStep skips the update when the loss is NaN', async () => {
    const cfg = tinyConfig({ nLayer: 1 });
    const init = initParams(cfg, 1);
    init.get('ln_f.bias')![0] = NaN;
    const model = new GPT(cfg, init);
    const opt = new AdamW(model.params, {
      beta1: 0.9,
      beta2: 0.99,
      eps: 1e-8,
      weightDecay: 0.1,
      gradClip: 1,
    });
    try {
      const before = await model.weights();
      const data = Int32Array.from(randomIds(100, cfg.vocabSize, 1));
      const t = { batchSize: 2, gradAccum: 2, seed: 1 };
      const r = await trainStep(model, opt, data, new Rng(1), t, 0, 0.1);
      expect(r.loss).toBeNaN();
      expect(opt.t).toBe(0);
      const after = await model.weights();
      for (const [name, w] of before) {
        expect(Buffer.from(after.get(name)!.buffer).equals(Buffer.from(w.buffer)), name).toBe(true);
      }
      const { m } = await opt.state();
      expect([...m.values()].every((a) => a.every((v) => v === 0))).toBe(true);
      // nothing leaks on the NaN path (the first step created the cached masks)
      const tensors = tf.memory().numTensors;
      await trainStep(model, opt, data, new Rng(2), t, 1, 0.1);
      expect(tf.memory().numTensors).toBe(tensors);
    } finally {
      model.dispose();
      opt.dispose();
    }
  });
});
