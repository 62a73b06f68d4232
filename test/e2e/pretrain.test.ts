/**
 * The pretrain wizard in Chromium through the browser mode: choose a dataset, train a tokenizer,
 * shape a tiny model and time it, start a pretraining; watch the loss curve grow and a sample
 * appear, pause, browse away and back, stop; then find the run on the Runs page, compare and
 * delete it.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStudio, TIMEOUT, type Studio } from './harness';

const TEXT =
  'the cat sat on the mat. the dog sat on the log. a cat and a dog met on a mat by the log.\n' +
  'to be or not to be, that is the question; whether tis nobler in the mind to suffer.\n';
const RUN = 'e2e-wizard';

let studio: Studio;
beforeAll(async () => {
  studio = await startStudio({ files: { 'corpus.txt': TEXT.repeat(12) } });
  const { jobId } = await studio.api.invoke('datasets.import', {
    paths: [path.join(studio.dir, 'corpus.txt')],
    name: 'toy corpus',
  });
  await studio.waitForEvent((e) => e.type === 'job.done' && e.jobId === jobId);
}, TIMEOUT);
afterAll(async () => {
  await studio?.close();
}, TIMEOUT);

describe('the pretrain wizard in Chromium', { timeout: 2 * TIMEOUT }, () => {
  it('trains a tokenizer, starts a tiny run, shows it live, stops it and lists it', async () => {
    const { ctx, page, errors } = await studio.openPage('en-US');
    try {
      // the validation share set on the Data page is the one the wizard trains with
      await page.getByTestId('val-percent').fill('20');
      await expect
        .poll(async () => (await studio.api.invoke('settings.get', {})).valPercent)
        .toBe(20);
      const nav = page.getByRole('navigation', { name: 'Pages' });
      await nav.getByRole('link', { name: 'Pretrain' }).click();

      // 1 Data: only the toy corpus
      const austen = page.getByLabel('Jane Austen (sample)');
      const toy = page.getByLabel(/toy corpus/);
      await toy.waitFor();
      if (await austen.isChecked()) await austen.uncheck();
      if (!(await toy.isChecked())) await toy.check();
      await page.getByText('1 dataset:').waitFor();
      await studio.shot(page, 'pretrain-en-1-data');
      await page.getByRole('button', { name: 'Next' }).click();

      // 2 Tokenizer: byte-level BPE with a small vocabulary
      await page.getByLabel(/Byte-level BPE/).check();
      await page.getByRole('spinbutton', { name: 'Vocabulary size' }).fill('300');
      await page.getByRole('button', { name: 'Train tokenizer' }).click();
      const cpt = page.getByTestId('chars-per-token');
      await cpt.waitFor();
      expect(Number(await cpt.textContent())).toBeGreaterThan(1);
      await page.getByTestId('token-lines').locator('.tok').first().waitFor();
      await studio.shot(page, 'pretrain-en-2-tokenizer');
      await page.getByRole('button', { name: 'Next' }).click();

      // 3 Model: a custom tiny shape, estimated and timed on the backend
      for (const [label, v] of [
        ['Layers', '1'],
        ['Heads', '2'],
        ['Width', '16'],
        ['Context', '16'],
      ] as const) {
        await page.getByLabel(label, { exact: true }).fill(v);
      }
      await page.getByTestId('model-estimate').getByText('Parameters').waitFor();
      await page.getByRole('button', { name: 'Measure seconds per step' }).click();
      await page
        .getByTestId('probe-result')
        .filter({ hasText: /s per step/ })
        .waitFor();
      await studio.shot(page, 'pretrain-en-3-model');
      await page.getByRole('button', { name: 'Next' }).click();

      // 4 Training
      for (const [label, v] of [
        ['Steps', '20000'],
        ['Batch size', '2'],
        ['Warmup steps', '1'],
        ['Evaluate every', '10'],
        ['Evaluation batches', '1'],
        ['Sample every', '25'],
        ['Checkpoint every', '0'],
      ] as const) {
        await page.getByLabel(label, { exact: true }).fill(v);
      }
      await page.getByLabel('Run name').fill(RUN);
      expect(await page.getByLabel('Validation share (%)').inputValue()).toBe('20');
      // the data-parallel workers default to the backend's count (the physical cores on wasm)
      const workers = (await studio.api.invoke('backend.report', {}))?.trainWorkers ?? 1;
      expect(await page.getByLabel('Workers', { exact: true }).inputValue()).toBe(String(workers));
      await studio.shot(page, 'pretrain-en-4-training');
      await page.getByRole('button', { name: 'Start pretraining' }).click();

      // the run, live: the loss curve gains points, a sample appears
      const monitor = page.getByTestId('run-monitor');
      await monitor.waitFor();
      // the run's config says what it trains with (once its folder is written)
      await expect
        .poll(() =>
          studio.api.invoke('runs.get', { id: RUN }).then(
            (r) => [r.train.valFraction, r.train.workers],
            () => undefined,
          ),
        )
        .toEqual([0.2, Math.min(workers, 2)]); // a batch of 2 rows feeds at most 2 workers
      const points = async () =>
        Number(await page.getByTestId('loss-chart').getAttribute('data-points'));
      await expect.poll(points, { timeout: 40_000 }).toBeGreaterThan(5);
      const before = await points();
      await expect.poll(points, { timeout: 40_000 }).toBeGreaterThan(before);
      await page.getByTestId('samples').locator('li').first().waitFor({ timeout: 40_000 });
      await studio.shot(page, 'pretrain-en-run-live');

      // pause and resume
      await monitor.getByRole('button', { name: 'Pause' }).click();
      await page.getByTestId('run-phase').filter({ hasText: 'Paused' }).waitFor();
      await studio.shot(page, 'pretrain-en-run-paused');
      await monitor.getByRole('button', { name: 'Resume' }).click();
      await page.getByTestId('run-phase').filter({ hasText: 'Running' }).waitFor();

      // the Runs page shows the run going: its best val loss, size and time so far
      await nav.getByRole('link', { name: 'Runs' }).click();
      const going = page.locator(`tr[data-run="${RUN}"]`);
      await going.getByTestId('run-state').filter({ hasText: 'Running' }).waitFor();
      for (const cell of ['best-val', 'size', 'duration']) {
        await expect.poll(() => going.getByTestId(cell).textContent()).toMatch(/\d/);
      }
      expect(await going.getByTestId('model-kind').textContent()).toBe('Pretrained');

      // the run goes on while another page is open, and is still shown on return
      await nav.getByRole('link', { name: 'Data' }).click();
      await expect.poll(() => page.locator('main h1').textContent()).toBe('Data');
      await nav.getByRole('link', { name: 'Pretrain' }).click();
      await expect.poll(points).toBeGreaterThan(before);

      await monitor.getByRole('button', { name: 'Stop' }).click();
      await page.getByTestId('run-phase').filter({ hasText: 'Stopped' }).waitFor();
      // one word for it everywhere: the status bar says so too, by the run's name
      await page
        .getByTestId('job')
        .filter({ hasText: `Pretraining ${RUN}: Stopped` })
        .waitFor();
      await studio.shot(page, 'pretrain-en-run-stopped');
      const stoppedAt = Number(
        /Step (\d+)/.exec((await page.getByTestId('run-step').textContent()) ?? '')?.[1],
      );

      // as if the app had quit mid-run: the state still says running, and no job runs it
      const stateFile = path.join(studio.dir, 'runs', RUN, 'state.json');
      const state = JSON.parse(await fs.readFile(stateFile, 'utf8')) as { status: string };
      await fs.writeFile(stateFile, JSON.stringify({ ...state, status: 'running' }));
      await page.reload();
      const banner = page.getByRole('status').filter({ hasText: `The run ${RUN} stopped` });
      await banner.waitFor();
      await studio.shot(page, 'pretrain-en-interrupted');
      await banner.getByRole('button', { name: 'Resume' }).click();
      await page.getByTestId('run-phase').filter({ hasText: 'Running' }).waitFor();
      // the val loss measured before the stop is shown until the next measurement
      await expect.poll(() => monitor.getByTestId('val-loss').textContent()).toMatch(/^\d/);
      // the curve starts from the logged history and goes on past the checkpoint
      await expect
        .poll(async () =>
          Number(/Step (\d+)/.exec((await page.getByTestId('run-step').textContent()) ?? '')?.[1]),
        )
        .toBeGreaterThan(stoppedAt);
      expect(await points()).toBeGreaterThan(before);

      // on the Runs page, a training run's curves grow as it trains
      await nav.getByRole('link', { name: 'Runs' }).click();
      await page.locator(`tr[data-run="${RUN}"]`).getByRole('checkbox').check();
      const compared = async () =>
        Number(await page.getByTestId('compare-chart').getAttribute('data-points'));
      await expect.poll(compared).toBeGreaterThan(0);
      const shown = await compared();
      await expect.poll(compared, { timeout: 40_000 }).toBeGreaterThan(shown);
      await nav.getByRole('link', { name: 'Pretrain' }).click();

      await monitor.getByRole('button', { name: 'Stop' }).click();
      await page.getByTestId('run-phase').filter({ hasText: 'Stopped' }).waitFor();

      // the Runs page lists it; its curves can be compared; delete asks first
      await nav.getByRole('link', { name: 'Runs' }).click();
      const row = page.locator(`tr[data-run="${RUN}"]`);
      await row.getByTestId('run-state').filter({ hasText: 'Stopped' }).waitFor();
      await row.getByRole('checkbox').check();
      await expect
        .poll(async () =>
          Number(await page.getByTestId('compare-chart').getAttribute('data-points')),
        )
        .toBeGreaterThan(5);
      await studio.shot(page, 'pretrain-en-runs');
      await row.getByRole('button', { name: 'Delete' }).click();
      const dialog = page.getByRole('dialog');
      await dialog.getByText(`Delete the run ${RUN}?`).waitFor();
      await studio.shot(page, 'pretrain-en-runs-delete');
      await dialog.getByRole('button', { name: 'Delete' }).click();
      await page.getByText('No runs yet').waitFor();
      expect(errors).toEqual([]);
    } finally {
      await ctx.close();
    }
  });

  it('zh-CN, dark theme: the wizard', async () => {
    const { ctx, page, errors } = await studio.openPage('zh-CN', 'dark');
    try {
      await page
        .getByRole('navigation', { name: '页面' })
        .getByRole('link', { name: '预训练' })
        .click();
      await page.getByText('选择数据').waitFor();
      await studio.shot(page, 'pretrain-zh-CN-dark-data');
      expect(errors).toEqual([]);
    } finally {
      await ctx.close();
    }
  });
});
