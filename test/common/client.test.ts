import { describe, expect, it } from 'vitest';
import type { InvokeMessage } from '../../src/common/api';
import { ApiClient, ApiRequestError } from '../../src/common/client';

describe('ApiClient', () => {
  it('matches results and typed errors to their requests and dispatches events', async () => {
    const sent: InvokeMessage[] = [];
    const c = new ApiClient({ send: (m) => void sent.push(m) });
    const a = c.invoke('models.presets', {});
    const b = c.invoke('jobs.cancel', { jobId: 'j1' });
    expect(sent.map((m) => m.name)).toEqual(['models.presets', 'jobs.cancel']);
    const logs: string[] = [];
    c.on('log', (e) => logs.push(e.message));
    c.receive({ type: 'event', event: { type: 'log', level: 'info', message: 'hi' } });
    c.receive({ type: 'event', event: { type: 'log', level: 'nope', message: 'bad' } }); // dropped
    c.receive({ id: sent[1]!.id, type: 'error', error: { code: 'not-found', message: 'no j1' } });
    c.receive({ id: sent[0]!.id, type: 'result', result: [] });
    await expect(a).resolves.toEqual([]);
    const err = await b.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiRequestError);
    expect((err as ApiRequestError).code).toBe('not-found');
    expect(logs).toEqual(['hi']);
  });

  it('fails pending requests when the transport closes', async () => {
    const c = new ApiClient({ send: () => {} });
    const p = c.invoke('app.info', {});
    c.disconnected();
    await expect(p).rejects.toMatchObject({ code: 'internal' });
  });

  it("followJob: one job's events until it ends, those before its reply held, not lost", async () => {
    const sent: InvokeMessage[] = [];
    const c = new ApiClient({ send: (m) => void sent.push(m) });
    const seen: string[] = [];
    c.followJob(c.invoke('console.generate', { model: 'm', prompt: 'a' }), {
      started: () => seen.push('started'),
      token: (e) => seen.push(`token ${e.text}`),
      progress: (e) => seen.push(`progress ${e.type}`),
      done: () => seen.push('done'),
      failed: () => seen.push('failed'),
    });
    const event = (e: unknown) => c.receive({ type: 'event', event: e });
    // events can overtake the reply (Electron sends them on another channel)
    event({ type: 'job.started', jobId: 'j1', kind: 'generate' });
    event({ type: 'generate.token', jobId: 'j1', id: 1, text: 'x', logprob: null });
    event({ type: 'generate.token', jobId: 'other', id: 1, text: 'y', logprob: null });
    c.receive({ id: sent[0]!.id, type: 'result', result: { jobId: 'j1' } });
    await new Promise((r) => setTimeout(r, 0));
    event({
      type: 'job.done',
      jobId: 'j1',
      kind: 'generate',
      result: { ids: [1], text: 'x', stoppedBy: 'length' },
    });
    event({ type: 'generate.token', jobId: 'j1', id: 2, text: 'z', logprob: null });
    expect(seen).toEqual(['started', 'token x', 'done']);

    const failed: string[] = [];
    const stop = c.followJob('j2', { failed: (e) => failed.push(e.code) });
    event({
      type: 'job.failed',
      jobId: 'j2',
      kind: 'export',
      error: { code: 'cancelled', message: 'stopped' },
    });
    stop();
    expect(failed).toEqual(['cancelled']);
  });
});
