import { describe, expect, it } from 'vitest';
import {
  apiEventSchema,
  coalesce,
  jsonSafe,
  parseRequest,
  REQUEST_NAMES,
  replyMessageSchema,
  trainEventSchema,
} from '../../src/common/api';
import type { TrainEvent } from '../../src/common/events';

const step = (n: number): TrainEvent => ({
  type: 'step',
  step: n,
  totalSteps: 100,
  trainLoss: 3,
  lr: 1e-3,
  gradNorm: 1,
  tokensPerSecond: 1000,
  elapsedMs: n * 10,
  etaMs: 0,
  memoryMB: 100,
});

describe('request schemas', () => {
  it('accept good requests and fill defaults', () => {
    const r = parseRequest('pretrain.start', {
      corpus: ['data/a.txt'],
      name: 'run-1',
      model: { nLayer: 1, nEmbd: 32 },
      train: { steps: 4, batchSize: 2 },
    });
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.params.tokenizer).toBe('char');
    expect(parseRequest('app.info', undefined).ok).toBe(true);
    expect(parseRequest('app.info', {}).ok).toBe(true);
    expect(parseRequest('score', { model: 'r', text: 'hello' }).ok).toBe(true);
    expect(parseRequest('score', { model: 'r', prompt: 'a', continuation: 'b' }).ok).toBe(true);
    expect(
      parseRequest('generate.start', { model: 'r', prompt: '', sampling: { topK: 5 } }).ok,
    ).toBe(true);
    expect(parseRequest('job.cancel', { jobId: 'job-1' }).ok).toBe(true);
    expect(parseRequest('run.resume', { id: 'run-1', steps: 10 }).ok).toBe(true);
  });

  it('reject bad requests with a message naming the field', () => {
    const cases: Array<[string, unknown, RegExp]> = [
      ['pretrain.start', { corpus: [], name: 'x' }, /params\.corpus/],
      ['pretrain.start', { corpus: ['a'], name: '../evil' }, /params\.name.*folder name/],
      ['pretrain.start', { corpus: ['a'], name: 'x', train: { steps: 0 } }, /params\.train\.steps/],
      ['pretrain.start', { corpus: ['a'], name: 'x', train: { stepz: 3 } }, /params\.train.*stepz/],
      ['pretrain.start', { corpus: ['a'], name: 'x', tokenizer: 'word' }, /params\.tokenizer/],
      [
        'pretrain.start',
        { corpus: ['a'], name: 'x', model: { nHead: 1.5 } },
        /params\.model\.nHead/,
      ],
      ['generate.start', { model: 'r', prompt: 'a', sampling: { topP: 2 } }, /sampling\.topP/],
      ['score', { model: 'r', text: '' }, /params\.text/],
      ['job.cancel', {}, /params\.jobId/],
      ['run.get', { id: 5 }, /params\.id/],
      ['app.info', { extra: 1 }, /extra/],
      ['no.such', {}, /unknown request "no\.such"/],
    ];
    for (const [name, params, re] of cases) {
      const r = parseRequest(name, params);
      expect(r.ok, name).toBe(false);
      if (!r.ok) {
        expect(r.error.code).toBe('bad-request');
        expect(r.error.message).toMatch(re);
      }
    }
  });

  it('every request name has a schema', () => {
    expect(REQUEST_NAMES).toContain('pretrain.start');
    for (const n of REQUEST_NAMES) expect(parseRequest(n, { __bad: true }).ok).toBe(false);
  });
});

describe('event schemas', () => {
  it('accept engine events wrapped with their job and reject malformed ones', () => {
    expect(trainEventSchema.safeParse(step(1)).success).toBe(true);
    expect(
      apiEventSchema.safeParse({ type: 'job.progress', jobId: 'j', event: step(1) }).success,
    ).toBe(true);
    expect(
      apiEventSchema.safeParse({ type: 'job.progress', jobId: 'j', event: { type: 'step' } })
        .success,
    ).toBe(false);
    expect(
      apiEventSchema.safeParse({
        type: 'job.failed',
        jobId: 'j',
        kind: 'pretrain',
        error: { code: 'engine', message: 'x' },
      }).success,
    ).toBe(true);
    expect(
      apiEventSchema.safeParse({
        type: 'job.failed',
        jobId: 'j',
        kind: 'pretrain',
        error: { code: 'oops', message: 'x' },
      }).success,
    ).toBe(false);
    expect(
      replyMessageSchema.safeParse({
        type: 'event',
        event: { type: 'generate.token', jobId: 'j', id: 3, text: 'a', logprob: -1 },
      }).success,
    ).toBe(true);
  });

  it('jsonSafe turns non-finite numbers into null', () => {
    expect(jsonSafe({ a: NaN, b: [1, Infinity], c: 'x' })).toEqual({
      a: null,
      b: [1, null],
      c: 'x',
    });
  });
});

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
