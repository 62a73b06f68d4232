import { describe, expect, it } from 'vitest';
import type { EventOf } from '../../src/common/api';
import { jobEnd, JOB_STATES, outcomeState, runState } from '../../src/common/jobState';
import en from '../../src/renderer/i18n/en.json';
import zh from '../../src/renderer/i18n/zh-CN.json';

const done = (result: Record<string, unknown>) =>
  ({ type: 'job.done', jobId: 'j', kind: 'pretrain', result }) as unknown as EventOf<'job.done'>;
const failed = (code: string) =>
  ({
    type: 'job.failed',
    jobId: 'j',
    kind: 'pretrain',
    error: { code, message: 'x' },
  }) as EventOf<'job.failed'>;

describe('one vocabulary for where a job or run stands', () => {
  it('a user-stopped run is "stopped" whether it is read from disk, a result or an error', () => {
    expect(runState('cancelled')).toBe('stopped');
    expect(jobEnd(done({ type: 'result', stopped: 'cancelled' }))).toBe('stopped');
    expect(jobEnd(failed('cancelled'))).toBe('stopped');
    expect(outcomeState('cancelled')).toBe('stopped');
    expect(jobEnd(done({ type: 'finetune.result', outcome: 'cancelled' }))).toBe('stopped');
  });

  it('finished work is "completed", errors "failed", and a dead process "interrupted"', () => {
    expect(runState('completed')).toBe('completed');
    expect(jobEnd(done({ type: 'result', stopped: 'completed' }))).toBe('completed');
    expect(jobEnd(done({ type: 'checkpoints.result' }))).toBe('completed');
    expect(outcomeState('completed')).toBe('completed');
    expect(runState('failed')).toBe('failed');
    expect(jobEnd(failed('engine'))).toBe('failed');
    expect(runState('interrupted')).toBe('interrupted');
    expect(runState('running')).toBe('running');
  });

  it('every word has a label in English and in Chinese', () => {
    for (const w of JOB_STATES) {
      expect(en.jobState[w]).toBeTruthy();
      expect(zh.jobState[w]).toBeTruthy();
    }
    expect(en.jobState.stopped).toBe('Stopped');
  });
});
