/**
 * pretrain.start from a model of the workspace (`from`): an imported tiny model's weights, size
 * and tokenizer start the run, so its first loss is the model's own on the first batch; a model
 * that is not there, or a request that also sets the size or the tokenizer, is refused by name.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiEvent } from '../../src/common/api';
import type { DatasetManifest } from '../../src/common/datasets';
import { loadModelDir } from '../../src/engine/checkpoint/modelDir';
import * as tf from '../../src/engine/tf';
import { loadTokens, sampleBatch } from '../../src/engine/train/data';
import { readState } from '../../src/engine/train/pretrain';
import { Rng } from '../../src/engine/util/rng';
import { charTok, makeRun, type RunFixture } from '../engine/checkpoint/fixtures';
import { TestHost } from './testHost';

const TEXT =
  'the cat sat on the mat. the dog sat on the log. a cat and a dog met on a mat by the log.\n' +
  'to be or not to be, that is the question; whether tis nobler in the mind to suffer.\n';
const TRAIN = {
  steps: 2,
  batchSize: 2,
  gradAccum: 1,
  workers: 1,
  warmup: 1,
  evalEvery: 0,
  sampleEvery: 0,
  saveEvery: 0,
  seed: 9,
};

let dir: string;
let host: TestHost;
let ds: DatasetManifest;
let tiny: string;
let fixture: RunFixture;

const ended = (jobId: string) =>
  host.waitFor(
    (e: ApiEvent) => (e.type === 'job.done' || e.type === 'job.failed') && e.jobId === jobId,
    60_000,
  );

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pretrain-from-'));
  const resources = path.join(dir, 'resources');
  await fs.mkdir(path.join(resources, 'samples'), { recursive: true });
  await fs.writeFile(path.join(resources, 'samples/austen.txt'), 'It is a truth.\n'.repeat(50));
  host = new TestHost(path.join(dir, 'ws'), {
    paths: { mode: 'allow-list', allow: [dir] },
    resourcesDir: resources,
    progressIntervalMs: 0,
  });
  const corpus = path.join(dir, 'corpus.txt');
  await fs.writeFile(corpus, TEXT.repeat(20));
  const imported = await host.call('datasets.import', { paths: [corpus] });
  const done = await ended(imported.jobId);
  if (done.type !== 'job.done') throw new Error('the corpus did not import');
  ds = (done.result as { dataset: DatasetManifest }).dataset;

  // a tiny GPT-2 folder from elsewhere (a cluster's checkpoint, say), imported as the user would
  fixture = await makeRun(path.join(dir, 'incoming', 'tiny-hf'), charTok(TEXT), {
    state: false,
  });
  const job = await host.call('checkpoints.import', { from: fixture.dir, name: 'tiny' });
  if ((await ended(job.jobId)).type !== 'job.done') throw new Error('the model did not import');
  tiny = path.join(dir, 'ws', 'models', 'tiny');
}, 60_000);
afterAll(async () => {
  await host?.host.shutdown();
  await fs.rm(dir, { recursive: true, force: true });
});

describe('pretrain.start from a model', () => {
  it("starts from an imported model's weights, size and tokenizer", async () => {
    const listed = (await host.call('models.list', {})).find((m) => m.ref === tiny);
    expect(listed).toMatchObject({ source: 'imported', nLayer: 2, nHead: 2, nEmbd: 8 });

    const { jobId } = await host.call('pretrain.start', {
      name: 'more',
      datasets: [ds.id],
      from: tiny,
      train: TRAIN,
    });
    const done = await ended(jobId);
    expect(done).toMatchObject({ type: 'job.done', result: { step: 2, stopped: 'completed' } });
    const steps = host.events.flatMap((e) =>
      e.type === 'job.progress' && e.jobId === jobId && e.event.type === 'step' ? [e.event] : [],
    );
    expect(steps).toHaveLength(2);

    // the run's model is the imported one's: config and tokenizer
    const runDir = path.join(dir, 'ws', 'runs', 'more');
    const run = await host.call('runs.get', { id: 'more' });
    expect(run.modelConfig).toMatchObject({
      n_layer: fixture.cfg.nLayer,
      n_head: fixture.cfg.nHead,
      n_embd: fixture.cfg.nEmbd,
      n_positions: fixture.cfg.blockSize,
      vocab_size: fixture.cfg.vocabSize,
    });
    const tokenizerOf = async (d: string) =>
      JSON.parse(await fs.readFile(path.join(d, 'tokenizer.json'), 'utf8')) as unknown;
    expect(await tokenizerOf(runDir)).toEqual(await tokenizerOf(tiny));

    // and its weights: the first step's loss is the imported model's on the first batch
    const { model, config } = await loadModelDir(tiny);
    const splits = await loadTokens(runDir, (await readState(runDir)).tokens.dtype);
    const { x, y } = sampleBatch(
      splits.train,
      TRAIN.batchSize,
      config.blockSize,
      new Rng(TRAIN.seed ^ 0x5eed),
    );
    const l = tf.tidy(() => model.loss(x, y));
    const expected = ((await l.data()) as Float32Array)[0]!;
    tf.dispose([x, y, l]);
    model.dispose();
    expect(Number.isFinite(expected)).toBe(true);
    expect(steps[0]!.trainLoss).toBeCloseTo(expected, 4);
  }, 60_000);

  it('times a model to start from at its own shape', async () => {
    const { jobId } = await host.call('models.probe', {
      datasets: [ds.id],
      from: tiny,
      train: { batchSize: 2, workers: 1 },
      steps: 1,
    });
    const listed = (await host.call('models.list', {})).find((m) => m.ref === tiny)!;
    expect(await ended(jobId)).toMatchObject({
      type: 'job.done',
      result: { type: 'probe.result', steps: 1, params: listed.params },
    });
  }, 30_000);

  it('refuses a model that is not there, and what the model fixes, naming the field', async () => {
    const start = (extra: Record<string, unknown>) =>
      host.raw('pretrain.start', { name: 'refused', datasets: [ds.id], train: TRAIN, ...extra });
    const missing = path.join(dir, 'ws', 'models', 'nope');
    expect((await start({ from: missing })).error).toMatchObject({
      code: 'not-found',
      message: expect.stringMatching(/^params\.from: .*nope does not exist/),
    });
    expect((await start({ from: path.parse(dir).root })).error).toMatchObject({
      code: 'forbidden',
      message: expect.stringContaining('params.from'),
    });
    const fixed = [
      [{ tokenizer: 'char-1a2b3c4d' }, 'params.tokenizer'],
      [{ preset: 'tiny' }, 'params.preset'],
      [{ model: { nLayer: 4 } }, 'params.model.nLayer'],
      [{ model: { dropout: 0.1, blockSize: 32 } }, 'params.model.blockSize'],
      [{ model: { layout: 'gpt1' } }, 'params.model.layout'],
    ] as const;
    for (const [extra, field] of fixed) {
      expect((await start({ from: tiny, ...extra })).error).toMatchObject({
        code: 'bad-request',
        message: expect.stringMatching(
          new RegExp(`^${field.replace(/\./g, '\\.')}: does not apply with params\\.from`),
        ),
      });
    }
    expect((await start({})).error).toMatchObject({
      code: 'bad-request',
      message: expect.stringMatching(/^params\.tokenizer: required/),
    });
    await expect(fs.access(path.join(dir, 'ws', 'runs', 'refused'))).rejects.toThrow();
  });
});
