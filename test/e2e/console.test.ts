/**
 * The prompt console end to end in Chromium through the browser mode: a prompt streams a reply
 * (tokens coloured, alternatives on hover), stop, the history survives a reload; a few-shot
 * prompt is assembled from the bundled labeled dataset with its token budget; candidates are
 * ranked; an in-context evaluation charts accuracy against k. Screenshots in test-artifacts/e2e/.
 */
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import { saveModelDir } from '../../src/engine/checkpoint/modelDir';
import { generateTokens } from '../../src/engine/generate';
import { GPT } from '../../src/engine/model/gpt';
import { trainTokenizer } from '../../src/engine/tokenizer';
import { randomWeights, tinyConfig } from '../engine/helpers';
import { ROOT, startStudio, TIMEOUT, type Studio } from './harness';

let studio: Studio;
let modelDir: string;
const SAMPLE = path.join(ROOT, 'resources/samples/sentiment-imdb.jsonl');

beforeAll(async () => {
  studio = await startStudio();
  // a tiny byte-level BPE model (random weights: its text is noise, but every path is real)
  await initBackend('wasm');
  async function* corpus() {
    yield 'the movie was great. the plot was terrible. a wonderful film, a dull story.\n'.repeat(
      20,
    );
  }
  const tokenizer = await trainTokenizer({ kind: 'bpe', vocabSize: 300, corpus: corpus() });
  const cfg = tinyConfig({ vocabSize: tokenizer.vocabSize, blockSize: 128, nLayer: 1, nEmbd: 32 });
  const model = new GPT(cfg, randomWeights(cfg, 7, 0.2));
  modelDir = path.join(studio.dir, 'models', 'tiny-bpe');
  await saveModelDir(modelDir, model, tokenizer);
  // the stop step needs a generation that only a stop ends: greedy from its prompt settles into a
  // loop without end-of-text
  const greedy = generateTokens(model, tokenizer, tokenizer.encode('a wonderful'), {
    maxNewTokens: 20_000,
    temperature: 0,
  });
  let end = await greedy.next();
  while (!end.done) end = await greedy.next();
  expect(end.value.stoppedBy).toBe('length');
  model.dispose();
}, TIMEOUT);

afterAll(async () => {
  await studio?.close();
}, TIMEOUT);

async function openConsole(locale = 'en-US', scheme: 'light' | 'dark' = 'light') {
  const opened = await studio.openPage(locale, scheme);
  await opened.page.goto(`${studio.server.url.split('#')[0]}#/console`);
  await opened.page.getByTestId('model-select').waitFor();
  return opened;
}

const fill = async (page: Page, testid: string, value: string) =>
  page.getByTestId(testid).fill(value);

describe('the console in Chromium', { timeout: 120_000 }, () => {
  it('a prompt streams a reply, tokens show alternatives, stop works, history is kept', async () => {
    const { ctx, page, errors } = await openConsole();
    try {
      await expect.poll(() => page.getByTestId('model-select').inputValue()).toBe(modelDir);
      await fill(page, 'max-new-tokens', '24');
      await fill(page, 'prompt-input', 'the movie was');
      await page.getByTestId('send').click();
      const turn = page.getByTestId('turn').last();
      await turn.getByTestId('stopped-by').waitFor();
      expect(await turn.getByTestId('stopped-by').textContent()).toContain('24 tokens');
      const tokens = turn.locator('.tok');
      expect(await tokens.count()).toBeGreaterThan(5);
      const reply = await turn.getByTestId('reply').textContent();
      expect(reply!.length).toBeGreaterThan(5);
      // the streamed tokens came as generate.token events of one job, then its job.done
      const done = studio.events.filter((e) => e.type === 'job.done' && e.kind === 'generate');
      expect(done.length).toBe(1);
      const jobId = done[0]!.type === 'job.done' ? done[0]!.jobId : '';
      expect(
        studio.events.filter((e) => e.type === 'generate.token' && e.jobId === jobId),
      ).toHaveLength(24);
      await shot(page, 'console-en-reply');

      // hovering a token: the top 10 alternatives with their probabilities, their texts filled in
      await tokens.nth(2).hover();
      const popup = page.getByTestId('token-alternatives');
      await popup.waitFor();
      await expect.poll(() => popup.locator('.alt').count()).toBe(10);
      await expect.poll(() => popup.locator('.alt code').first().textContent()).not.toBe('∅');
      await shot(page, 'console-en-alternatives');
      await page.mouse.move(5, 5);

      // stop: a long generation is cut short (greedy, which never ends this model's text: see
      // beforeAll; a sampled one may reach end-of-text before a click lands on a loaded machine)
      await page.getByTestId('preset-select').selectOption('Greedy');
      await fill(page, 'max-new-tokens', '100000');
      await fill(page, 'prompt-input', 'a wonderful');
      await page.getByTestId('send').click();
      const second = page.getByTestId('turn').nth(1);
      await second.locator('.tok').first().waitFor();
      await page.getByTestId('composer-stop').click();
      await second.getByTestId('stopped-by').filter({ hasText: 'Stopped' }).waitFor();
      const n = await second.locator('.tok').count();
      expect(n).toBeLessThan(100_000);

      // the conversation is saved for this model and comes back after a reload
      await expect
        .poll(
          async () =>
            (await studio.api.invoke('console.history.get', { model: modelDir })).entries.length,
        )
        .toBe(2);
      await page.reload();
      await expect.poll(() => page.getByTestId('turn').count()).toBe(2);
      expect(await page.getByTestId('reply').first().textContent()).toBe(reply);
      expect(errors).toEqual([]);
    } finally {
      await ctx.close();
    }
  });

  it('a few-shot prompt is assembled from the labeled dataset, with its token budget', async () => {
    const { ctx, page, errors } = await openConsole();
    try {
      await page.getByRole('radio', { name: 'Few-shot' }).check();
      const builder = page.getByTestId('fewshot-builder');
      await expect.poll(() => page.getByTestId('fewshot-data-path').inputValue()).toBe(SAMPLE);
      await fill(page, 'fewshot-k', '6');
      await page.getByTestId('fewshot-draw').click();
      await builder.getByTestId('fewshot-info').filter({ hasText: 'Drew 6 of 1000' }).waitFor();
      expect(await builder.locator('.demos li').count()).toBe(6);
      await fill(page, 'max-new-tokens', '16');
      await fill(page, 'prompt-input', 'A wonderful film.');
      const shown = page.getByTestId('assembled-prompt');
      await expect.poll(() => shown.textContent()).toContain('A wonderful film. =>');
      // what the page shows is what the engine assembles with the model's tokenizer
      const demos = await builder.locator('.demos li').evaluateAll((lis) =>
        lis.map((li) => ({
          input: (li.querySelector('textarea') as unknown as { value: string }).value,
          output: (li.querySelector('input') as unknown as { value: string }).value,
        })),
      );
      expect(new Set(demos.map((d) => d.output))).toEqual(new Set(['positive', 'negative']));
      const a = await studio.api.invoke('console.assemble', {
        model: modelDir,
        mode: 'few-shot',
        text: 'A wonderful film.',
        instruction: '',
        format: '{input} => {output}',
        separator: '\n',
        demos,
        reserve: 16,
      });
      expect((await shown.textContent())!.replace(/▍$/, '')).toBe(a.prompt);
      expect(a.tokens).toBeLessThanOrEqual(a.budget);
      expect(a.budget).toBe(112);
      const budget = page.getByTestId('budget');
      expect(await budget.textContent()).toContain(`${a.tokens} tokens of a 112-token budget`);
      // six reviews do not fit a 112-token budget: the oldest go, and the console says so
      expect(a.dropped).toBeGreaterThan(0);
      expect(await page.getByTestId('dropped').textContent()).toContain(
        `${a.dropped} oldest demonstrations were dropped`,
      );
      expect(a.prompt.startsWith(`${demos[a.dropped]!.input} => `)).toBe(true);
      await shot(page, 'console-en-fewshot');
      await page.getByTestId('send').click();
      await page.getByTestId('turn').last().getByTestId('stopped-by').waitFor();
      expect(errors).toEqual([]);
    } finally {
      await ctx.close();
    }
  });

  it('candidates are ranked by likelihood, with bars', async () => {
    const { ctx, page, errors } = await openConsole('zh-CN', 'dark');
    try {
      await page.getByRole('tab', { name: '打分' }).click();
      await fill(page, 'scoring-context', 'the plot was');
      await fill(page, 'scoring-candidates', 'great\nterrible\na wonderful film');
      await page.getByTestId('scoring-rank').click();
      const rows = page.getByTestId('candidate');
      await expect.poll(() => rows.count()).toBe(3);
      const { choices } = await studio.api.invoke('console.score', {
        model: modelDir,
        context: 'the plot was',
        candidates: [' great', ' terrible', ' a wonderful film'],
      });
      const bySum = [...choices].sort((x, y) => y.sum - x.sum).map((c) => c.text);
      const shown = await rows.locator('code').allTextContents();
      expect(shown).toEqual(bySum);
      for (const c of choices) {
        expect(c.normalized).toBeCloseTo(c.sum - c.neutralSum, 5);
      }
      await shot(page, 'console-zh-CN-scoring-dark');
      // ranked by the normalized score instead
      await page.getByRole('radio', { name: '归一化' }).check();
      const byNorm = [...choices].sort((x, y) => y.normalized - x.normalized).map((c) => c.text);
      await expect.poll(() => rows.locator('code').allTextContents()).toEqual(byNorm);
      // past the contract's limits the panel says so and does not send
      await fill(
        page,
        'scoring-candidates',
        Array.from({ length: 33 }, (_, i) => `c${i}`).join('\n'),
      );
      await page.getByTestId('scoring-too-long').filter({ hasText: '33' }).waitFor();
      expect(await page.getByTestId('scoring-rank').isDisabled()).toBe(true);
      await fill(page, 'scoring-candidates', 'great');
      await page.getByTestId('scoring-too-long').waitFor({ state: 'detached' });
      expect(errors).toEqual([]);
    } finally {
      await ctx.close();
    }
  });

  it('in-context evaluation charts accuracy against k, with progress', async () => {
    const { ctx, page, errors } = await openConsole();
    try {
      await page.getByRole('tab', { name: 'In-context evaluation' }).click();
      await page.getByTestId('icl-load').click();
      await expect.poll(() => page.getByTestId('icl-word-positive').inputValue()).toBe('great');
      await fill(page, 'icl-shots', '0,1,2');
      await fill(page, 'icl-limit', '12');
      await page.getByTestId('icl-start').click();
      // the run goes on, and is shown again, when the user looks at another tab meanwhile
      await page.getByRole('tab', { name: 'Chat' }).click();
      await page.getByRole('tab', { name: 'In-context evaluation' }).click();
      await page
        .getByTestId('icl-status')
        .filter({ hasText: 'Finished.' })
        .waitFor({ timeout: 60_000 });
      await expect.poll(() => page.getByTestId('icl-table').locator('tbody tr').count()).toBe(3);
      await expect.poll(() => page.getByTestId('icl-chart').getAttribute('data-points')).toBe('3');
      const done = studio.events.find((e) => e.type === 'job.done' && e.kind === 'eval-icl');
      expect(
        done?.type === 'job.done' && 'points' in done.result && done.result.points.map((p) => p.k),
      ).toEqual([0, 1, 2]);
      await shot(page, 'console-en-icl');
      expect(errors).toEqual([]);
    } finally {
      await ctx.close();
    }
  });
});

const shot = (page: Page, name: string) => studio.shot(page, name);
