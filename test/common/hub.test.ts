/** The hub requests' schemas: repo ids as the Hub spells them, nothing else. */
import { describe, expect, it } from 'vitest';
import { apiEventSchema, parseRequest } from '../../src/common/api';

describe('hub request schemas', () => {
  it('take a repo id with an optional revision, endpoint and token', () => {
    const r = parseRequest('hub.pull', { repo: 'openai-community/gpt2', revision: 'refs/pr/1' });
    expect(r).toEqual({
      ok: true,
      params: { repo: 'openai-community/gpt2', revision: 'refs/pr/1' },
    });
    expect(parseRequest('hub.list', {}).ok).toBe(true);
  });

  it('refuse what is not a repo id, naming the field', () => {
    for (const repo of ['../etc', 'a/b/c', '', '/gpt2']) {
      const r = parseRequest('hub.pull', { repo });
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error.message).toContain('params.repo');
    }
    expect(parseRequest('hub.pull', { repo: 'gpt2', force: true }).ok).toBe(false);
  });

  it('carry pull progress and results as job events', () => {
    const progress = {
      type: 'hub.progress',
      phase: 'download',
      file: 'model.safetensors',
      bytes: 10,
      totalBytes: 20,
      bytesPerSecond: 5,
      etaSeconds: 2,
      fraction: 0.5,
      message: 'downloading model.safetensors',
    };
    expect(
      apiEventSchema.safeParse({ type: 'job.progress', jobId: 'j', event: progress }).success,
    ).toBe(true);
    expect(
      apiEventSchema.safeParse({
        type: 'job.started',
        jobId: 'j',
        kind: 'pull',
        subject: 'gpt2@main',
      }).success,
    ).toBe(true);
  });
});
