import { describe, expect, it } from 'vitest';
import { PauseGate } from '../../../src/engine/train/pause';

describe('PauseGate', () => {
  it('passes when running, waits while paused, and lets a stop through', async () => {
    const gate = new PauseGate();
    await gate.wait();
    gate.pause();
    let passed = false;
    const waiting = gate.wait().then(() => (passed = true));
    await new Promise((r) => setImmediate(r));
    expect(passed).toBe(false);
    gate.resume();
    await waiting;
    expect(passed).toBe(true);

    gate.pause();
    const stop = new AbortController();
    const stopped = gate.wait(stop.signal);
    stop.abort();
    await stopped;
    expect(gate.paused).toBe(true);
  });
});
