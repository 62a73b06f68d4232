import { describe, expect, it } from 'vitest';
import type { TrainEvent } from '../../src/common/events';
import { stepEvent as step } from '../common/trainEvents';
import { coalesce } from '../../src/server/coalescer';

describe('Coalescer', () => {
  it('keeps at most one step per interval per job, holding the latest', () => {
    let t = 0;
    const c = coalesce(100, () => t);
    const sent: TrainEvent[] = [];
    for (let i = 1; i <= 50; i++) {
      sent.push(...c.push('a', step(i)));
      t += 10; // 100 steps/s
    }
    // 500 ms of steps at 100/s → one per 100 ms
    expect(sent.map((e) => (e as { step: number }).step)).toEqual([1, 11, 21, 31, 41]);
    // the held latest step comes out at the end
    expect(c.end('a')).toEqual([step(50)]);
    expect(c.end('a')).toEqual([]);
  });

  it('passes eval/sample/checkpoint/start events at once, after any held step', () => {
    let t = 0;
    const c = coalesce(100, () => t);
    expect(c.push('a', step(1))).toEqual([step(1)]);
    t = 5;
    expect(c.push('a', step(2))).toEqual([]);
    const ev: TrainEvent = { type: 'eval', step: 2, trainLoss: 1, valLoss: 1, valPerplexity: 2.7 };
    expect(c.push('a', ev)).toEqual([step(2), ev]);
    const cp: TrainEvent = { type: 'checkpoint', step: 2, path: '/r' };
    expect(c.push('a', cp)).toEqual([cp]);
  });

  it('keeps jobs apart and releases due events on a timer flush', () => {
    let t = 0;
    const c = coalesce(100, () => t);
    expect(c.push('a', step(1))).toHaveLength(1);
    expect(c.push('b', step(1))).toHaveLength(1);
    t = 50;
    expect(c.push('a', step(2))).toEqual([]);
    expect(c.flush('a', false)).toEqual([]); // not due yet
    t = 120;
    expect(c.flush('a', false)).toEqual([step(2)]);
    expect(c.flush('b', false)).toEqual([]);
    t = 150;
    expect(c.push('a', step(3))).toEqual([]); // 30 ms after the flushed one
  });
});
