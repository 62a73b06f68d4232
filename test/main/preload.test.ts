import { describe, expect, it, vi } from 'vitest';

const h = vi.hoisted(() => {
  const exposed: Record<string, unknown> = {};
  const listeners = new Map<string, Set<(...a: unknown[]) => void>>();
  const electron = {
    webUtils: {
      getPathForFile: vi.fn((f: { path?: string }) => {
        if (!f.path) throw new Error('not a File');
        return f.path;
      }),
    },
    contextBridge: {
      exposeInMainWorld: vi.fn((key: string, api: unknown) => (exposed[key] = api)),
    },
    ipcRenderer: {
      invoke: vi.fn(async (..._a: unknown[]) => ({ type: 'result', result: 'ok' })),
      on: vi.fn((ch: string, fn: (...a: unknown[]) => void) => {
        if (!listeners.has(ch)) listeners.set(ch, new Set());
        listeners.get(ch)!.add(fn);
      }),
      removeListener: vi.fn((ch: string, fn: (...a: unknown[]) => void) =>
        listeners.get(ch)?.delete(fn),
      ),
    },
  };
  return { exposed, listeners, electron };
});
vi.mock('electron', () => ({ ...h.electron, default: h.electron }));

await import('../../src/preload/index');
import type { GptStudioBridge } from '../../src/common/bridge';

describe('preload bridge', () => {
  const bridge = h.exposed['gptStudio'] as GptStudioBridge;

  it('exposes exactly invoke, on and pathForFile as window.gptStudio', () => {
    expect(h.electron.contextBridge.exposeInMainWorld).toHaveBeenCalledTimes(1);
    expect(Object.keys(bridge).sort()).toEqual(['invoke', 'on', 'pathForFile']);
  });

  it("gives a dropped file's path, or '' for anything else", () => {
    expect(bridge.pathForFile({ path: '/home/u/corpus.txt' })).toBe('/home/u/corpus.txt');
    expect(bridge.pathForFile({})).toBe('');
  });

  it('invokes over api:invoke', async () => {
    await expect(bridge.invoke('runs.list', {})).resolves.toEqual({ type: 'result', result: 'ok' });
    expect(h.electron.ipcRenderer.invoke).toHaveBeenCalledWith('api:invoke', 'runs.list', {});
  });

  it('delivers events without the IPC event object, and unsubscribes', () => {
    const got: unknown[] = [];
    const off = bridge.on((e) => got.push(e));
    const event = { type: 'log', level: 'info', message: 'x' };
    for (const fn of h.listeners.get('api:event')!) fn({ sender: 'secret' }, event);
    expect(got).toEqual([event]);
    off();
    expect(h.listeners.get('api:event')!.size).toBe(0);
  });
});
