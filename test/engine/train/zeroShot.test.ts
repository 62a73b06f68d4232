/**
 * Zero-shot tracking while pretraining (GPT-1, Figure 2): the labelled sets are scored before the
 * first step, every N steps and after the last, on the same seeded subset, on the weights the
 * data-parallel workers trained; the points are events and metrics.jsonl lines; resume keeps the
 * settings; a bad table stops the run before anything is written, naming the file.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrainEvent } from '../../../src/common/events';
import type { ZeroShotConfig } from '../../../src/common/zeroShot';
import { initBackend } from '../../../src/engine/backend';
import { GPT } from '../../../src/engine/model/gpt';
import { pretrain, readState, resume } from '../../../src/engine/train/pretrain';
import { openZeroShot } from '../../../src/engine/train/zeroShot';
import {
  charTokenizer,
  removeDir,
  tempDir,
  TINY_MODEL,
  TINY_TRAIN,
  tinyConfig,
  toyCorpus,
  writeText,
} from '../helpers';

let dir: string;
let corpus: string;
let sentiment: string;
let choices: string;

const jsonl = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

beforeAll(async () => {
  await initBackend('wasm');
  dir = await tempDir('gpt-studio-zeroshot-');
  corpus = await writeText(dir, 'corpus.txt', toyCorpus(6));
  const texts = ['the cat sat on the mat', 'the dog sat on the log', 'a cat met a dog'];
  sentiment = await writeText(
    dir,
    'sentiment.jsonl',
    jsonl(
      Array.from({ length: 16 }, (_, i) => ({
        text: `${texts[i % 3]} ${i}`,
        label: i % 2 ? 'yes' : 'no',
      })),
    ),
  );
  choices = await writeText(
    dir,
    'choices.jsonl',
    jsonl(
      Array.from({ length: 10 }, (_, i) => ({
        context: 'the cat sat on the',
        answers: i % 2 ? ['log', 'mat', 'dog'] : ['mat', 'log', 'dog'],
        label: i % 2 ? 1 : 0,
      })),
    ),
  );
});
afterAll(async () => {
  await removeDir(dir);
});

const config = (every: number, limit = 4): ZeroShotConfig => ({
  sets: [
    {
      file: sentiment,
      labels: [
        { label: 'no', word: 'log' },
        { label: 'yes', word: 'mat' },
      ],
    },
    { file: choices, name: 'cloze' },
  ],
  every,
  limit,
  seed: 1,
});

const zeroShotOf = (events: TrainEvent[]) =>
  events.filter((e): e is Extract<TrainEvent, { type: 'zeroshot' }> => e.type === 'zeroshot');

async function metricLines(runDir: string) {
  const text = await fs.readFile(path.join(runDir, 'metrics.jsonl'), 'utf8');
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as { type: string; step: number });
}

describe('zero-shot tracking while pretraining', () => {
  const run = () => path.join(dir, 'run');
  const events: TrainEvent[] = [];

  beforeAll(async () => {
    await pretrain({
      corpus: [corpus],
      out: run(),
      tokenizer: 'char',
      model: { ...TINY_MODEL, dropout: 0 },
      train: { ...TINY_TRAIN, steps: 6, evalEvery: 3, sampleEvery: 0, workers: 2 },
      zeroShot: config(3),
      onEvent: (e) => events.push(e),
    });
  });

  it('scores every set before the first step, every N steps and at the end, on the workers’ weights', () => {
    const points = zeroShotOf(events);
    expect(points.map((p) => [p.step, p.set])).toEqual([
      [0, 'sentiment.jsonl'],
      [0, 'cloze'],
      [3, 'sentiment.jsonl'],
      [3, 'cloze'],
      [6, 'sentiment.jsonl'],
      [6, 'cloze'],
    ]);
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'log', message: expect.stringMatching(/2 workers/) }),
    );
    for (const p of points) {
      expect(p.n).toBe(4); // the subset asked for, every time
      expect(p.correct).toBe(Math.round(p.accuracy * p.n));
      expect(p.accuracy).toBeGreaterThanOrEqual(0);
      expect(p.accuracy).toBeLessThanOrEqual(1);
    }
    const [cls, mc] = points;
    expect(cls).toMatchObject({ task: 'classification', chance: 0.5 });
    expect(mc).toMatchObject({ task: 'multiple-choice', chance: 1 / 3 });
    // each point follows its step: the evaluation is of the model after that step
    const order = events.map((e) => `${e.type}:${'step' in e ? e.step : ''}`);
    expect(order.indexOf('zeroshot:3')).toBeGreaterThan(order.indexOf('step:3'));
    expect(order.indexOf('zeroshot:3')).toBeLessThan(order.indexOf('step:4'));
  });

  it('writes the same points to metrics.jsonl and keeps the settings in state.json', async () => {
    const logged = (await metricLines(run())).filter((l) => l.type === 'zeroshot');
    expect(logged).toEqual(zeroShotOf(events).map((e) => JSON.parse(JSON.stringify(e))));
    const state = await readState(run());
    expect(state.zeroShot?.every).toBe(3);
    expect(state.zeroShot?.sets.map((s) => s.file)).toEqual([
      path.resolve(sentiment),
      path.resolve(choices),
    ]);
  });

  it('resume keeps tracking with the saved settings', async () => {
    const more: TrainEvent[] = [];
    await resume({ run: run(), steps: 8, onEvent: (e) => more.push(e), workers: 1 });
    // no new step-0 point; the last step (8) is scored
    expect(zeroShotOf(more).map((p) => p.step)).toEqual([8, 8]);
    const steps = (await metricLines(run())).filter((l) => l.type === 'zeroshot');
    expect(steps.map((l) => l.step)).toEqual([0, 0, 3, 3, 6, 6, 8, 8]);
  });
});

describe('the tracker', () => {
  it('scores the same seeded subset each time: the same model gives the same points', async () => {
    const tok = charTokenizer();
    const model = GPT.init(tinyConfig({ vocabSize: tok.vocabSize, blockSize: 32 }), 3);
    try {
      const tracker = await openZeroShot(config(5, 3));
      expect(tracker.sets.map((s) => s.rows)).toEqual([3, 3]);
      expect([0, 5, 7, 10].map((s) => tracker.due(s, 7))).toEqual([true, true, true, true]);
      expect([1, 4, 6].map((s) => tracker.due(s, 7))).toEqual([false, false, false]);
      const a = await tracker.evaluate(model, tok, 5);
      const b = await tracker.evaluate(model, tok, 5);
      expect(b).toEqual(a);
      expect(a.map((p) => p.n)).toEqual([3, 3]);
    } finally {
      model.dispose();
    }
  });

  it('names the file of a label the table does not have, before the run writes anything', async () => {
    const out = path.join(dir, 'bad-run');
    await expect(
      pretrain({
        corpus: [corpus],
        out,
        tokenizer: 'char',
        model: { ...TINY_MODEL },
        train: { ...TINY_TRAIN, steps: 2 },
        zeroShot: {
          ...config(1),
          sets: [
            {
              file: sentiment,
              labels: [
                { label: 'no', word: 'a' },
                { label: 'maybe', word: 'b' },
              ],
            },
          ],
        },
      }),
    ).rejects.toThrow(/sentiment\.jsonl: no rows with label "maybe"/);
    await expect(fs.stat(out)).rejects.toThrow();
  });
});
