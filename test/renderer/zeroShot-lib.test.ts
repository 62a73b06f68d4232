/**
 * The wizard's zero-shot fields as `pretrain.start`'s `zeroShot` (valid by the contract's schema),
 * and a run's points as one chart series per set with its majority baseline.
 */
import { describe, expect, it } from 'vitest';
import { zeroShotConfigSchema, type ZeroShotPoint } from '../../src/common/zeroShot';
import {
  majorityLines,
  zeroShotRequest,
  zeroShotSeries,
  type ZeroShotForm,
} from '../../src/renderer/lib/zeroShot';

const form = (o: Partial<ZeroShotForm> = {}): ZeroShotForm => ({
  enabled: true,
  file: '/data/sentiment.jsonl',
  words: [
    { label: 'negative', word: ' bad ', use: true },
    { label: 'positive', word: 'good', use: true },
    { label: 'neutral', word: 'ok', use: false },
  ],
  template: '{input} very {output}',
  every: 50,
  limit: 32,
  ...o,
});

describe('zeroShotRequest', () => {
  it('sends the used label words, trimmed, with the template and the schedule', () => {
    const r = zeroShotRequest(form());
    expect(r).toEqual({
      sets: [
        {
          file: '/data/sentiment.jsonl',
          labels: [
            { label: 'negative', word: 'bad' },
            { label: 'positive', word: 'good' },
          ],
          template: '{input} very {output}',
        },
      ],
      every: 50,
      limit: 32,
      seed: 1,
    });
    expect(zeroShotConfigSchema.safeParse(r).success).toBe(true);
  });

  it('is off when disabled, and names what is missing', () => {
    expect(zeroShotRequest(form({ enabled: false }))).toBeUndefined();
    expect(zeroShotRequest(form({ file: '' }))).toBe('datasets.wizard.zeroShot.needTable');
    const one = form().words.map((w, i) => ({ ...w, use: i === 0 }));
    expect(zeroShotRequest(form({ words: one }))).toBe('datasets.wizard.zeroShot.needWords');
  });

  it('a table with no words read (multiple choice) goes without labels; bad numbers fall back', () => {
    const r = zeroShotRequest(form({ words: [], every: 0, limit: Number.NaN }));
    expect(r).toMatchObject({ sets: [{ file: '/data/sentiment.jsonl' }], every: 100, limit: 64 });
    expect((r as { sets: Array<{ labels?: unknown }> }).sets[0]!.labels).toBeUndefined();
  });
});

describe('zero-shot series', () => {
  const p = (step: number, set: string, accuracy: number, majority = 0.5): ZeroShotPoint => ({
    step,
    set,
    task: 'classification',
    accuracy,
    correct: 0,
    n: 10,
    chance: 0.5,
    majority,
  });
  const points = [
    p(0, 'a', 0.5),
    p(0, 'b', 0.25, 0.4),
    p(10, 'a', 0.6, 0.55),
    p(10, 'b', 0.3, 0.4),
  ];

  it('one series per set, in percent, in order of first appearance', () => {
    expect(zeroShotSeries(points, (s) => `run · ${s}`)).toEqual([
      {
        set: 'a',
        label: 'run · a',
        points: [
          [0, 50],
          [10, 60],
        ],
      },
      {
        set: 'b',
        label: 'run · b',
        points: [
          [0, 25],
          [10, 30],
        ],
      },
    ]);
  });

  it("each set's latest majority share", () => {
    const lines = majorityLines(points);
    expect(lines.map((l) => l.set)).toEqual(['a', 'b']);
    expect(lines[0]!.value).toBeCloseTo(55);
    expect(lines[1]!.value).toBeCloseTo(40);
  });
});
