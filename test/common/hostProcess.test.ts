/**
 * The HostProcess main and browser mode share, with a child as the server forks it (a channel
 * that closes, exits with a signal): who asked for what, restarts, and a clean shutdown.
 */
import { describe, expect, it } from 'vitest';
import type { ApiEvent, InvokeMessage } from '../../src/common/api';
import type { BridgeReply } from '../../src/common/bridge';
import { HostProcess, type HostChild } from '../../src/common/hostProcess';

class ForkedChild implements HostChild {
  static n = 500;
  readonly pid = ForkedChild.n++;
  connected = true;
  sent: InvokeMessage[] = [];
  stops = 0;
  kills = 0;
  private fns: Record<string, Array<(...x: never[]) => void>> = {};
  on(event: 'message' | 'exit', fn: (...x: never[]) => void) {
    (this.fns[event] ??= []).push(fn);
  }
  postMessage(msg: InvokeMessage) {
    this.sent.push(msg);
  }
  stop() {
    this.stops++;
    this.connected = false;
  }
  kill() {
    this.kills++;
  }
  emit(event: string, ...x: unknown[]) {
    for (const fn of this.fns[event] ?? []) fn(...(x as never[]));
  }
}

function setup() {
  const children: ForkedChild[] = [];
  const events: ApiEvent[] = [];
  const timers: Array<{ fn: () => void; ms: number; cleared: boolean }> = [];
  const host = new HostProcess({
    spawn: () => {
      const c = new ForkedChild();
      children.push(c);
      return c;
    },
    onEvent: (e) => events.push(e),
    setTimeout: (fn, ms) => {
      const t = { fn, ms, cleared: false };
      timers.push(t);
      return t;
    },
    clearTimeout: (t) => ((t as { cleared: boolean }).cleared = true),
  });
  return { host, children, events, timers };
}

describe('the engine host process (shared by main and browser mode)', () => {
  it('answers each asker synchronously, and drops the replies of one that went away', () => {
    const { host, children } = setup();
    const child = children[0]!;
    const a: BridgeReply[] = [];
    const b: BridgeReply[] = [];
    host.send('runs.list', {}, (r) => a.push(r), 'client-a');
    host.send('runs.list', {}, (r) => b.push(r), 'client-b');
    host.forget('client-b');
    child.emit('message', { id: 1, type: 'result', result: ['a'] });
    child.emit('message', { id: 2, type: 'result', result: ['b'] });
    expect(a).toEqual([{ type: 'result', result: ['a'] }]);
    expect(b).toEqual([]);
  });

  it('refuses requests while the channel is closing, and says which signal ended the host', () => {
    const { host, children, events, timers } = setup();
    const child = children[0]!;
    child.connected = false;
    const replies: BridgeReply[] = [];
    host.send('app.info', {}, (r) => replies.push(r));
    expect(replies[0]).toMatchObject({ type: 'error', error: { message: /restarting/ } });
    expect(child.sent).toEqual([]);
    child.emit('exit', null, 'SIGKILL');
    expect(events.at(-1)).toMatchObject({ type: 'log', level: 'error' });
    expect((events.at(-1) as { message: string }).message).toMatch(/signal SIGKILL.*restart 1/);
    timers[0]!.fn();
    expect(children).toHaveLength(2);
  });

  it('after a backend abort (exit code 70) says the backend is fresh', () => {
    const { children, events } = setup();
    children[0]!.emit('exit', 70, null);
    expect((events.at(-1) as { message: string }).message).toMatch(/fresh compute backend/);
  });

  it('shuts down by asking the child to stop, and does not kill one that exits in time', async () => {
    const { host, children, timers } = setup();
    const child = children[0]!;
    const done = host.shutdown(10_000);
    expect(child.stops).toBe(1);
    child.emit('exit', 0, null);
    await done;
    expect(timers).toHaveLength(1);
    expect(timers[0]!.cleared).toBe(true);
    expect(child.kills).toBe(0);
    expect(children).toHaveLength(1);
  });
});
