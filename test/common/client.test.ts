import { describe, expect, it } from 'vitest';
import type { InvokeMessage } from '../../src/common/api';
import { ApiClient, ApiRequestError } from '../../src/common/client';

describe('ApiClient', () => {
  it('matches results and typed errors to their requests and dispatches events', async () => {
    const sent: InvokeMessage[] = [];
    const c = new ApiClient({ send: (m) => void sent.push(m) });
    const a = c.invoke('presets.list', {});
    const b = c.invoke('job.cancel', { jobId: 'j1' });
    expect(sent.map((m) => m.name)).toEqual(['presets.list', 'job.cancel']);
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
});
