import { describe, expect, it } from 'vitest';
import {
  apiEventSchema,
  jsonSafe,
  parseRequest,
  REQUEST_NAMES,
  replyMessageSchema,
} from '../../src/common/api';
import { stepEvent as step } from './trainEvents';
import { trainEventSchema } from '../../src/common/pretrain';

describe('request schemas', () => {
  it('accept good requests and fill defaults', () => {
    const r = parseRequest('pretrain.start', {
      datasets: ['austen'],
      tokenizer: 'char-1a2b3c4d',
      name: 'run-1',
      model: { nLayer: 1, nEmbd: 32 },
      train: { steps: 4, batchSize: 2 },
    });
    expect(r.ok).toBe(true);
    const t = parseRequest('tokenizers.train', { datasets: ['austen'], kind: 'bpe' });
    expect(t.ok).toBe(true);
    expect(parseRequest('app.info', undefined).ok).toBe(true);
    expect(parseRequest('app.info', {}).ok).toBe(true);
    expect(parseRequest('console.logprobs', { model: 'r', text: 'hello' }).ok).toBe(true);
    expect(
      parseRequest('console.logprobs', { model: 'r', prompt: 'a', continuation: 'b' }).ok,
    ).toBe(true);
    expect(
      parseRequest('console.generate', { model: 'r', prompt: '', sampling: { topK: 5 } }).ok,
    ).toBe(true);
    expect(parseRequest('jobs.cancel', { jobId: 'job-1' }).ok).toBe(true);
    expect(parseRequest('pretrain.continue', { id: 'run-1', steps: 10 }).ok).toBe(true);
    // a run that starts from a model takes its tokenizer (the host refuses one given beside it)
    const from = { datasets: ['austen'], name: 'more', from: '/w/models/gpt2-cluster' };
    expect(parseRequest('pretrain.start', from).ok).toBe(true);
  });

  it('reject bad requests with a message naming the field', () => {
    const run = { datasets: ['a'], tokenizer: 't', name: 'x' };
    const cases: Array<[string, unknown, RegExp]> = [
      ['pretrain.start', { ...run, datasets: [] }, /params\.datasets/],
      ['pretrain.start', { ...run, name: '../evil' }, /params\.name.*folder name/],
      ['pretrain.start', { ...run, train: { steps: 0 } }, /params\.train\.steps/],
      ['pretrain.start', { ...run, train: { stepz: 3 } }, /params\.train.*stepz/],
      ['pretrain.start', { ...run, tokenizer: '../t' }, /params\.tokenizer/],
      ['pretrain.start', { ...run, model: { nHead: 1.5 } }, /params\.model\.nHead/],
      ['pretrain.start', { ...run, from: '' }, /params\.from/],
      ['tokenizers.train', { datasets: ['a'], kind: 'word' }, /params\.kind/],
      ['console.generate', { model: 'r', prompt: 'a', sampling: { topP: 2 } }, /sampling\.topP/],
      ['console.logprobs', { model: 'r', text: '' }, /params\.text/],
      ['console.inspect', { model: 'r', prompt: '' }, /params\.prompt.*type a prompt/],
      ['console.embeddingMap', { model: 'r', query: 'x'.repeat(1001) }, /params\.query/],
      ['jobs.cancel', {}, /params\.jobId/],
      ['runs.get', { id: 5 }, /params\.id/],
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
