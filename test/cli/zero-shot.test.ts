/**
 * `pretrain --zero-shot FILE --zero-shot-labels MAP --zero-shot-every N`: the bundled sentiment
 * set scored while a tiny model pretrains, its points printed (JSON and human), and the messages
 * for a bad file or label map, each naming the file.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, jsonLines, ROOT, smallCorpus, STACK_LINE, tmpDir } from './helpers';

const SENTIMENT = path.join(ROOT, 'resources/samples/sentiment-imdb.jsonl');
const TINY = [
  ...['--n-layer', '1', '--n-head', '2', '--n-embd', '16', '--block-size', '32'],
  ...['--batch-size', '2', '--eval-every', '0', '--sample-every', '0', '--save-every', '0'],
  ...['--workers', '1', '--backend', 'wasm'],
];

let dir: string;
let corpus: string;
let n = 0;
const out = () => path.join(dir, `run${n++}`);

beforeAll(async () => {
  dir = await tmpDir();
  corpus = await smallCorpus(dir);
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const pretrain = (...args: string[]) =>
  cli(['pretrain', '--corpus', corpus, '--out', out(), '--steps', '4', ...TINY, ...args]);

describe('pretrain --zero-shot', () => {
  it('scores the set at step 0, every N steps and at the end, as JSON events', async () => {
    const r = await pretrain(
      ...['--zero-shot', SENTIMENT, '--zero-shot-labels', 'negative=bad,positive=good'],
      ...['--zero-shot-every', '2', '--zero-shot-rows', '8', '--json'],
    );
    expect(r.stderr).not.toMatch(STACK_LINE);
    expect(r.code).toBe(0);
    const points = jsonLines(r.stdout).filter((l) => l.type === 'zeroshot');
    expect(points.map((p) => p.step)).toEqual([0, 2, 4]);
    for (const p of points) {
      expect(p).toMatchObject({ set: 'sentiment-imdb.jsonl', task: 'classification', n: 8 });
      expect(p.chance).toBe(0.5);
    }
  });

  it('prints each point on its own line; a comma-separated list names several sets', async () => {
    const copy = path.join(dir, 'reviews.jsonl');
    await fs.copyFile(SENTIMENT, copy);
    const r = await pretrain(
      ...[
        '--zero-shot',
        `${SENTIMENT},${copy}`,
        '--zero-shot-labels',
        'negative=bad,positive=good',
      ],
      ...['--zero-shot-every', '4', '--zero-shot-rows', '4'],
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /zero-shot sentiment-imdb\.jsonl at step 4: accuracy [\d.]+% \(\d\/4\)/,
    );
    expect(r.stdout).toMatch(/zero-shot reviews\.jsonl at step 0: .* majority [\d.]+%/);
  });

  it('a bad label map is a usage error naming the file', async () => {
    const r = await pretrain('--zero-shot', SENTIMENT, '--zero-shot-labels', 'positive=good');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /--zero-shot-labels for .*sentiment-imdb\.jsonl: labels: give at least two/,
    );
  });

  it('a label the file does not have, or a missing file, is named with the file', async () => {
    const r = await pretrain(
      ...['--zero-shot', SENTIMENT, '--zero-shot-labels', 'negative=bad,happy=good'],
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/sentiment-imdb\.jsonl: no rows with label "happy" in column "label"/);
    expect(r.stderr).not.toMatch(STACK_LINE);
    const missing = path.join(dir, 'nope.jsonl');
    const m = await pretrain('--zero-shot', missing);
    expect(m.code).toBe(1);
    expect(m.stderr).toContain(missing);
  });

  it('the other zero-shot flags need --zero-shot', async () => {
    const r = await pretrain('--zero-shot-every', '5');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--zero-shot-every needs --zero-shot FILE/);
  });
});
