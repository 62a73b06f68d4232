/**
 * A wasm abort (RuntimeError: "Aborted()", "memory access out of bounds") is turned into a
 * message that says what to change, in pretraining's loop, fine-tuning's and the wizard's probe;
 * other errors pass through unchanged.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../../src/engine/backend';
import {
  BackendAbortError,
  explainBackendAbort,
  isBackendAbort,
} from '../../../src/engine/backendAbort';
import { saveModelDir } from '../../../src/engine/checkpoint/modelDir';
import { finetune } from '../../../src/engine/finetune/finetune';
import { GPT } from '../../../src/engine/model/gpt';
import { pretrain, readState } from '../../../src/engine/train/pretrain';
import { probeModel } from '../../../src/server/features/runs';
import {
  charTokenizer,
  removeDir,
  tempDir,
  TINY_MODEL,
  TINY_TRAIN,
  tinyConfig,
  toyCorpus,
  writeText,
} from '../helpers';

/** What the wasm module throws when it runs out of heap or traps. */
function wasmError(message: string): Error {
  const e = new Error(message);
  e.name = 'RuntimeError';
  return e;
}

const ADVICE =
  /Lower the batch size, block size or model width\/depth \(the estimate for this configuration was [\d.]+ (KiB|MiB|GiB) of the 4\.00 GiB the wasm backend allows\)\.$/;

describe('explainBackendAbort', () => {
  it("turns RuntimeError('Aborted()') into what failed, what the backend said and the advice", () => {
    const err = explainBackendAbort(
      wasmError('Aborted(). Build with -sASSERTIONS for more info.'),
      'Training',
      'Lower the batch size.',
    );
    expect(err).toBeInstanceOf(BackendAbortError);
    expect((err as BackendAbortError).message).toBe(
      'Training: the compute backend ran out of memory or crashed (Aborted(). Build with ' +
        '-sASSERTIONS for more info.). Lower the batch size.',
    );
    expect((err as BackendAbortError).raw).toMatch(/^Aborted\(\)/);
    // an explained abort is not explained twice
    expect(explainBackendAbort(err, 'Again', 'x')).toBe(err);
  });

  it('recognises the other ways the wasm module fails', () => {
    for (const m of [
      'memory access out of bounds',
      'unreachable',
      'Cannot enlarge memory arrays',
    ]) {
      expect(isBackendAbort(wasmError(m)), m).toBe(true);
    }
    expect(isBackendAbort(new Error('Aborted()'))).toBe(true);
    expect(isBackendAbort(new RangeError('Array buffer allocation failed'))).toBe(true);
  });

  it('leaves every other error as it was', () => {
    for (const e of [
      new Error('the loss became NaN'),
      new TypeError('x is not a function'),
      Object.assign(new Error('stopped'), { name: 'AbortError' }),
    ]) {
      expect(isBackendAbort(e)).toBe(false);
      expect(explainBackendAbort(e, 'Training', 'advice')).toBe(e);
    }
    expect(explainBackendAbort('a string', 'Training', 'advice')).toBe('a string');
    expect(explainBackendAbort(undefined, 'Training', 'advice')).toBeUndefined();
  });
});

describe('the training loops explain an abort', () => {
  let dir: string;
  let corpus: string;

  beforeAll(async () => {
    await initBackend('wasm');
    dir = await tempDir();
    corpus = await writeText(dir, 'corpus.txt', toyCorpus(4));
  });
  afterAll(async () => {
    await removeDir(dir);
  });

  it('pretraining: the run fails with the advice, and state.json records it', async () => {
    const runDir = path.join(dir, 'run');
    const err = await pretrain({
      corpus: [corpus],
      out: runDir,
      tokenizer: 'char',
      model: { ...TINY_MODEL },
      train: { ...TINY_TRAIN, steps: 3, sampleEvery: 0, evalEvery: 0 },
      onEvent: (e) => {
        if (e.type === 'step') throw wasmError('memory access out of bounds');
      },
    }).then(
      () => new Error('pretrain succeeded'),
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(BackendAbortError);
    expect(err.message).toMatch(
      /^Training: the compute backend ran out of memory or crashed \(memory access out of bounds\)\. /,
    );
    expect(err.message).toMatch(ADVICE);
    const state = await readState(runDir);
    expect(state.status).toBe('failed');
    expect(state.error).toBe(err.message);
  });

  it('pretraining: any other error is unchanged', async () => {
    const boom = new Error('disk full');
    const err = await pretrain({
      corpus: [corpus],
      out: path.join(dir, 'run-other'),
      tokenizer: 'char',
      model: { ...TINY_MODEL },
      train: { ...TINY_TRAIN, steps: 3, sampleEvery: 0, evalEvery: 0 },
      onEvent: (e) => {
        if (e.type === 'step') throw boom;
      },
    }).then(
      () => new Error('pretrain succeeded'),
      (e: Error) => e,
    );
    expect(err).toBe(boom);
  });

  it('fine-tuning: the abort comes back with the advice', async () => {
    const alphabet = 'abcdefghijklmnopqrstuvwxyz ';
    const tok = charTokenizer(alphabet);
    const base = path.join(dir, 'base');
    const model = GPT.init(
      tinyConfig({ vocabSize: tok.vocabSize, blockSize: 24, nEmbd: 32, nHead: 2, nLayer: 1 }),
      1,
    );
    await saveModelDir(base, model, tok);
    model.dispose();
    const rows = Array.from({ length: 40 }, (_, i) =>
      JSON.stringify({ sentence: i % 2 ? 'abc abd' : 'xyz wvx', sentiment: i % 2 ? 'pos' : 'neg' }),
    );
    const data = await writeText(dir, 'train.jsonl', rows.join('\n') + '\n');
    const err = await finetune({
      model: base,
      task: 'classification',
      columns: { text: 'sentence', label: 'sentiment' },
      data,
      settings: { batchSize: 8, epochs: 1, valFraction: 0.2, seed: 1 },
      onEvent: (e) => {
        if (e.type === 'finetune.step') throw wasmError('Aborted()');
      },
    }).then(
      () => new Error('finetune succeeded'),
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(BackendAbortError);
    expect(err.message).toMatch(/^Fine-tuning: the compute backend ran out of memory/);
    expect(err.message).toMatch(ADVICE);
  });

  it("the wizard's probe: the abort comes back with the advice", async () => {
    const tokDir = path.join(dir, 'tokenizer');
    await charTokenizer(toyCorpus(1)).save(tokDir);
    const err = await probeModel({
      shards: [corpus],
      tokenizerDir: tokDir,
      model: { ...TINY_MODEL },
      train: { batchSize: 2 },
      steps: 2,
      signal: new AbortController().signal,
      onStep: () => {
        throw wasmError('memory access out of bounds');
      },
    }).then(
      () => new Error('the probe succeeded'),
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(BackendAbortError);
    expect(err.message).toMatch(/^The probe: the compute backend ran out of memory/);
    expect(err.message).toMatch(ADVICE);
    await fs.rm(tokDir, { recursive: true, force: true });
  });
});
