/**
 * The hub feature through the engine host (browser mode's path rules): hub.list's curated models
 * with sizes and memory needs, hub.pull as a job with byte progress, the pulled model in
 * models.list at once and usable by the console, refusals as failed jobs with their codes.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ApiEvent, EventOf } from '../../src/common/api';
import { commitOf, MockHub, repoOf, tinyGpt2Files } from '../engine/hub/mockHub';
import { TestHost } from './testHost';

let dir: string;
let hub: MockHub;
let host: TestHost;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hub-host-'));
  const files = await tinyGpt2Files();
  const llama = new Map(files);
  llama.set('config.json', Buffer.from(JSON.stringify({ model_type: 'llama' })));
  hub = new MockHub(
    new Map([repoOf('org/tiny', files), repoOf('org/llama', llama)].map((r) => [r.id, r])),
  );
  await hub.start();
  // the host reads these when it starts (the cache becomes a folder browser mode may read)
  vi.stubEnv('HF_HOME', path.join(dir, 'hf'));
  vi.stubEnv('HF_ENDPOINT', hub.url);
  vi.stubEnv('HF_TOKEN', '');
  vi.stubEnv('HF_HUB_OFFLINE', '');
  host = new TestHost(path.join(dir, 'workspace'));
});
afterAll(async () => {
  vi.unstubAllEnvs();
  await hub.close();
  await fs.rm(dir, { recursive: true, force: true });
});

const ended = (jobId: string) => (e: ApiEvent) =>
  (e.type === 'job.done' || e.type === 'job.failed') && e.jobId === jobId;

describe('hub through the engine host', () => {
  it('lists the curated GPT-2 family with sizes and the memory each needs here', async () => {
    const list = await host.call('hub.list', {});
    expect(list).toMatchObject({
      endpoint: hub.url,
      cacheDir: path.join(dir, 'hf', 'hub'),
      tokenSet: false,
    });
    expect(list.models.map((m) => m.name)).toEqual([
      'distilgpt2',
      'gpt2',
      'gpt2-medium',
      'gpt2-large',
      'gpt2-xl',
    ]);
    const [distil, gpt2, , , xl] = list.models;
    expect(gpt2).toMatchObject({ curated: true, params: 124_439_808, cached: null });
    expect(distil!.sizeBytes).toBeLessThan(gpt2!.sizeBytes);
    expect(xl!.memory.needs.f32).toBeGreaterThan(xl!.memory.needs.f16);
    expect(xl!.memory.needs.f16).toBeGreaterThan(xl!.memory.needs.q8);
    expect(gpt2!.memory.budgetBytes).toBeGreaterThan(0);
    expect(gpt2!.memory.auto).not.toBeNull();
  });

  it('pulls as a job with progress; the model is in models.list at once and the console uses it', async () => {
    const { jobId } = await host.call('hub.pull', { repo: 'org/tiny' });
    const end = await host.waitFor(ended(jobId));
    expect(end.type, JSON.stringify(end)).toBe('job.done');
    const progress = host.events.filter(
      (e): e is EventOf<'job.progress'> => e.type === 'job.progress' && e.jobId === jobId,
    );
    expect(progress.some((e) => e.event.type === 'hub.progress' && e.event.bytes > 0)).toBe(true);
    const result = (end as EventOf<'job.done'>).result;
    const snapshot = path.join(
      dir,
      'hf',
      'hub',
      'models--org--tiny',
      'snapshots',
      commitOf('org/tiny'),
    );
    expect(result).toMatchObject({ type: 'hub.result', dir: snapshot, cached: false });

    const models = await host.call('models.list', {});
    const pulled = models.find((m) => m.ref === snapshot);
    expect(pulled).toMatchObject({
      name: 'org/tiny',
      source: 'hub',
      kind: 'imported',
      tokenizer: 'bpe',
    });
    // usable through the host's path rules (the cache is outside the workspace)
    const weights = await host.call('console.load', { model: snapshot, weights: 'f32' });
    expect(weights.format).toBe('f32');
    // listed on the Get models page as cached, not deletable as a workspace model
    const list = await host.call('hub.list', {});
    expect(list.models.find((m) => m.repo === 'org/tiny')).toMatchObject({
      curated: false,
      cached: { ref: snapshot, revisions: ['main'] },
    });
    const del = await host.raw('models.delete', { model: snapshot });
    expect(del.error?.code).toBe('forbidden');
  });

  it('fails the job with the refusal and its code', async () => {
    for (const [repo, code, words] of [
      ['org/llama', 'bad-request', 'model_type "llama"'],
      ['org/missing', 'not-found', 'no such model repo'],
    ] as const) {
      const { jobId } = await host.call('hub.pull', { repo });
      const end = await host.waitFor(ended(jobId));
      expect(end).toMatchObject({ type: 'job.failed', kind: 'pull', error: { code } });
      expect((end as EventOf<'job.failed'>).error.message).toContain(words);
    }
    const bad = await host.raw('hub.pull', { repo: '../x' });
    expect(bad.error?.code).toBe('bad-request');
  });
});
