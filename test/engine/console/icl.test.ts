/**
 * In-context evaluation: the label-word mapping, the disjoint seeded split, balanced draws, the
 * shot list "as far as the context allows", truncation, cancel, and zero-shot predictions that
 * equal an independent argmax over log P(word | query).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../../src/engine/backend';
import {
  drawDemos,
  evaluateIcl,
  parseLabelWords,
  shotList,
  splitExamples,
  type LabeledExample,
} from '../../../src/engine/console/icl';
import { splitQuery } from '../../../src/engine/console/prompt';
import { GPT } from '../../../src/engine/model/gpt';
import { scoreContinuation } from '../../../src/engine/score';
import type { CharTokenizer } from '../../../src/engine/tokenizer';
import { Rng } from '../../../src/engine/util/rng';
import { charTokenizer, randomWeights, tinyConfig } from '../helpers';

let tok: CharTokenizer;
let model: GPT;

const GOOD = ['a fine film', 'so good', 'great fun', 'loved it', 'a joy', 'superb acting'];
const BAD = ['so dull', 'bad plot', 'a mess', 'hated it', 'too slow', 'awful'];
const examples: LabeledExample[] = [];
for (let i = 0; i < 4; i++) {
  for (const t of GOOD) examples.push({ input: `${t} ${i}`, label: 'pos' });
  for (const t of BAD) examples.push({ input: `${t} ${i}`, label: 'neg' });
}
examples.push({ input: 'no idea', label: 'meh' }); // not in the mapping: left out
const labels = [
  { label: 'neg', word: 'terrible' },
  { label: 'pos', word: 'great' },
];

beforeAll(async () => {
  await initBackend('wasm');
  tok = charTokenizer('abcdefghijklmnopqrstuvwxyz 0123456789=>\n');
  const cfg = tinyConfig({ vocabSize: tok.vocabSize, blockSize: 128, nEmbd: 16 });
  model = new GPT(cfg, randomWeights(cfg, 5, 0.3));
});
afterAll(() => model.dispose());

describe('pieces', () => {
  it('parses the label-word mapping', () => {
    expect(parseLabelWords('negative=terrible, positive=great')).toEqual([
      { label: 'negative', word: 'terrible' },
      { label: 'positive', word: 'great' },
    ]);
    expect(parseLabelWords('yes,no')).toEqual([
      { label: 'yes', word: 'yes' },
      { label: 'no', word: 'no' },
    ]);
    expect(() => parseLabelWords('a=x')).toThrow('at least two');
    expect(() => parseLabelWords('a=x,a=y')).toThrow('"a" appears twice');
    expect(() => parseLabelWords('a=,b=y')).toThrow('should be label=word');
  });

  it('splits into a disjoint pool and evaluation set, the same for the same seed', () => {
    const a = splitExamples(examples, 7, 100);
    const b = splitExamples(examples, 7, 100);
    expect(a).toEqual(b);
    expect(a.pool.length + a.evalSet.length).toBe(examples.length);
    const inPool = new Set(a.pool.map((e) => e.input));
    expect(a.evalSet.some((e) => inPool.has(e.input))).toBe(false);
    expect(splitExamples(examples, 8, 100).pool).not.toEqual(a.pool);
    expect(splitExamples(examples, 7, 5).evalSet).toHaveLength(5);
  });

  it('draws demonstrations balanced across labels', () => {
    const pool = examples.filter((e) => e.label !== 'meh');
    for (const k of [2, 4, 6]) {
      const d = drawDemos(pool, ['neg', 'pos'], k, new Rng(k));
      expect(d).toHaveLength(k);
      expect(d.filter((e) => e.label === 'pos')).toHaveLength(k / 2);
      expect(new Set(d.map((e) => e.input)).size).toBe(k);
    }
    // only one label in the pool: the rest come from it
    const onlyPos = pool.filter((e) => e.label === 'pos');
    expect(drawDemos(onlyPos, ['neg', 'pos'], 3, new Rng(1))).toHaveLength(3);
  });

  it('auto shots double while they fit', () => {
    expect(shotList('auto', 0)).toEqual([0]);
    expect(shotList('auto', 9)).toEqual([0, 1, 2, 4, 8]);
    expect(shotList([4, 0, 1, 4], 2)).toEqual([0, 1, 4]);
  });
});

describe('evaluateIcl', () => {
  it('zero-shot predictions are the argmax of log P(word | query)', async () => {
    const format = '{input} => {output}';
    const r = await evaluateIcl(model, tok, { examples, labels, shots: [0], format, seed: 3 });
    const { evalSet } = splitExamples(
      examples.filter((e) => e.label !== 'meh'),
      3,
      100,
    );
    let correct = 0;
    for (const ex of evalSet) {
      const { context, answerPrefix } = splitQuery(format, ex.input);
      const s = await Promise.all(
        labels.map((l) => scoreContinuation(model, tok, context, answerPrefix + l.word)),
      );
      const best = s[1]!.sum > s[0]!.sum ? 1 : 0;
      if (labels[best]!.label === ex.label) correct++;
    }
    expect(r.points).toHaveLength(1);
    expect(r.points[0]!.n).toBe(evalSet.length);
    expect(r.points[0]!.correct).toBe(correct);
    expect(r.points[0]!.accuracy).toBeCloseTo(correct / evalSet.length, 10);
    expect(r.chance).toBe(0.5);
    expect(r.evalSize + r.poolSize).toBe(examples.length - 1);
  });

  it('k shots: k demonstrations when they fit, fewer (and counted) when they do not', async () => {
    const events: number[] = [];
    const starts: number[][] = [];
    const r = await evaluateIcl(model, tok, {
      examples,
      labels,
      shots: [0, 2, 32],
      seed: 1,
      limit: 6,
      onStart: (s) => starts.push(s.shots),
      onPoint: (p) => events.push(p.k),
    });
    expect(starts).toEqual([[0, 2, 32]]);
    expect(events).toEqual([0, 2, 32]);
    const [p0, p2, p32] = r.points;
    expect(p0!.meanShots).toBe(0);
    expect(p2!.meanShots).toBe(2);
    expect(p2!.truncated).toBe(0);
    // a 128-token context holds about four demonstrations of ~22 characters
    expect(p32!.truncated).toBe(6);
    expect(p32!.meanShots).toBeGreaterThan(0);
    expect(p32!.meanShots).toBeLessThan(8);
    expect(r.maxShots).toBeGreaterThanOrEqual(1);
    expect(r.maxShots).toBeLessThan(8);
    // the same seed gives the same numbers
    const again = await evaluateIcl(model, tok, {
      examples,
      labels,
      shots: [0, 2, 32],
      seed: 1,
      limit: 6,
    });
    expect(again.points).toEqual(r.points);
  });

  it('auto stops where the context is full; progress counts up; cancel stops it', async () => {
    const progress: number[] = [];
    const r = await evaluateIcl(model, tok, {
      examples,
      labels,
      shots: 'auto',
      limit: 4,
      onProgress: (p) => progress.push(p.done),
    });
    expect(r.points.map((p) => p.k)).toEqual(shotList('auto', r.maxShots));
    expect(progress.at(-1)).toBe(4 * r.points.length);
    const c = new AbortController();
    const run = evaluateIcl(model, tok, {
      examples,
      labels,
      shots: [0, 1, 2],
      limit: 8,
      batchSize: 2,
      signal: c.signal,
      onProgress: () => c.abort(),
    });
    await expect(run).rejects.toThrow('cancelled');
  });

  it('refuses data whose labels are not in the mapping', async () => {
    await expect(
      evaluateIcl(model, tok, {
        examples,
        labels: [
          { label: 'yes', word: 'great' },
          { label: 'no', word: 'terrible' },
        ],
        shots: [0],
      }),
    ).rejects.toThrow('0 example(s) have one of the labels yes, no');
  });
});
