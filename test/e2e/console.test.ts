/**
 * The prompt console end to end in Chromium through the browser mode: a prompt streams a reply
 * (tokens coloured, alternatives on hover), stop, the history survives a reload; a few-shot
 * prompt is assembled from the bundled labeled dataset with its token budget; candidates are
 * ranked; an in-context evaluation charts accuracy against k. Screenshots in test-artifacts/e2e/.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import { saveModelDir } from '../../src/engine/checkpoint/modelDir';
import { finetune } from '../../src/engine/finetune/finetune';
import { generateTokens } from '../../src/engine/generate';
import { GPT } from '../../src/engine/model/gpt';
import { trainTokenizer } from '../../src/engine/tokenizer';
import { MASK_TOKEN } from '../../src/engine/tokenizer/types';
import { charTokenizer, randomWeights, tinyConfig } from '../engine/helpers';
import { ROOT, startStudio, TIMEOUT, type Studio } from './harness';
import { commitOf, MockHub, repoOf, tinyGpt2Files } from '../engine/hub/mockHub';

let studio: Studio;
let modelDir: string;
/** A small labeled file, a classifier fine-tuned on it, and a second language model. */
let labeledSmall: string;
let classifierDir: string;
let otherModelDir: string;
const SAMPLE = path.join(ROOT, 'resources/samples/sentiment-imdb.jsonl');

/** A local stand-in for the Hugging Face Hub, the engine host's HF_ENDPOINT (Get models). */
let hub: MockHub;

beforeAll(async () => {
  hub = new MockHub(new Map([repoOf('org/tiny', await tinyGpt2Files())].map((r) => [r.id, r])));
  await hub.start();
  // read by the engine host when it starts: its own Hugging Face cache, the mock Hub
  const hfHome = await fs.mkdtemp(path.join(os.tmpdir(), 'gpt-studio-e2e-hf-'));
  Object.assign(process.env, { HF_HOME: hfHome, HF_ENDPOINT: hub.url, HF_TOKEN: '' });
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

  labeledSmall = path.join(studio.dir, 'labeled-small.jsonl');
  const rows = Array.from({ length: 30 }, (_, i) => [
    { text: `a wonderful film ${i}`, label: 'positive' },
    { text: `a dull story ${i}`, label: 'negative' },
  ]).flat();
  await fs.writeFile(labeledSmall, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  classifierDir = path.join(studio.dir, 'finetunes', 'tiny-ft');
  await finetune({
    model: modelDir,
    task: 'classification',
    columns: { text: 'text', label: 'label' },
    data: labeledSmall,
    out: classifierDir,
    settings: { lr: 1e-3, epochs: 1, batchSize: 16, valFraction: 0.5, seed: 1 },
  });
  otherModelDir = path.join(studio.dir, 'models', 'tiny-bpe-2');
  await fs.cp(modelDir, otherModelDir, { recursive: true });
  // dated back, so the console still opens on tiny-bpe (the newest model)
  const past = new Date('2001-01-01');
  for (const d of [classifierDir, otherModelDir]) {
    await fs.utimes(path.join(d, 'config.json'), past, past);
  }
}, TIMEOUT);

afterAll(async () => {
  await studio?.close();
  await hub?.close();
  if (process.env.HF_HOME) await fs.rm(process.env.HF_HOME, { recursive: true, force: true });
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
      // the page assembles as the user types: wait for the request with the final settings
      await expect.poll(async () => (await shown.textContent())!.replace(/▍$/, '')).toBe(a.prompt);
      expect(a.tokens).toBeLessThanOrEqual(a.budget);
      expect(a.budget).toBe(112);
      const budget = page.getByTestId('budget');
      await expect
        .poll(() => budget.textContent())
        .toContain(`${a.tokens} tokens of a 112-token budget`);
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

  it('few-shot: a typed \\n in the multi-line format is a new line, as a real one is', async () => {
    const { ctx, page, errors } = await openConsole();
    try {
      await page.getByRole('radio', { name: 'Few-shot' }).check();
      await page.getByTestId('fewshot-draw').click();
      await page.getByTestId('fewshot-info').waitFor();
      await fill(page, 'prompt-input', 'A wonderful film.');
      const shown = page.getByTestId('assembled-prompt');
      const text = async () => (await shown.textContent())!.replace(/▍$/, '');
      await fill(page, 'fewshot-format', 'Review: {input}\\nSentiment: {output}');
      await expect.poll(text).toContain('Review: A wonderful film.\nSentiment:');
      const typed = await text();
      expect(typed).not.toContain('\\n');
      await fill(page, 'fewshot-format', 'X {input} {output}');
      await expect.poll(text).toContain('X A wonderful film.');
      await fill(page, 'fewshot-format', 'Review: {input}\nSentiment: {output}');
      await expect.poll(text).toBe(typed);
      expect(errors).toEqual([]);
    } finally {
      await ctx.close();
    }
  });

  it('choosing a sampling preset keeps the stop sequences and max new tokens', async () => {
    const { ctx, page, errors } = await openConsole();
    try {
      await fill(page, 'stop-sequences', '\\n\\n, END');
      await fill(page, 'max-new-tokens', '3');
      await page.getByTestId('preset-select').selectOption('Balanced');
      expect(await page.getByTestId('stop-sequences').inputValue()).toBe('\\n\\n, END');
      expect(await page.getByTestId('max-new-tokens').inputValue()).toBe('3');
      // what is sent is what is shown: the turn's saved settings keep the stops
      await fill(page, 'prompt-input', 'the plot');
      await page.getByTestId('send').click();
      await page.getByTestId('turn').last().getByTestId('stopped-by').waitFor();
      const saved = async () =>
        (await studio.api.invoke('console.history.get', { model: modelDir })).entries.at(-1)
          ?.sampling;
      await expect.poll(saved).toMatchObject({
        stop: ['\n\n', 'END'],
        maxNewTokens: 3,
        topK: 40,
      });
      expect(errors).toEqual([]);
    } finally {
      await ctx.close();
    }
  });

  it('few-shot max new tokens defaults to the labels’ length; the budget bar offers to lower it', async () => {
    const { ctx, page, errors } = await openConsole();
    try {
      await page.getByRole('radio', { name: 'Few-shot' }).check();
      await fill(page, 'fewshot-k', '2');
      await fill(page, 'fewshot-seed', '2');
      await page.getByTestId('fewshot-draw').click();
      await page.getByTestId('fewshot-info').filter({ hasText: 'Drew 2 of 1000' }).waitFor();
      await fill(page, 'prompt-input', 'A wonderful film.');
      // the longest label's answer (" positive", " negative") plus a margin of 3 tokens
      const answer = async (label: string) =>
        (
          await studio.api.invoke('console.assemble', {
            model: modelDir,
            mode: 'completion',
            text: ` ${label}`,
          })
        ).tokens;
      const expected = Math.max(await answer('positive'), await answer('negative')) + 3;
      await expect.poll(() => page.getByTestId('max-new-tokens').inputValue()).toBe(`${expected}`);
      const builder = page.getByTestId('fewshot-builder');
      const demos = await builder.locator('.demos li').evaluateAll((lis) =>
        lis.map((li) => ({
          input: (li.querySelector('textarea') as unknown as { value: string }).value,
          output: (li.querySelector('input') as unknown as { value: string }).value,
        })),
      );
      const assemble = (reserve: number) =>
        studio.api.invoke('console.assemble', {
          model: modelDir,
          mode: 'few-shot',
          text: 'A wonderful film.',
          format: '{input} => {output}',
          separator: '\n',
          demos,
          reserve,
        });
      // the old default (120, half this 128-token context) dropped one; the task's keeps both
      expect((await assemble(120)).dropped).toBe(1);
      const fits = await assemble(expected);
      expect(fits.dropped).toBe(0);
      const budget = page.getByTestId('budget');
      await expect
        .poll(() => budget.textContent())
        .toContain(`${fits.tokens} tokens of a ${128 - expected}-token budget`);
      expect(await page.getByTestId('dropped').count()).toBe(0);

      // a larger budget drops a demonstration: the bar says so and offers the most that fits both
      await fill(page, 'max-new-tokens', '64');
      const lower = page.getByTestId('lower-budget');
      const n = 128 - (await assemble(1)).tokens;
      await expect.poll(() => lower.textContent()).toBe(`Lower to ${n} new tokens`);
      expect(await page.getByTestId('dropped').textContent()).toContain('1 oldest');
      await lower.click();
      expect(await page.getByTestId('max-new-tokens').inputValue()).toBe(`${n}`);
      await page.getByTestId('dropped').waitFor({ state: 'detached' });
      expect((await assemble(n)).dropped).toBe(0);
      expect(errors).toEqual([]);
    } finally {
      await ctx.close();
    }
  });

  it('a labeled file is picked from the data library by its name, not a server path', async () => {
    const { jobId } = await studio.api.invoke('datasets.import', {
      paths: [labeledSmall],
      name: 'Small reviews',
      field: 'text',
    });
    await studio.waitForEvent((e) => e.type === 'job.done' && e.jobId === jobId);
    const { ctx, page, errors } = await openConsole();
    try {
      await page.getByRole('radio', { name: 'Few-shot' }).check();
      const library = page.getByTestId('fewshot-data-library');
      await library.selectOption({ label: 'Small reviews (labeled-small.jsonl)' });
      // what the engine reads is the library's copy, under the file's own name
      const picked = await page.getByTestId('fewshot-data-path').inputValue();
      expect(path.basename(picked)).toBe('labeled-small.jsonl');
      expect(picked.startsWith(path.join(studio.dir, 'datasets'))).toBe(true);
      const shown = await page.getByTestId('fewshot-builder').innerText();
      expect(shown).not.toContain(studio.dir);
      await fill(page, 'fewshot-k', '4');
      await page.getByTestId('fewshot-draw').click();
      await page.getByTestId('fewshot-info').filter({ hasText: 'Drew 4 of 60' }).waitFor();
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
      // three points of the k-shot curve and the fine-tuned baseline's line beside them
      await expect.poll(() => page.getByTestId('icl-chart').getAttribute('data-points')).toBe('6');
      // k counts demonstrations: whole-number ticks only
      expect(await page.getByTestId('icl-chart').getAttribute('data-x-ticks')).toBe('0 1 2');
      const done = studio.events.find((e) => e.type === 'job.done' && e.kind === 'eval-icl');
      const result = done?.type === 'job.done' && 'points' in done.result ? done.result : null;
      expect(result?.points.map((p) => p.k)).toEqual([0, 1, 2]);
      // the classifier preselected was fine-tuned on another file: every evaluated row is unseen
      const f = result?.finetuned;
      expect(f).toMatchObject({ model: classifierDir, overlap: 'other-file', n: 12, excluded: 0 });
      expect(await page.getByTestId('icl-finetuned').textContent()).toBe(
        `Fine-tuned: ${(f!.accuracy! * 100).toFixed(1)}% on 12 held-out examples ` +
          '(it trained on another file, so no row was left out).',
      );
      await shot(page, 'console-en-icl');
      expect(errors).toEqual([]);
    } finally {
      await ctx.close();
    }
  });

  it('the fine-tuned baseline leaves out the rows it trained on; a model switch keeps the file', async () => {
    const { ctx, page, errors } = await openConsole();
    try {
      await page.getByRole('tab', { name: 'In-context evaluation' }).click();
      await page.locator('#console-panel-evaluate summary').click();
      await fill(page, 'icl-data-path', labeledSmall);
      await page.getByTestId('icl-load').click();
      await expect.poll(() => page.getByTestId('icl-compare').inputValue()).toBe(classifierDir);
      await fill(page, 'icl-shots', '0');
      await fill(page, 'icl-limit', '8');
      await page.getByTestId('icl-start').click();
      const line = page.getByTestId('icl-finetuned');
      await line.waitFor({ timeout: 30_000 });
      const done = studio.events.findLast((e) => e.type === 'job.done' && e.kind === 'eval-icl');
      const f = done?.type === 'job.done' && 'points' in done.result ? done.result.finetuned : null;
      // the file it trained on (half of it): the evaluated rows it saw are left out and counted
      expect(f).toMatchObject({ model: classifierDir, overlap: 'same-file' });
      expect(f!.n + f!.excluded).toBe(8);
      expect(f!.excluded).toBeGreaterThan(0);
      const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;
      expect(await line.textContent()).toBe(
        f!.accuracy === null
          ? `Fine-tuned: no number. It trained on all 8 evaluated rows; evaluate more rows, or a file it was not trained on.`
          : `Fine-tuned: ${(f!.accuracy * 100).toFixed(1)}% on ${plural(f!.n, 'held-out example')} ` +
              `(${plural(f!.excluded, 'row')} it trained on left out).`,
      );

      // another model: the file read and the settings stay, and Evaluate is ready at once
      await page.getByTestId('model-select').selectOption(otherModelDir);
      await page.getByTestId('icl-status').waitFor({ state: 'detached' });
      expect(await page.getByTestId('icl-data-path').inputValue()).toBe(labeledSmall);
      expect(await page.getByTestId('icl-word-positive').inputValue()).toBe('great');
      expect(await page.getByTestId('icl-limit').inputValue()).toBe('8');
      expect(await page.getByTestId('icl-start').isEnabled()).toBe(true);
      expect(await page.getByTestId('icl-read-first').count()).toBe(0);
      expect(errors).toEqual([]);
    } finally {
      await ctx.close();
    }
  });

  it('the model facts say how the weights are held; q8 shows its numerics against f32', async () => {
    const { ctx, page, errors } = await openConsole();
    try {
      const info = page.getByTestId('model-weights');
      await expect.poll(() => info.textContent()).toMatch(/held as f32 \(/);
      // the LayerNorm layout, with the difference between GPT-1's and GPT-2's on hover
      const layout = page.getByTestId('model-layout');
      expect(await layout.textContent()).toBe('GPT-2 layout (pre-LayerNorm, final LayerNorm)');
      expect(await layout.getAttribute('title')).toMatch(/^GPT-1 is post-LayerNorm, with no final/);
      await page.getByTestId('weights-select').selectOption('q8');
      await expect
        .poll(() => info.textContent())
        .toMatch(
          /held as q8 \([\d.]+ KiB\)\s*· vs f32 on the reference text: mean \|Δ log p\| [\d.e-]+, max [\d.e-]+/,
        );
      await shot(page, 'console-en-weights-q8');
      await page.getByTestId('weights-select').selectOption('auto'); // as the other cases expect
      await expect.poll(() => info.textContent()).toMatch(/held as f32 \(/);
      expect(errors).toEqual([]);
    } finally {
      await ctx.close();
    }
  });

  it('look inside: attention heatmaps by layer and head, the logit lens, the embedding map', async () => {
    const { ctx, page, errors } = await openConsole();
    try {
      await page.getByRole('tab', { name: 'Look inside' }).click();
      await fill(page, 'inside-prompt', 'the movie was great');
      await page.getByTestId('inside-run').click();
      const map = page.getByTestId('attention-heatmap');
      await map.waitFor();
      const r = await studio.api.invoke('console.inspect', {
        model: modelDir,
        prompt: 'the movie was great',
      });
      const T = r.tokens.length;
      expect(await map.locator('rect.cell').count()).toBe(T * T);
      expect(await page.getByTestId('inside-head').count()).toBe(r.nHead);
      // the second head, and a cell's exact weight on hover
      await map.evaluate((el) => el.scrollIntoView({ block: 'center' }));
      await page.getByTestId('inside-head').nth(1).click();
      await expect.poll(() => map.getAttribute('data-head')).toBe('1');
      await map.locator('rect[data-q="3"][data-k="1"]').hover();
      await expect
        .poll(() => page.getByTestId('attention-tip').textContent())
        .toContain(`weight ${r.attention[0]![1]![3]![1]!.toFixed(6)} (query 4, key 2)`);
      await shot(page, 'console-en-inside-attention');

      await page.getByRole('radio', { name: 'Logit lens' }).check();
      const lens = page.getByTestId('logit-lens');
      await expect.poll(() => lens.locator('tbody tr').count()).toBe(r.nLayer + 1);
      await lens.evaluate((el) => el.scrollIntoView({ block: 'center' }));
      await lens.locator(`td[data-row="${r.nLayer}"][data-pos="0"]`).hover();
      await expect.poll(() => page.getByTestId('lens-tip').locator('.guess').count()).toBe(5);
      await shot(page, 'console-en-inside-lens');

      await page.getByRole('radio', { name: 'Embedding map' }).check();
      const scatter = page.getByTestId('embedding-map');
      await expect.poll(() => scatter.getAttribute('data-points')).not.toBeNull();
      await fill(page, 'embedding-search', 'the');
      await expect
        .poll(async () => Number(await scatter.getAttribute('data-found')))
        .toBeGreaterThan(0);
      await scatter.evaluate((el) => el.scrollIntoView({ block: 'end' }));
      await shot(page, 'console-en-inside-map');
      expect(errors).toEqual([]);
    } finally {
      await ctx.close();
    }
  });

  it('look inside, in Chinese: a classifier shows its logit per label at each layer', async () => {
    const { ctx, page, errors } = await openConsole('zh-CN');
    try {
      await page.getByRole('tab', { name: '查看内部' }).click();
      await page.getByTestId('inside-run').click();
      const heatmap = page.getByTestId('attention-heatmap');
      await heatmap.waitFor();
      await heatmap.evaluate((el) => el.scrollIntoView({ block: 'center' }));
      await shot(page, 'console-zh-CN-inside-attention');
      await page.getByTestId('model-select').selectOption(classifierDir);
      const inside = page.getByTestId('classifier-inside');
      await inside.getByTestId('inside-run').click();
      await inside.getByRole('radio', { name: 'Logit lens' }).check();
      const clf = inside.getByTestId('classifier-lens');
      await expect
        .poll(() => clf.locator('thead th').allTextContents())
        .toEqual(['层', 'negative', 'positive']);
      await clf.evaluate((el) => el.scrollIntoView({ block: 'center' }));
      await shot(page, 'console-zh-CN-inside-classifier');
      expect(errors).toEqual([]);
    } finally {
      await ctx.close();
    }
  });

  it('a masked-LM model: the reason it cannot generate, and only the look inside', async () => {
    // written for this case alone (and removed after it), so the other cases' default stays
    const chars = charTokenizer();
    chars.addSpecialTokens([MASK_TOKEN]);
    const bertCfg = tinyConfig({ vocabSize: chars.vocabSize, blockSize: 32, objective: 'mlm' });
    const bert = new GPT(bertCfg, randomWeights(bertCfg, 5, 0.2));
    const bertDir = path.join(studio.dir, 'models', 'tiny-bert');
    await saveModelDir(bertDir, bert, chars);
    bert.dispose();
    const { ctx, page, errors } = await openConsole();
    try {
      await page.getByTestId('model-select').selectOption(bertDir);
      await expect
        .poll(() => page.getByTestId('mlm-note').textContent())
        .toMatch(/tiny-bert is a masked-LM \(BERT-style\) model: it sees both sides/);
      await expect.poll(() => page.getByRole('tab').allTextContents()).toEqual(['Look inside']);
      await page.getByTestId('inside-run').click();
      await page.getByTestId('attention-heatmap').waitFor();
      await shot(page, 'console-en-mlm');
      expect(errors).toEqual([]);
    } finally {
      await ctx.close();
      await fs.rm(bertDir, { recursive: true, force: true });
    }
  });

  it('Get models: a model pulled from the Hub is in the console at once', async () => {
    const { ctx, page, errors } = await studio.openPage();
    try {
      await page.goto(`${studio.server.url.split('#')[0]}#/models`);
      const table = page.getByTestId('hub-models');
      await table.locator('tr[data-repo="gpt2-xl"]').waitFor();
      await fill(page, 'hub-repo', 'org/tiny');
      await page.getByTestId('hub-pull').click();
      await page.getByTestId('hub-done').waitFor();
      await expect
        .poll(() =>
          table.locator('tr[data-repo="org/tiny"]').getByTestId('hub-status').textContent(),
        )
        .toContain('Cached');
      await shot(page, 'models-pulled');
      await page.getByRole('button', { name: 'Open in console' }).click();
      const snapshot = path.join(
        process.env.HF_HOME!,
        'hub',
        'models--org--tiny',
        'snapshots',
        commitOf('org/tiny'),
      );
      await expect.poll(() => page.getByTestId('model-select').inputValue()).toBe(snapshot);
      expect(errors).toEqual([]);
    } finally {
      await ctx.close();
    }
  });
});

const shot = (page: Page, name: string) => studio.shot(page, name);
