/**
 * The host's shared model cache and its request jobs (in-process, wasm): `console.logprobs` and
 * `console.score` run as `score` jobs (job.started with the model's name, job.done/failed) while
 * the request still answers with the scores; jobs.cancel stops a long score quickly with a
 * `cancelled` reply, and the host keeps answering other requests meanwhile; a second request on a
 * model does not reload it. A backend abort makes the host fail the request, say why and exit with
 * its restart code.
 */
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiEvent, EventOf } from '../../src/common/api';
import { saveModelDir } from '../../src/engine/checkpoint/modelDir';
import { GPT } from '../../src/engine/model/gpt';
import * as tf from '../../src/engine/tf';
import type { JobResult } from '../../src/server/context';
import { BACKEND_ABORT_EXIT_CODE } from '../../src/server/host';
import { TestHost as Host } from './testHost';
import { charTokenizer, randomWeights, removeDir, tempDir, tinyConfig } from '../engine/helpers';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz .,\n';

const started = (e: ApiEvent): e is EventOf<'job.started'> => e.type === 'job.started';

let ws: string;
let modelDir: string;
let host: Host;

beforeAll(async () => {
  ws = await tempDir('gpt-studio-hostjobs-');
  const tok = charTokenizer(ALPHABET);
  const cfg = tinyConfig({ vocabSize: tok.vocabSize, blockSize: 64, nEmbd: 32, nHead: 4 });
  host = new Host(ws, {}, true);
  await host.call('backend.report', {}); // the backend is up
  const model = new GPT(cfg, randomWeights(cfg, 5, 0.3));
  modelDir = path.join(ws, 'models', 'tiny');
  await saveModelDir(modelDir, model, tok);
  model.dispose();
});
afterAll(async () => {
  await host?.host.shutdown();
  await removeDir(ws);
});

describe('score as a job', () => {
  it('console.logprobs: job.started (subject: the model) and job.done, the reply is the scores', async () => {
    const before = host.events.length;
    const r = await host.call('console.logprobs', {
      model: modelDir,
      text: 'the cat sat on the mat.',
    });
    expect(r.tokens).toHaveLength('the cat sat on the mat.'.length);
    expect(Number.isFinite(r.sum)).toBe(true);
    const events = host.events.slice(before);
    const start = events.find(started)!;
    expect(start).toMatchObject({ kind: 'score', subject: 'tiny' });
    const done = events.find((e) => e.type === 'job.done' && e.jobId === start.jobId);
    expect(done).toMatchObject({
      kind: 'score',
      result: { type: 'score.result', request: 'console.logprobs', tokens: r.tokens.length },
    });
  });

  it('console.score: a score job too, and the second request does not reload the model', async () => {
    const loads = host.host.models.stats().loads;
    const before = host.events.length;
    const { choices } = await host.call('console.score', {
      model: modelDir,
      context: 'the cat',
      candidates: [' sat', ' ran'],
    });
    expect(choices).toHaveLength(2);
    const start = host.events.slice(before).find(started)!;
    expect(start).toMatchObject({ kind: 'score', subject: 'tiny' });
    const done = await host.waitFor((e) => e.type === 'job.done' && e.jobId === start.jobId);
    expect(done).toMatchObject({ result: { request: 'console.score', tokens: 8 } });
    // the model is the one the first test loaded: cached, not loaded again
    await host.call('console.logprobs', { model: modelDir, prompt: 'the', continuation: ' cat' });
    await host.call('console.generate', {
      model: modelDir,
      prompt: 'the',
      sampling: { maxNewTokens: 3, seed: 1 },
    });
    expect(host.host.models.stats().loads).toBe(loads);
    expect(host.host.models.stats().entries).toBe(1);
  });

  it('jobs.cancel stops a long score quickly with a cancelled reply; other requests are answered meanwhile', async () => {
    const words = ['the', 'cat', 'sat', 'on', 'a', 'mat', 'and', 'dog', 'ran', 'far'];
    let text = '';
    for (let i = 0; text.length < 50_000; i++) text += words[(i * 7) % words.length] + ' ';
    const before = host.events.length;
    const reply = host.raw('console.logprobs', { model: modelDir, text });
    const start = await host.waitFor(
      (e): e is EventOf<'job.started'> =>
        started(e) && e.kind === 'score' && host.events.indexOf(e) >= before,
    );
    // well into its batches (≈ 3 s in all here): a timer still fires on time, the loop is free
    const slept = Date.now();
    await new Promise((r) => setTimeout(r, 150));
    expect(Date.now() - slept).toBeLessThan(1000);
    // and the host answers a cheap request while the score runs
    const asked = Date.now();
    const info = await host.call('app.info', {});
    const infoMs = Date.now() - asked;
    expect(info.pid).toBe(process.pid);
    expect(infoMs).toBeLessThan(1000);
    let settled = false;
    void reply.then(() => (settled = true));
    expect(settled).toBe(false); // still scoring
    const cancelAt = Date.now();
    expect(await host.call('jobs.cancel', { jobId: start.jobId })).toEqual({ cancelled: true });
    const r = await reply;
    const cancelMs = Date.now() - cancelAt;
    expect(r.error?.code).toBe('cancelled');
    expect(cancelMs).toBeLessThan(1000);
    const failed = await host.waitFor((e) => e.type === 'job.failed' && e.jobId === start.jobId);
    expect(failed).toMatchObject({ kind: 'score', error: { code: 'cancelled' } });
    // the job is gone; the cached model was released, not disposed
    const again = await host.raw('jobs.cancel', { jobId: start.jobId });
    expect(again.error?.code).toBe('not-found');
    const ok = await host.call('console.logprobs', { model: modelDir, text: 'the cat' });
    expect(ok.tokens).toHaveLength(7);
  });
});

describe('a backend abort restarts the host', () => {
  const abortError = () => {
    const err = new Error('Aborted(). Build with -sASSERTIONS for more info.');
    err.name = 'RuntimeError';
    return err;
  };

  it('a request that fails with Aborted(): the reply says so, a log event, then exit code 70', async () => {
    const w = await tempDir('gpt-studio-abort-');
    const h = new Host(w, { paths: { mode: 'unrestricted' } }, true);
    try {
      await h.call('backend.report', {});
      // a handler whose backend call aborts, as the wasm heap does once exhausted
      const handlers = (h.host as unknown as { handlers: Record<string, () => unknown> }).handlers;
      handlers['models.presets'] = () => {
        throw new (
          globalThis as unknown as { WebAssembly: { RuntimeError: new (m: string) => Error } }
        ).WebAssembly.RuntimeError('Aborted()');
      };
      const r = await h.raw('models.presets', {});
      expect(r.error?.code).toBe('engine');
      expect(r.error?.message).toBe(
        'the compute backend crashed (Aborted()); the engine is restarting, try again',
      );
      const log = await h.waitFor((e) => e.type === 'log' && e.level === 'error');
      expect((log as EventOf<'log'>).message).toMatch(
        /the compute backend crashed \(Aborted\(\)\) during request "models.presets"; the engine host restarts \(exit code 70\)/,
      );
      await new Promise((r) => setTimeout(r, 50));
      expect(h.exits).toEqual([BACKEND_ABORT_EXIT_CODE]);
      expect(BACKEND_ABORT_EXIT_CODE).toBe(70);
      // until it is gone, the host touches the backend no more
      const later = await h.raw('app.info', {});
      expect(later.error?.message).toMatch(/the engine is restarting/);
    } finally {
      await removeDir(w);
    }
  });

  it('a job that fails with an abort: job.failed says so, other jobs fail too, then exit', async () => {
    const w = await tempDir('gpt-studio-abort-');
    const h = new Host(w, { paths: { mode: 'unrestricted' } }, true);
    try {
      await h.call('backend.report', {});
      // another job, still running when the backend breaks; it ends by itself later
      let finishOther: (r: JobResult) => void = () => {};
      const { jobId: other } = h.host.context.startJob(
        'evaluate',
        {},
        () => new Promise<JobResult>((r) => (finishOther = r)),
      );
      await h.waitFor((e) => e.type === 'job.started' && e.jobId === other);
      const { jobId } = h.host.context.startJob('eval-icl', {}, () => Promise.reject(abortError()));
      const failed = await h.waitFor((e) => e.type === 'job.failed' && e.jobId === jobId);
      expect((failed as EventOf<'job.failed'>).error.message).toMatch(
        /^the compute backend crashed \(Aborted\(\)\. Build with/,
      );
      const otherFailed = await h.waitFor((e) => e.type === 'job.failed' && e.jobId === other);
      expect((otherFailed as EventOf<'job.failed'>).error.message).toBe(
        'the compute backend crashed (Aborted(). Build with -sASSERTIONS for more info.) under ' +
          'another request; the engine is restarting, try again',
      );
      await h.waitFor((e) => e.type === 'log' && /during a eval-icl job/.test(e.message));
      await new Promise((r) => setTimeout(r, 50));
      expect(h.exits).toEqual([70]);
      // the other job's own end sends nothing more
      finishOther({ type: 'evaluate.result' } as unknown as JobResult);
      await new Promise((r) => setTimeout(r, 20));
      expect(h.events.filter((e) => e.type === 'job.done')).toHaveLength(0);
    } finally {
      await removeDir(w);
    }
  });

  it('a score that aborts: the reply and the job say so', async () => {
    const w = await tempDir('gpt-studio-abort-');
    const h = new Host(w, { paths: { mode: 'unrestricted' } }, true);
    try {
      await h.call('backend.report', {});
      const r0 = await h.call('console.logprobs', { model: modelDir, text: 'the cat' });
      expect(r0.tokens).toHaveLength(7);
      // the next forward aborts inside the engine
      const loaded = await h.host.models.acquire(modelDir);
      const hidden = loaded.model.hidden.bind(loaded.model);
      loaded.model.hidden = () => {
        throw abortError();
      };
      const r = await h.raw('console.logprobs', { model: modelDir, text: 'the cat' });
      loaded.model.hidden = hidden;
      loaded.release();
      expect(r.error?.message).toMatch(/^the compute backend crashed \(Aborted\(\)/);
      const failed = await h.waitFor((e) => e.type === 'job.failed');
      expect((failed as EventOf<'job.failed'>).error.message).toMatch(/engine is restarting/);
      await new Promise((r) => setTimeout(r, 50));
      expect(h.exits).toEqual([70]);
    } finally {
      h.host.models.clear();
      await removeDir(w);
    }
  });
});

describe('memory', () => {
  it('shutdown disposes the cached models', async () => {
    const w = await tempDir('gpt-studio-cache-');
    const h = new Host(w, { paths: { mode: 'unrestricted' } }, true);
    try {
      await h.call('backend.report', {});
      await h.call('console.logprobs', { model: modelDir, text: 'the cat' }); // the first: shapes cached
      const base = tf.memory().numBytes;
      await h.call('console.logprobs', { model: modelDir, text: 'the cat' });
      expect(tf.memory().numBytes).toBe(base);
      const cached = h.host.models.stats().bytes;
      expect(cached).toBeGreaterThan(0);
      await h.host.shutdown();
      expect(tf.memory().numBytes).toBe(base - cached);
    } finally {
      await removeDir(w);
    }
  });
});
