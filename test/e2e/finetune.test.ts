/**
 * The fine-tune wizard end to end in Chromium through the browser mode: pick a model, a task and
 * the bundled sentiment sample (token preview with [start] and [extract]), then an uploaded CSV
 * with a bad row, GPT-1's settings, live training with L2 and L1, the results (accuracy, macro-F1,
 * confusion matrix, mistakes), the classifier panel, and the one-click ablation.
 * Screenshots go to test-artifacts/e2e/finetune-*.png.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import { saveModelDir } from '../../src/engine/checkpoint/modelDir';
import { GPT } from '../../src/engine/model/gpt';
import { trainTokenizer } from '../../src/engine/tokenizer';
import { Rng } from '../../src/engine/util/rng';
import { startStudio, TIMEOUT, type Studio } from './harness';

let studio: Studio;
let csv: string;
let flatCsv: string;
const MODEL = 'tiny-bpe';

/** Words drawn from "abcde" are good, from "vwxyz" bad; one row has no label. */
function labeledCsv(n: number): string {
  const rng = new Rng(7);
  const rows = ['review,verdict'];
  for (let i = 0; i < n; i++) {
    const good = rng.next() < 0.5;
    const letters = good ? 'abcde' : 'vwxyz';
    const words = Array.from({ length: 2 + rng.int(3) }, () =>
      Array.from({ length: 3 }, () => letters[rng.int(5)]).join(''),
    );
    rows.push(`${words.join(' ')},${good ? 'good' : 'bad'}`);
  }
  rows.push('a row without a label,');
  return rows.join('\n') + '\n';
}

beforeAll(async () => {
  studio = await startStudio();
  // a tiny byte-level BPE model in workspace/models (an "imported" model): it encodes any text
  await initBackend('wasm');
  async function* corpus() {
    yield 'abcde vwxyz the cat sat on the mat. '.repeat(40);
  }
  const tok = await trainTokenizer({ kind: 'bpe', vocabSize: 300, corpus: corpus() });
  const model = GPT.init(
    {
      vocabSize: tok.vocabSize,
      blockSize: 48,
      nLayer: 1,
      nHead: 2,
      nEmbd: 32,
      dropout: 0,
      layerNormEpsilon: 1e-5,
      activation: 'gelu_new',
      bias: true,
    },
    1,
  );
  await saveModelDir(path.join(studio.dir, 'models', MODEL), model, tok);
  model.dispose();
  csv = path.join(studio.dir, 'reviews.csv');
  await fs.writeFile(csv, labeledCsv(48));
  flatCsv = path.join(studio.dir, 'flat.csv');
  const flatRows = Array.from({ length: 40 }, (_, i) => `abc abc,${i % 4 === 0 ? 'bad' : 'good'}`);
  await fs.writeFile(flatCsv, ['text,label', ...flatRows].join('\n') + '\n');
}, TIMEOUT);

afterAll(async () => {
  await studio?.close();
}, TIMEOUT);

const shot = (page: Page, name: string) => studio.shot(page, `finetune-${name}`);

describe('the fine-tune wizard in Chromium', { timeout: 180_000 }, () => {
  it('model → task → data → settings, training, results, classifier and ablation', async () => {
    const { ctx, page, errors } = await studio.openPage('en-US');
    try {
      await page
        .getByRole('navigation', { name: 'Pages' })
        .getByRole('link', { name: 'Fine-tune' })
        .click();
      await expect.poll(() => page.locator('main h1').textContent()).toBe('Fine-tune');

      // 1 model
      const steps = page.getByRole('navigation', { name: 'Fine-tuning steps' });
      await expect
        .poll(() => steps.getByRole('button', { name: /Model/ }).getAttribute('aria-current'))
        .toBe('step');
      await page.getByRole('radio', { name: new RegExp(MODEL) }).check();
      await shot(page, '1-model');
      await page.getByRole('button', { name: 'Next' }).click();

      // 2 task: GPT-1's layouts
      await page.getByText('[start] premise [delim] hypothesis [extract]').waitFor();
      await page.getByRole('radio', { name: /^Classification/ }).check();
      await shot(page, '2-task');
      await page.getByRole('button', { name: 'Next' }).click();

      // 3 data: the bundled sentiment sample is preselected
      const counts = page.getByTestId('import-counts');
      await counts.filter({ hasText: '1000 rows read · 1000 imported · 0 skipped' }).waitFor();
      const preview = page.getByTestId('token-preview');
      await expect.poll(() => preview.locator('[data-special="start"]').count()).toBe(1);
      await expect.poll(() => preview.locator('[data-special="extract"]').count()).toBe(1);
      const balance = page.getByTestId('label-balance');
      await balance.getByText('negative').waitFor();
      await balance.getByText('positive').waitFor();
      await page.getByTestId('truncation-rule').filter({ hasText: 'Context: 48 tokens' }).waitFor();
      await shot(page, '3-data-sample');

      // …then a file of one's own, uploaded, with a bad row reported and the rest imported
      const chooser = page.waitForEvent('filechooser');
      await page.getByRole('button', { name: 'Choose a file…' }).click();
      await (await chooser).setFiles(csv);
      // "review" is recognised as the text; "verdict" is mapped to the label by hand
      await page.getByText('Map a column to every field').waitFor();
      await page.getByLabel('Label', { exact: true }).selectOption('verdict');
      await counts.filter({ hasText: '49 rows read · 48 imported · 1 skipped' }).waitFor();
      expect(await page.getByLabel('Text', { exact: true }).inputValue()).toBe('review');
      expect(await page.getByLabel('Label', { exact: true }).inputValue()).toBe('verdict');
      await page.getByText('Why 1 row was skipped').click();
      await page.getByText(/reviews\.csv row 50: the label \("verdict"\) is empty/).waitFor();
      await balance.getByText('good').waitFor();
      await shot(page, '3-data-file');
      await page.getByRole('button', { name: 'Next' }).click();

      // 4 settings: the learning rate by the model's size (a tiny model: not GPT-1's 6.25e-5),
      // the rest GPT-1's; then edited
      await page
        .getByTestId('size-rule')
        .filter({ hasText: /Small model \([\d.]+K parameters\): learning rate 1e-3, 3 epochs\./ })
        .waitFor();
      expect(await page.getByLabel('Learning rate').inputValue()).toBe('0.001');
      // GPT vs BERT pretrains both as a run was: an imported model has no run to copy
      expect(await page.getByTestId('start-gpt-bert').isDisabled()).toBe(true);
      await page.getByText(/GPT vs BERT pretrains both models as a run of this app was/).waitFor();
      expect(await page.getByLabel('Batch size').inputValue()).toBe('32');
      expect(await page.getByLabel('Epochs').inputValue()).toBe('3');
      expect(await page.getByLabel('Warmup (% of training)').inputValue()).toBe('0.2');
      expect(await page.getByLabel('Classifier dropout').inputValue()).toBe('0.1');
      expect(await page.getByLabel('λ (weight of the LM loss)').inputValue()).toBe('0.5');
      await page.getByLabel('Learning rate').fill('0.003');
      await page.getByLabel('Batch size').fill('8');
      await page.getByLabel('Epochs').fill('6');
      await shot(page, '4-settings');
      await page.getByRole('button', { name: 'Start fine-tuning' }).click();

      // training: the live loss chart (L2, L1, L3) and val accuracy per epoch, then the results
      const training = page.getByTestId('training');
      await training.waitFor();
      await expect
        .poll(
          async () =>
            Number(await page.getByTestId('finetune-loss-chart').getAttribute('data-points')),
          {
            timeout: 60_000,
          },
        )
        .toBeGreaterThan(0);
      const results = page.getByTestId('finetune-results');
      await results.waitFor({ timeout: 120_000 });
      expect(await page.getByTestId('epochs').locator('tbody tr').count()).toBe(6);
      // it learned: no note about a falling or majority-rate curve
      expect(await page.getByTestId('finetune-diagnosis').count()).toBe(0);
      const acc = await page.getByTestId('metric-accuracy').textContent();
      expect(acc).toMatch(/Accuracy\s*\d+(\.\d)?%/);
      await page.getByTestId('metric-macro-f1').waitFor();
      expect(await page.getByTestId('confusion').locator('tbody tr').count()).toBe(2);
      await training.scrollIntoViewIfNeeded();
      await shot(page, '5-training');
      await results.scrollIntoViewIfNeeded();
      await shot(page, '5-results');

      // the fine-tuned model is listed as a classifier, and the panel classifies with it
      const models = await studio.api.invoke('models.list', {});
      const ftModel = models.find((m) => m.source === 'finetune');
      expect(ftModel?.classifier).toEqual({ task: 'classification', labels: ['bad', 'good'] });
      // evaluate it on the whole file as a job (the bad row is reported, the rest scored)
      const { jobId } = await studio.api.invoke('finetune.evaluate', {
        model: ftModel!.ref,
        data: csv,
      });
      const done = await studio.waitForEvent(
        (e) => (e.type === 'job.done' || e.type === 'job.failed') && e.jobId === jobId,
      );
      if (
        done.type !== 'job.done' ||
        !('type' in done.result) ||
        done.result.type !== 'evaluate.result'
      ) {
        throw new Error(JSON.stringify(done));
      }
      expect(done.result.import).toMatchObject({ rows: 49, imported: 48, skipped: 1 });
      expect(done.result.confusion.flat().reduce((a, b) => a + b, 0)).toBe(48);
      expect(done.result.accuracy).toBeGreaterThan(0.5);
      const panel = page.getByTestId('classifier-panel');
      await panel.getByLabel('Text').fill('abc dea bcd');
      await panel.getByRole('button', { name: 'Classify' }).click();
      const probs = page.getByTestId('classifier-probs');
      await expect.poll(() => probs.getByRole('meter').count()).toBe(2);
      const values = await probs
        .getByRole('meter')
        .evaluateAll((els) => els.map((e) => Number(e.getAttribute('aria-valuenow'))));
      expect(values.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(99);
      await panel.scrollIntoViewIfNeeded();
      await shot(page, '6-classifier');

      // the fine-tuned model in the console: a probability per label instead of text
      await page.getByTestId('open-in-console').click();
      await expect.poll(() => page.locator('main h1').textContent()).toBe('Console');
      const consolePanel = page.getByTestId('classifier-panel');
      await consolePanel.getByLabel('Text').fill('vwx yzv');
      await consolePanel.getByRole('button', { name: 'Classify' }).click();
      await expect
        .poll(() => page.getByTestId('classifier-probs').getByRole('meter').count())
        .toBe(2);
      expect(await page.getByTestId('chat-log').count()).toBe(0);
      await shot(page, '7-console-classifier');
      await page
        .getByRole('navigation', { name: 'Pages' })
        .getByRole('link', { name: 'Fine-tune' })
        .click();

      // the ablation in one click: pretrained/random × λ/0, side by side
      await steps.getByRole('button', { name: /Settings/ }).click();
      await page.getByLabel('Epochs').fill('2');
      // one worker: the run above took the default pool; four more pools of threads to start
      // for a dozen tiny steps each would only cost time
      await page.getByLabel('Workers', { exact: true }).fill('1');
      await page.getByLabel('Workers', { exact: true }).dispatchEvent('change');
      await page.getByRole('button', { name: 'Run the ablation (4 fine-tunes)' }).click();
      const table = page.getByTestId('ablation-table');
      await table.waitFor({ timeout: 150_000 });
      expect(await table.locator('tbody tr').count()).toBe(4);
      await table.getByText('random weights').first().waitFor();
      await page.getByTestId('ablation').scrollIntoViewIfNeeded();
      await shot(page, '8-ablation');

      expect(errors).toEqual([]);
    } finally {
      await ctx.close();
    }
  });

  it('zh-CN, dark theme: the wizard speaks Chinese, and takes a table from the library', async () => {
    // the CSV imported on the Data page (its text column) is a table of the library
    const { jobId } = await studio.api.invoke('datasets.import', {
      paths: [csv],
      name: '影评',
      field: 'review',
    });
    await studio.waitForEvent((e) => e.type === 'job.done' && e.jobId === jobId);
    const { ctx, page, errors } = await studio.openPage('zh-CN', 'dark');
    try {
      await page
        .getByRole('navigation', { name: '页面' })
        .getByRole('link', { name: '微调' })
        .click();
      await expect.poll(() => page.locator('main h1').textContent()).toBe('微调');
      await page.getByRole('navigation', { name: '微调步骤' }).waitFor();
      await page.getByRole('radio', { name: new RegExp(MODEL) }).check();
      await page.getByRole('button', { name: '下一步' }).click();
      await page.getByText('蕴含').waitFor();
      await page.getByRole('button', { name: '下一步' }).click();
      await page.getByTestId('import-counts').filter({ hasText: '读取 1000 行' }).waitFor();
      await shot(page, 'zh-CN-data');
      // picked by its names, never the path of the library's copy
      await page.getByTestId('ft-library').selectOption({ label: '影评 (reviews.csv)' });
      await page.getByText('reviews.csv 的列').waitFor();
      await page.getByLabel('标签', { exact: true }).selectOption('verdict');
      await page
        .getByTestId('import-counts')
        .filter({ hasText: '读取 49 行 · 导入 48 行 · 跳过 1 行' })
        .waitFor();
      expect(await page.locator('main').innerText()).not.toContain(studio.dir);

      // a file whose texts are all the same cannot beat the majority rate: the results say so
      const chooser = page.waitForEvent('filechooser');
      await page.getByRole('button', { name: '选择文件…' }).click();
      await (await chooser).setFiles(flatCsv);
      await page.getByTestId('import-counts').filter({ hasText: '读取 40 行' }).waitFor();
      await page.getByRole('button', { name: '下一步' }).click();
      await page.getByTestId('size-rule').filter({ hasText: '小模型' }).waitFor();
      // one worker: no pool of threads to start for a few tiny steps
      await page.getByLabel('工作线程数', { exact: true }).fill('1');
      await page.getByLabel('工作线程数', { exact: true }).dispatchEvent('change');
      await page.getByRole('button', { name: '开始微调' }).click();
      const note = page.getByTestId('finetune-diagnosis');
      await note.waitFor({ timeout: 60_000 });
      expect(await note.getAttribute('data-finding')).toBe('majority');
      expect(await note.textContent()).toMatch(/验证准确率停留在多数类比例.*更多轮数（6）/s);
      await note.scrollIntoViewIfNeeded();
      await shot(page, 'zh-CN-diagnosis');
      expect(errors).toEqual([]);
    } finally {
      await ctx.close();
    }
  });
});
