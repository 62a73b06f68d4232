/**
 * The datasets feature through the engine host: the seeded sample, imports as jobs, the wizard's
 * tokenizer, model estimate and probe, a pausable run, its metrics and deletion.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiEvent, ReplyMessage } from '../../src/common/api';
import type { DatasetManifest, TokenizerInfo } from '../../src/common/datasets';
import { EngineHost } from '../../src/server/host';

let dir: string;
let host: EngineHost;
const replies = new Map<number, ReplyMessage>();
const events: ApiEvent[] = [];
const waiters = new Set<() => void>();
let next = 1;

const TEXT =
  'the cat sat on the mat. the dog sat on the log. a cat and a dog met on a mat by the log.\n' +
  'to be or not to be, that is the question; whether tis nobler in the mind to suffer.\n';

async function call<T = unknown>(name: string, params: unknown): Promise<T> {
  const id = next++;
  await host.handle({ id, type: 'invoke', name, params });
  const r = replies.get(id);
  if (!r || r.type === 'event') throw new Error('no reply');
  if (r.type === 'error') throw Object.assign(new Error(r.error.message), r.error);
  return r.result as T;
}

function waitFor(pred: (e: ApiEvent) => boolean, ms = 30_000): Promise<ApiEvent> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const hit = events.find(pred);
      if (!hit) return false;
      waiters.delete(check);
      clearTimeout(timer);
      resolve(hit);
      return true;
    };
    const timer = setTimeout(() => {
      waiters.delete(check);
      reject(new Error('timed out waiting for an event'));
    }, ms);
    if (!check()) waiters.add(check);
  });
}

const doneOf = async (jobId: string) => {
  const e = await waitFor(
    (x) => (x.type === 'job.done' || x.type === 'job.failed') && x.jobId === jobId,
  );
  if (e.type === 'job.failed') throw new Error(e.error.message);
  return (e as Extract<ApiEvent, { type: 'job.done' }>).result;
};

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'datasets-host-'));
  const resources = path.join(dir, 'resources');
  await fs.mkdir(path.join(resources, 'samples'), { recursive: true });
  await fs.writeFile(path.join(resources, 'samples/austen.txt'), 'It is a truth.\n'.repeat(50));
  host = new EngineHost({
    workspace: path.join(dir, 'ws'),
    // the test's files sit beside the workspace, as a folder given with --allow-path
    paths: { mode: 'allow-list', allow: [dir] },
    backend: 'wasm',
    resourcesDir: resources,
    progressIntervalMs: 0,
    send: (m) => {
      if ('id' in m) replies.set(m.id as number, m);
      else if (m.type === 'event') {
        events.push(m.event);
        for (const w of [...waiters]) w();
      }
    },
  });
});
afterAll(async () => {
  await host.shutdown();
  await fs.rm(dir, { recursive: true, force: true });
});

describe('the dataset library and the pretrain wizard in the engine host', () => {
  let ds: DatasetManifest;
  let tok: TokenizerInfo;

  it('starts with the sample corpus, imports a file as a job and recognizes it again', async () => {
    const first = await call<DatasetManifest[]>('datasets.list', {});
    expect(first.map((d) => [d.name, d.source])).toEqual([['Jane Austen (sample)', 'sample']]);

    const file = path.join(dir, 'corpus.txt');
    await fs.writeFile(file, TEXT.repeat(20));
    const { jobId } = await call<{ jobId: string }>('datasets.import', { paths: [file] });
    const r = await doneOf(jobId);
    expect(r).toMatchObject({ type: 'dataset.result', duplicate: false });
    ds = (r as { dataset: DatasetManifest }).dataset;
    expect(ds.stats.lines).toBe(40);
    expect(ds.stats.duplicateLines).toBe(38);
    expect(events.some((e) => e.type === 'job.progress' && e.jobId === jobId)).toBe(true);

    const again = await call<{ jobId: string }>('datasets.import', { paths: [file] });
    expect(await doneOf(again.jobId)).toMatchObject({ duplicate: true, dataset: { id: ds.id } });
    expect(await call<DatasetManifest[]>('datasets.list', {})).toHaveLength(2);

    const details = await call<{ split: { valBytes: number; valPreview: string } }>(
      'datasets.get',
      { id: ds.id },
    );
    expect(details.split.valBytes).toBe(Math.round(ds.stats.bytes * 0.1));
    expect(details.split.valPreview.length).toBeGreaterThan(0);

    const bin = path.join(dir, 'blob.txt');
    await fs.writeFile(bin, new Uint8Array([0, 1, 2, 0, 0, 3]));
    const bad = await call<{ jobId: string }>('datasets.import', { paths: [bin] });
    await expect(doneOf(bad.jobId)).rejects.toThrow(/blob\.txt/);
  });

  it('trains a tokenizer, counts tokens, previews it and estimates a model', async () => {
    const { jobId } = await call<{ jobId: string }>('tokenizers.train', {
      datasets: [ds.id],
      kind: 'char',
    });
    tok = ((await doneOf(jobId)) as { tokenizer: TokenizerInfo }).tokenizer;
    expect(tok.kind).toBe('char');
    expect(tok.tokens).toBe(ds.stats.chars);
    expect(tok.charsPerToken).toBe(1);
    expect(await call('tokenizers.list', {})).toHaveLength(1);
    expect(await call('datasets.tokens', { id: ds.id, tokenizer: tok.id })).toEqual({
      tokens: ds.stats.chars,
      charsPerToken: 1,
    });
    const preview = await call<{ lines: Array<Array<{ text: string }>> }>('tokenizers.preview', {
      id: tok.id,
      dataset: ds.id,
    });
    expect(preview.lines[0]!.map((p) => p.text).join('')).toBe(TEXT.split('\n')[0]);

    const est = await call<{ params: number; fits: boolean; limitBytes: number }>(
      'models.estimate',
      { vocabSize: tok.vocabSize, model: { nLayer: 1, nHead: 2, nEmbd: 16, blockSize: 16 } },
    );
    expect(est.params).toBeGreaterThan(16 * 16);
    expect(est.fits).toBe(true);
    // GPT-1's post-LayerNorm layout: no final LayerNorm, 2 × 16 fewer parameters
    const gpt1 = await call<{ params: number }>('models.estimate', {
      vocabSize: tok.vocabSize,
      model: { nLayer: 1, nHead: 2, nEmbd: 16, blockSize: 16, layout: 'gpt1' },
    });
    expect(est.params - gpt1.params).toBe(2 * 16);
    // with two workers each holds a replica and half the batch, in a wasm heap of its own
    type Est = { memory: { totalBytes: number }; limitBytes: number; workers?: number };
    const shape = {
      vocabSize: tok.vocabSize,
      model: { nLayer: 1, nHead: 2, nEmbd: 16, blockSize: 16 },
    };
    const one = await call<Est>('models.estimate', { ...shape, batchSize: 16 });
    const two = await call<Est>('models.estimate', { ...shape, batchSize: 16, workers: 2 });
    expect(two.workers).toBe(2);
    expect(two.limitBytes).toBe(one.limitBytes);
    expect(two.memory.totalBytes).toBeLessThan(one.memory.totalBytes);
    const huge = await call<{ fits: boolean; advice?: string }>('models.estimate', {
      vocabSize: 50257,
      preset: 'gpt1',
      batchSize: 512,
    });
    expect(huge.fits).toBe(false);
    expect(huge.advice).toMatch(/batch-size/);
  });

  it('probes a few real steps', async () => {
    const { jobId } = await call<{ jobId: string }>('models.probe', {
      datasets: [ds.id],
      tokenizer: tok.id,
      model: { nLayer: 1, nHead: 2, nEmbd: 16, blockSize: 16 },
      train: { batchSize: 2 },
      steps: 3,
    });
    const r = (await doneOf(jobId)) as { steps: number; secondsPerStep: number };
    expect(r.steps).toBe(3);
    expect(r.secondsPerStep).toBeGreaterThan(0);
  });

  it('runs a pausable pretraining from the wizard, then lists, measures and deletes it', async () => {
    const { jobId } = await call<{ jobId: string }>('pretrain.start', {
      name: 'wiz',
      datasets: [ds.id],
      tokenizer: tok.id,
      model: { nLayer: 1, nHead: 2, nEmbd: 16, blockSize: 16 },
      train: { steps: 30, batchSize: 2, evalEvery: 10, evalIters: 1, sampleEvery: 15, warmup: 1 },
    });
    await waitFor((e) => e.type === 'job.progress' && e.jobId === jobId && e.event.type === 'step');
    expect(await call('pretrain.pause', { jobId, paused: true })).toEqual({ paused: true });
    expect(await call('pretrain.paused', {})).toEqual({ jobIds: [jobId] });
    const stepsNow = () =>
      events.filter(
        (e) => e.type === 'job.progress' && e.jobId === jobId && e.event.type === 'step',
      ).length;
    // the step in flight may finish; then the loop waits
    await new Promise((r) => setTimeout(r, 200));
    const paused = stepsNow();
    await new Promise((r) => setTimeout(r, 300));
    expect(stepsNow()).toBe(paused);
    await expect(call('runs.delete', { id: 'wiz' })).rejects.toMatchObject({ code: 'busy' });
    await call('pretrain.pause', { jobId, paused: false });
    const r = await doneOf(jobId);
    expect(r).toMatchObject({ type: 'result', step: 30, stopped: 'completed' });

    const m = await call<{ steps: unknown[]; evals: unknown[]; samples: unknown[] }>(
      'runs.metrics',
      { id: 'wiz' },
    );
    expect(m.steps).toHaveLength(30);
    expect(m.evals).toHaveLength(3);
    expect(m.samples).toHaveLength(2);
    const info = await call<Array<{ id: string; params: number; bytes: number }>>('runs.info', {});
    expect(info[0]).toMatchObject({ id: 'wiz' });
    expect(info[0]!.params).toBeGreaterThan(0);
    expect(await call('runs.delete', { id: 'wiz' })).toEqual({ deleted: true });
    expect(await call('runs.list', {})).toEqual([]);
  });

  it('stops a paused run with a checkpoint and continues it to the end', async () => {
    const first = await call<{ jobId: string }>('pretrain.start', {
      name: 'again',
      datasets: [ds.id],
      tokenizer: tok.id,
      model: { nLayer: 1, nHead: 2, nEmbd: 16, blockSize: 16 },
      train: { steps: 12, batchSize: 2, evalEvery: 0, sampleEvery: 0, warmup: 1 },
    });
    await waitFor(
      (e) => e.type === 'job.progress' && e.jobId === first.jobId && e.event.type === 'step',
    );
    await call('pretrain.pause', { jobId: first.jobId, paused: true });
    await call('jobs.cancel', { jobId: first.jobId });
    const stopped = (await doneOf(first.jobId)) as { step: number; stopped: string };
    expect(stopped.stopped).toBe('cancelled');
    expect(stopped.step).toBeLessThan(12);
    const next = await call<{ jobId: string }>('pretrain.continue', { id: 'again' });
    expect(await doneOf(next.jobId)).toMatchObject({ step: 12, stopped: 'completed' });
    const m = await call<{ steps: Array<{ step: number }> }>('runs.metrics', { id: 'again' });
    expect(m.steps.map((s) => s.step)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));

    // its model card names the user's dataset and file, not the library's text shards
    const out = path.join(dir, 'ws', 'exports', 'again-hf');
    const exp = await call<{ jobId: string }>('checkpoints.export', { model: 'again', out });
    await doneOf(exp.jobId);
    const card = await fs.readFile(path.join(out, 'README.md'), 'utf8');
    const line = card.split('\n').find((l) => l.startsWith('- **Dataset**'));
    expect(line).toMatch(/^- \*\*Dataset\*\*: corpus \(`corpus\.txt`\), [\d.]+ KiB of text$/);
    expect(card).not.toContain('text-000');
    // a run made before the datasets were recorded: found by the shards' folder in the library
    const stateFile = path.join(dir, 'ws', 'runs', 'again', 'state.json');
    const { datasets: _d, ...older } = JSON.parse(await fs.readFile(stateFile, 'utf8')) as {
      datasets?: unknown;
    };
    await fs.writeFile(stateFile, JSON.stringify(older));
    const out2 = `${out}-2`;
    await doneOf(
      (await call<{ jobId: string }>('checkpoints.export', { model: 'again', out: out2 })).jobId,
    );
    expect(await fs.readFile(path.join(out2, 'README.md'), 'utf8')).toContain(line);
  });

  it('pretrain.start tracks a labelled set zero-shot; a bad table or label is refused by name', async () => {
    const table = path.join(dir, 'labelled.jsonl');
    const rows = Array.from({ length: 12 }, (_, i) =>
      JSON.stringify({ text: `the cat sat ${i}`, label: i % 2 ? 'yes' : 'no' }),
    );
    await fs.writeFile(table, rows.join('\n') + '\n');
    const start = (zeroShot: unknown, name = 'zs') =>
      call<{ jobId: string }>('pretrain.start', {
        name,
        datasets: [ds.id],
        tokenizer: tok.id,
        model: { nLayer: 1, nHead: 2, nEmbd: 16, blockSize: 16 },
        train: { steps: 4, batchSize: 2, evalEvery: 0, sampleEvery: 0, warmup: 1, workers: 1 },
        zeroShot,
      });
    const labels = [
      { label: 'no', word: 'mat' },
      { label: 'yes', word: 'cat' },
    ];
    await expect(
      start({ sets: [{ file: table, labels: [labels[0], { label: 'maybe', word: 'log' }] }] }),
    ).rejects.toMatchObject({
      code: 'bad-request',
      message: expect.stringMatching(
        /^params\.zeroShot: .*labelled\.jsonl: no rows with label "maybe"/,
      ),
    });
    await expect(
      start({ sets: [{ file: path.join(dir, 'missing.jsonl'), labels }] }),
    ).rejects.toMatchObject({ message: expect.stringContaining('params.zeroShot.sets.0.file') });
    await expect(start({ sets: [], every: 2 })).rejects.toMatchObject({ code: 'bad-request' });

    const { jobId } = await start({ sets: [{ file: table, labels }], every: 2, limit: 3 });
    expect(await doneOf(jobId)).toMatchObject({ step: 4, stopped: 'completed' });
    const live = events.flatMap((e) =>
      e.type === 'job.progress' && e.jobId === jobId && e.event.type === 'zeroshot'
        ? [e.event]
        : [],
    );
    expect(live.map((p) => [p.step, p.set, p.n])).toEqual([
      [0, 'labelled.jsonl', 3],
      [2, 'labelled.jsonl', 3],
      [4, 'labelled.jsonl', 3],
    ]);
    const m = await call<{ zeroShot: Array<{ step: number; accuracy: number }> }>('runs.metrics', {
      id: 'zs',
    });
    expect(m.zeroShot.map((p) => [p.step, p.accuracy])).toEqual(
      live.map((p) => [p.step, p.accuracy]),
    );
  });
});
