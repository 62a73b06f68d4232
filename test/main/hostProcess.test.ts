import { describe, expect, it } from 'vitest';
import type { ApiEvent, InvokeMessage } from '../../src/common/api';
import { crashMessage } from '../../src/common/api';
import { HostProcess, utilityHostChild, type UtilityChild } from '../../src/main/hostProcess';

/** Electron's utility process as main drives it: messages out, message and exit events in. */
class FakeChild implements UtilityChild {
  static n = 100;
  readonly pid = FakeChild.n++;
  sent: Array<InvokeMessage | { type: 'shutdown' }> = [];
  private fns: Record<string, Array<(x: never) => void>> = {};
  on(event: 'message' | 'exit', fn: (x: never) => void) {
    (this.fns[event] ??= []).push(fn);
    return this;
  }
  postMessage(msg: unknown) {
    this.sent.push(msg as InvokeMessage | { type: 'shutdown' });
  }
  kill() {
    this.emit('exit', 0);
    return true;
  }
  emit(event: string, x: unknown) {
    for (const fn of this.fns[event] ?? []) fn(x as never);
  }
}

function setup() {
  const children: FakeChild[] = [];
  const events: ApiEvent[] = [];
  const timers: Array<{ fn: () => void; ms: number }> = [];
  const host = new HostProcess({
    spawn: () => {
      const c = new FakeChild();
      children.push(c);
      return utilityHostChild(c);
    },
    onEvent: (e) => events.push(e),
    setTimeout: (fn, ms) => timers.push({ fn, ms }),
  });
  return { host, children, events, timers };
}

describe('engine host process (main)', () => {
  it('on quit asks the host to stop its jobs and waits for it to exit, without a restart', async () => {
    const { host, children, timers } = setup();
    const child = children[0]!;
    const done = host.shutdown();
    expect(child.sent.at(-1)).toEqual({ type: 'shutdown' });
    child.emit('exit', 0); // the host saved and exited
    await done;
    expect(children).toHaveLength(1);
    expect(timers.filter((t) => t.ms !== 10_000)).toEqual([]);
  });

  it('on quit kills a host that does not exit in time', async () => {
    const { host, children, timers } = setup();
    const child = children[0]!;
    let exited = false;
    child.on('exit', () => (exited = true));
    const done = host.shutdown(5000);
    const deadline = timers.find((t) => t.ms === 5000)!;
    deadline.fn();
    await done;
    expect(exited).toBe(true);
    expect(children).toHaveLength(1);
  });

  it('pairs replies with requests and forwards events', async () => {
    const { host, children, events } = setup();
    const child = children[0]!;
    const p = host.invoke('runs.list', {});
    expect(child.sent).toEqual([{ id: 1, type: 'invoke', name: 'runs.list', params: {} }]);
    child.emit('message', { type: 'event', event: { type: 'log', level: 'info', message: 'hi' } });
    child.emit('message', { id: 1, type: 'result', result: [] });
    await expect(p).resolves.toEqual({ type: 'result', result: [] });
    expect(events).toEqual([{ type: 'log', level: 'info', message: 'hi' }]);
    const q = host.invoke('runs.get', { id: 'x' });
    child.emit('message', {
      id: 2,
      type: 'error',
      error: { code: 'not-found', message: 'run "x" not found' },
    });
    await expect(q).resolves.toEqual({
      type: 'error',
      error: { code: 'not-found', message: 'run "x" not found' },
    });
  });

  it('on a crash: fails pending requests and running jobs, tells the renderer, restarts', async () => {
    const { host, children, events, timers } = setup();
    const child = children[0]!;
    child.emit('message', {
      type: 'event',
      event: { type: 'job.started', jobId: 'j1', kind: 'pretrain', runId: 'r1' },
    });
    const pending = host.invoke('runs.list', {});
    child.emit('exit', 134);
    await expect(pending).resolves.toMatchObject({ type: 'error', error: { code: 'internal' } });
    expect(events).toContainEqual({
      type: 'job.failed',
      jobId: 'j1',
      kind: 'pretrain',
      error: { code: 'internal', message: crashMessage('pretrain') },
    });
    expect(crashMessage('pretrain')).toMatch(/checkpoint.*resumed/);
    // a job that writes no checkpoint is not told it has one
    expect(crashMessage('generate')).not.toMatch(/checkpoint/);
    expect(crashMessage('dataset.import')).toMatch(/dataset.import job.*try again/);
    expect(events.at(-1)).toMatchObject({ type: 'log', level: 'error' });
    expect((events.at(-1) as { message: string }).message).toMatch(/exit code 134.*restart/);
    // while restarting, a request fails fast
    await expect(host.invoke('runs.list', {})).resolves.toMatchObject({
      type: 'error',
      error: { message: expect.stringMatching(/restarting/) },
    });
    expect(timers).toHaveLength(1);
    timers[0]!.fn();
    expect(children).toHaveLength(2);
    expect(host.pid).toBe(children[1]!.pid);
    // the new child answers
    const p = host.invoke('models.presets', {});
    children[1]!.emit('message', {
      id: (children[1]!.sent[0] as InvokeMessage).id,
      type: 'result',
      result: [],
    });
    await expect(p).resolves.toEqual({ type: 'result', result: [] });
  });

  it('does not restart after close, and drops malformed messages with a warning', () => {
    const { host, children, events, timers } = setup();
    children[0]!.emit('message', { nonsense: true });
    expect(events.at(-1)).toMatchObject({ type: 'log', level: 'warn' });
    host.close();
    expect(timers).toHaveLength(0);
    expect(children).toHaveLength(1);
  });
});
