/**
 * Browser mode end to end: the server in-process on port 0 with a temp workspace, its engine host
 * forked on wasm, a `ws` client speaking the contract.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiEvent, Result } from '../../src/common/api';
import { startServer, type StudioServer } from '../../src/server/server';
import { Client, done } from './wsClient';

const TEXT =
  'the cat sat on the mat. the dog sat on the log. a cat and a dog met on a mat by the log.\n' +
  'to be or not to be, that is the question; whether tis nobler in the mind to suffer.\n';

const TINY_MODEL = { nLayer: 1, nHead: 2, nEmbd: 16, blockSize: 16 };
const TINY_TRAIN = {
  batchSize: 2,
  evalEvery: 2,
  evalIters: 1,
  sampleEvery: 0,
  saveEvery: 0,
  warmup: 1,
};

let dir: string;
let server: StudioServer;
let client: Client;
/** What pretraining trains on: corpus.txt in the library, and a character tokenizer of it. */
let data: { datasets: string[]; tokenizer: string };
const apiUrl = () => `ws://127.0.0.1:${server.port}/api?token=${server.token}`;

/** The result of a job, or its error thrown. */
async function resultOf(jobId: string) {
  const end = await client.waitFor(done(jobId));
  if (end.type !== 'job.done') throw new Error(JSON.stringify(end));
  return end.result;
}

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gpt-studio-server-'));
  await fs.writeFile(path.join(dir, 'corpus.txt'), TEXT.repeat(8));
  server = await startServer({ port: 0, workspace: dir, backend: 'wasm', log: () => {} });
  client = await Client.open(apiUrl());
  // the wizard's first two steps: the corpus into the library, a tokenizer trained on it
  const imported = await client.invoke('datasets.import', { paths: ['corpus.txt'] });
  const { dataset } = (await resultOf(imported.jobId)) as { dataset: { id: string } };
  const trained = await client.invoke('tokenizers.train', { datasets: [dataset.id], kind: 'char' });
  const { tokenizer } = (await resultOf(trained.jobId)) as { tokenizer: { id: string } };
  data = { datasets: [dataset.id], tokenizer: tokenizer.id };
});

afterAll(async () => {
  client?.ws.close();
  await server?.close();
  await fs.rm(dir, { recursive: true, force: true });
});

describe('browser mode', () => {
  it('prints a loopback URL with a 32-byte hex token and serves a page', async () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{64}$/);
    const res = await fetch(server.url);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('GPT Studio');
  });

  it('refuses a connection without the right token (401) or from another origin (403)', async () => {
    await expect(Client.open(`ws://127.0.0.1:${server.port}/api`)).rejects.toThrow('HTTP 401');
    await expect(
      Client.open(`ws://127.0.0.1:${server.port}/api?token=${'0'.repeat(64)}`),
    ).rejects.toThrow('HTTP 401');
    await expect(Client.open(apiUrl(), { Origin: 'http://evil.example' })).rejects.toThrow(
      'HTTP 403',
    );
    for (const origin of [server.origin, `http://localhost:${server.port}`]) {
      const ok = await Client.open(apiUrl(), { Origin: origin });
      ok.ws.close();
    }
  });

  it('app.info round-trips and reports the backend; models.presets works', async () => {
    const info = await client.invoke('app.info', {});
    expect(info.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(info.workspace).toBe(path.resolve(dir));
    expect(info.backend?.name).toBe('wasm');
    expect(info.pid).toBe(server.hostPid());
    const presets = await client.invoke('models.presets', {});
    expect(presets.map((p) => p.name)).toEqual(['tiny', 'small', 'gpt1']);
    expect(presets.map((p) => p.layout)).toEqual(['gpt2', 'gpt2', 'gpt1']);
  });

  it('an invalid request gets bad-request naming the field', async () => {
    const r = await client.raw('pretrain.start', { ...data, name: 'x', train: { steps: -1 } });
    expect(r.error?.code).toBe('bad-request');
    expect(r.error?.message).toMatch(/params\.train\.steps/);
    const missing = await client.raw('pretrain.start', { ...data, datasets: ['nope'], name: 'x' });
    expect(missing.error?.code).toBe('not-found');
    expect(missing.error?.message).toMatch(/params\.datasets\.0: dataset "nope" not found/);
  });

  it('a tiny pretrain streams job events ending in job.done at step 4', async () => {
    const { jobId } = await client.invoke('pretrain.start', {
      ...data,
      name: 'tiny',
      model: TINY_MODEL,
      train: { ...TINY_TRAIN, steps: 4 },
    });
    const end = await client.waitFor(done(jobId));
    if (end.type !== 'job.done') throw new Error(JSON.stringify(end));
    expect(end.result).toMatchObject({ type: 'result', step: 4, stopped: 'completed' });
    const types = client.jobEvents(jobId).map((x) => x.event.type);
    expect(types[0]).toBe('job.started');
    expect(types.at(-1)).toBe('job.done');
    const inner = client
      .jobEvents(jobId)
      .flatMap((x) => (x.event.type === 'job.progress' ? [x.event.event] : []));
    expect(inner.map((e) => e.type)).toContain('start');
    expect(inner.map((e) => e.type)).toContain('eval');
    // the final step always reaches the client
    expect(inner.filter((e) => e.type === 'step').at(-1)).toMatchObject({ step: 4 });

    const runs = await client.invoke('runs.list', {});
    expect(runs.find((r) => r.id === 'tiny')).toMatchObject({ status: 'completed', step: 4 });
    const score = await client.invoke('console.logprobs', { model: 'tiny', text: 'the cat' });
    expect(score.logprobs).toHaveLength(7);

    const gen = await client.invoke('console.generate', {
      model: 'tiny',
      prompt: 'the ',
      sampling: { maxNewTokens: 5, seed: 1 },
    });
    const g = await client.waitFor(done(gen.jobId));
    if (g.type !== 'job.done' || !('ids' in g.result)) throw new Error(JSON.stringify(g));
    expect(g.result.ids.length).toBeLessThanOrEqual(5);
    const texts = client
      .jobEvents(gen.jobId)
      .flatMap((x) => (x.event.type === 'generate.token' ? [x.event.text] : []));
    expect(texts.length).toBeGreaterThan(0);
    // the streamed texts add up to the result (an end-of-text token streams no text)
    expect(texts.join('')).toBe(g.result.text);
  });

  it('one training job at a time; cancel stops it, at ≤ ~10 steps/s, and the run resumes', async () => {
    const { jobId } = await client.invoke('pretrain.start', {
      ...data,
      name: 'long',
      model: TINY_MODEL,
      train: { ...TINY_TRAIN, steps: 100_000, evalEvery: 0 },
    });
    const busy = await client.raw('pretrain.start', {
      ...data,
      name: 'other',
      model: TINY_MODEL,
    });
    expect(busy.error?.code).toBe('busy');
    const isStep = (e: ApiEvent) => e.type === 'job.progress' && e.event.type === 'step';
    const first = await client.waitFor(
      (e) => e.type === 'job.progress' && e.event.type === 'step' && e.jobId === jobId,
    );
    expect(first.type).toBe('job.progress');
    // a page that reconnects asks what still runs
    expect(await client.invoke('jobs.list', {})).toContainEqual({
      jobId,
      kind: 'pretrain',
      runId: 'long',
    });
    // let it train for a while, then stop it
    await new Promise((r) => setTimeout(r, 1500));
    await client.invoke('jobs.cancel', { jobId });
    const end = await client.waitFor(done(jobId));
    if (end.type !== 'job.done') throw new Error(JSON.stringify(end));
    if (!('stopped' in end.result)) throw new Error('not a TrainResult');
    expect(end.result.stopped).toBe('cancelled');
    const stoppedAt = end.result.step;
    expect(stoppedAt).toBeGreaterThan(0);
    expect((await client.invoke('jobs.list', {})).map((j) => j.jobId)).not.toContain(jobId);

    const steps = client.jobEvents(jobId).filter((x) => isStep(x.event));
    const span = (steps.at(-1)!.at - steps[0]!.at) / 1000;
    // steps are made faster than 10/s here, but at most ~10/s (plus the final one) get through
    expect(stoppedAt).toBeGreaterThanOrEqual(steps.length);
    expect(steps.length).toBeLessThanOrEqual(Math.ceil(span * 10) + 3);

    const runs = await client.invoke('runs.list', {});
    expect(runs.find((r) => r.id === 'long')).toMatchObject({
      status: 'cancelled',
      step: stoppedAt,
    });

    const resumed = await client.invoke('pretrain.continue', { id: 'long', steps: stoppedAt + 2 });
    const end2 = await client.waitFor(done(resumed.jobId));
    if (end2.type !== 'job.done') throw new Error(JSON.stringify(end2));
    expect(end2.result).toMatchObject({ step: stoppedAt + 2, stopped: 'completed' });

    const again = await client.raw('jobs.cancel', { jobId });
    expect(again.error?.code).toBe('not-found');
  });

  it('restarts a crashed engine host, fails its job, and the run resumes', async () => {
    const { jobId } = await client.invoke('pretrain.start', {
      ...data,
      name: 'crashed',
      model: TINY_MODEL,
      train: { ...TINY_TRAIN, steps: 100_000, evalEvery: 0 },
    });
    await client.waitFor(
      (e) => e.type === 'job.progress' && e.event.type === 'step' && e.jobId === jobId,
    );
    const before = server.hostPid()!;
    process.kill(before, 'SIGKILL');
    const failed = await client.waitFor(done(jobId));
    if (failed.type !== 'job.failed') throw new Error(JSON.stringify(failed));
    expect(failed.error.code).toBe('internal');
    await client.waitFor((e) => e.type === 'log' && /engine host stopped/.test(e.message));
    // answers again once the new host is up (retry while it starts)
    let info: Result<'app.info'> | undefined;
    for (let i = 0; i < 100 && !info; i++) {
      info = await client.invoke('app.info', {}).catch(() => undefined);
      if (!info) await new Promise((r) => setTimeout(r, 100));
    }
    expect(info?.pid).not.toBe(before);
    expect(info?.pid).toBe(server.hostPid());
    const runs = await client.invoke('runs.list', {});
    expect(runs.find((r) => r.id === 'crashed')?.status).toBe('interrupted');
    const resumed = await client.invoke('pretrain.continue', { id: 'crashed', steps: 2 });
    const end = await client.waitFor(done(resumed.jobId));
    expect(end).toMatchObject({ type: 'job.done', result: { step: 2, stopped: 'completed' } });
  });

  // last: it restarts the server the tests share
  it('a restart on the same workspace serves the same address and keeps the settings', async () => {
    expect(await client.invoke('settings.set', { language: 'zh-CN', valPercent: 1 })).toEqual({
      theme: 'system',
      language: 'zh-CN',
      valPercent: 1,
    });
    const refused = await client.raw('settings.set', { valPercent: 99 });
    expect(refused.error?.message).toMatch(/^settings\.set: params\.valPercent: /);
    const before = server;
    client.ws.close();
    await before.close();
    // no --port: the one the last start saved (the first start asked for any free port)
    server = await startServer({ workspace: dir, backend: 'wasm', log: () => {} });
    expect([server.url, server.port, server.token]).toEqual([
      before.url,
      before.port,
      before.token,
    ]);
    client = await Client.open(apiUrl());
    expect(await client.invoke('settings.get', {})).toEqual({
      theme: 'system',
      language: 'zh-CN',
      valPercent: 1,
    });
  });
});
