import { describe, expect, it, vi } from 'vitest';
import { appUrlMatcher, handleInvoke, senderProblem, type SenderInfo } from '../../src/main/ipc';

const isAppUrl = appUrlMatcher(['app://gpt-studio/']);
const trusted = { webContentsId: 7, isAppUrl };
const good: SenderInfo = {
  webContentsId: 7,
  frameUrl: 'app://gpt-studio/index.html#/data',
  isMainFrame: true,
};

describe('main request gate', () => {
  it('forwards a valid request from the main window', async () => {
    const forward = vi.fn(async () => ({ type: 'result' as const, result: { jobId: 'j1' } }));
    const params = {
      datasets: ['austen'],
      tokenizer: 'char-1',
      name: 'run1',
      train: { steps: 10 },
    };
    const reply = await handleInvoke(good, trusted, 'pretrain.start', params, forward);
    expect(reply).toEqual({ type: 'result', result: { jobId: 'j1' } });
    expect(forward).toHaveBeenCalledWith('pretrain.start', params);
  });

  it('fills in missing params as {}', async () => {
    const forward = vi.fn(async () => ({ type: 'result' as const, result: [] }));
    await handleInvoke(good, trusted, 'runs.list', undefined, forward);
    expect(forward).toHaveBeenCalledWith('runs.list', {});
  });

  it('refuses bad params with a bad-request naming the field', async () => {
    const forward = vi.fn();
    const reply = await handleInvoke(
      good,
      trusted,
      'pretrain.start',
      { datasets: ['austen'], tokenizer: 'char-1', name: 'run1', train: { steps: -3 } },
      forward,
    );
    expect(reply.type).toBe('error');
    if (reply.type !== 'error') return;
    expect(reply.error.code).toBe('bad-request');
    expect(reply.error.message).toContain('params.train.steps');
    expect(forward).not.toHaveBeenCalled();
  });

  it('refuses an unknown request and a run name with a slash', async () => {
    const forward = vi.fn();
    const a = await handleInvoke(good, trusted, 'fs.readFile', { path: '/etc/passwd' }, forward);
    expect(a).toMatchObject({ type: 'error', error: { code: 'bad-request' } });
    const b = await handleInvoke(good, trusted, 'runs.get', { id: '../../etc' }, forward);
    expect(b).toMatchObject({ type: 'error', error: { code: 'bad-request' } });
    if (b.type === 'error') expect(b.error.message).toContain('params.id');
    const c = await handleInvoke(good, trusted, 42, {}, forward);
    expect(c).toMatchObject({ type: 'error', error: { code: 'bad-request' } });
    expect(forward).not.toHaveBeenCalled();
  });

  it('refuses a request from another webContents, a sub-frame or a foreign page', async () => {
    const forward = vi.fn();
    const cases: SenderInfo[] = [
      { ...good, webContentsId: 8 },
      { ...good, isMainFrame: false },
      { ...good, frameUrl: 'https://evil.example/' },
      { ...good, frameUrl: 'file:///tmp/index.html' },
      { ...good, frameUrl: null },
    ];
    for (const sender of cases) {
      const reply = await handleInvoke(sender, trusted, 'runs.list', {}, forward);
      expect(reply).toMatchObject({ type: 'error', error: { code: 'bad-request' } });
      if (reply.type === 'error') expect(reply.error.message).toMatch(/^refused: /);
    }
    // no window at all
    expect(senderProblem(good, { webContentsId: null, isAppUrl })).not.toBeNull();
    expect(forward).not.toHaveBeenCalled();
  });

  it('turns a forwarding failure into an internal error', async () => {
    const reply = await handleInvoke(good, trusted, 'runs.list', {}, async () => {
      throw new Error('gone');
    });
    expect(reply).toMatchObject({ type: 'error', error: { code: 'internal' } });
  });

  it('matches the dev server and app:// by scheme and host only', () => {
    const m = appUrlMatcher(['http://localhost:5173/', 'app://gpt-studio/']);
    expect(m('http://localhost:5173/index.html')).toBe(true);
    expect(m('app://gpt-studio/x.js')).toBe(true);
    expect(m('http://localhost:5174/')).toBe(false);
    expect(m('https://localhost:5173/')).toBe(false);
    expect(m('app://other/')).toBe(false);
    expect(m('not a url')).toBe(false);
  });
});
