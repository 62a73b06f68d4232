/**
 * The pretrain wizard in Chromium through the browser mode: choose a dataset, train a tokenizer,
 * shape a tiny model and time it, start a pretraining; watch the loss curve grow and a sample
 * appear, pause, browse away and back, stop; then find the run on the Runs page, compare and
 * delete it.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { charTok, makeRun } from '../engine/checkpoint/fixtures';
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
      // GPT-1's own layout, explained beside the choice; the run trains and records it
      expect(await page.getByTestId('model-layout-help').textContent()).toMatch(
        /GPT-1 is post-LayerNorm, with no final LayerNorm and a 512 context; GPT-2 moved/,
      );
      expect(await page.getByTestId('model-layout').inputValue()).toBe('gpt2');
      await page.getByTestId('model-layout').selectOption('gpt1');
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
      // zero-shot tracking (GPT-1, Figure 2): the bundled sentiment sample, scored every 10 steps
      await page.getByTestId('zero-shot-enable').check();
      await page.getByTestId('zero-shot-word-positive').waitFor();
      expect(await page.getByTestId('zero-shot-word-negative').inputValue()).toBe('bad');
      await page.getByLabel('Every N steps', { exact: true }).fill('10');
      await page.getByLabel('Rows scored each time', { exact: true }).fill('8');
      await page.getByTestId('zero-shot-fields').scrollIntoViewIfNeeded();
      await studio.shot(page, 'pretrain-en-4-zero-shot');
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
      expect((await studio.api.invoke('runs.get', { id: RUN })).modelConfig?.layout).toBe('gpt1');
      const points = async () =>
        Number(await page.getByTestId('loss-chart').getAttribute('data-points'));
      await expect.poll(points, { timeout: 40_000 }).toBeGreaterThan(5);
      const before = await points();
      await expect.poll(points, { timeout: 40_000 }).toBeGreaterThan(before);
      await page.getByTestId('samples').locator('li').first().waitFor({ timeout: 40_000 });
      // the zero-shot accuracy beside the loss: scored at the start and every 10 steps
      const zeroShot = page.getByTestId('zero-shot-chart');
      await zeroShot.waitFor({ timeout: 40_000 });
      await expect
        .poll(async () => Number(await zeroShot.getAttribute('data-points')), { timeout: 40_000 })
        .toBeGreaterThan(1);
      await studio.shot(page, 'pretrain-en-run-live');
      await zeroShot.scrollIntoViewIfNeeded();
      await studio.shot(page, 'pretrain-en-run-zero-shot');

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
      // and its zero-shot accuracy, from the run's metrics
      await expect
        .poll(async () =>
          Number(await page.getByTestId('compare-zero-shot-chart').getAttribute('data-points')),
        )
        .toBeGreaterThan(1);
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

  it('starts a run from an imported model: its size and tokenizer, shown read-only', async () => {
    const src = path.join(studio.dir, 'incoming', 'e2e-tiny');
    const tiny = await makeRun(src, charTok(TEXT), { state: false });
    const imported = await studio.api.invoke('checkpoints.import', { from: src, name: 'e2e-tiny' });
    await studio.waitForEvent((e) => e.type === 'job.done' && e.jobId === imported.jobId);
    const { ctx, page, errors } = await studio.openPage('en-US');
    try {
      await page
        .getByRole('navigation', { name: 'Pages' })
        .getByRole('link', { name: 'Pretrain' })
        .click();
      const austen = page.getByLabel('Jane Austen (sample)');
      const toy = page.getByLabel(/toy corpus/);
      await toy.waitFor();
      if (await austen.isChecked()) await austen.uncheck();
      if (!(await toy.isChecked())) await toy.check();
      await page.getByRole('button', { name: 'Next' }).click();
      // the model step is open before any tokenizer: the model chosen there brings its own
      await page.getByRole('button', { name: 'Next' }).click();

      await page.getByTestId('start-existing').check();
      await page.getByTestId('start-model').selectOption({ label: 'e2e-tiny (imported)' });
      const summary = page.getByTestId('start-summary');
      const shown = async () =>
        Promise.all(
          ['nLayer', 'nHead', 'nEmbd', 'blockSize', 'vocab'].map((f) =>
            summary.getByTestId(`start-${f}`).textContent(),
          ),
        );
      const { cfg } = tiny;
      await expect
        .poll(shown)
        .toEqual([cfg.nLayer, cfg.nHead, cfg.nEmbd, cfg.blockSize, cfg.vocabSize].map(String));
      // its size is the model's: no size fields, no layout choice; the estimate is for it
      expect(await page.getByLabel('Layers', { exact: true }).count()).toBe(0);
      expect(await page.getByTestId('model-layout').count()).toBe(0);
      await page.getByTestId('model-estimate').getByText('Parameters').waitFor();
      await studio.shot(page, 'pretrain-en-3-start-from');
      // the tokenizer step says whose tokenizer the run uses
      await page.getByRole('button', { name: 'Back', exact: true }).click();
      expect(await page.getByTestId('start-tokenizer-note').textContent()).toContain('e2e-tiny');
      await page.getByRole('button', { name: 'Next' }).click();
      await page.getByRole('button', { name: 'Next' }).click();

      for (const [label, v] of [
        ['Steps', '2'],
        ['Batch size', '2'],
        ['Warmup steps', '1'],
        ['Evaluate every', '0'],
        ['Sample every', '0'],
        ['Checkpoint every', '0'],
      ] as const) {
        await page.getByLabel(label, { exact: true }).fill(v);
      }
      // one worker: no worker threads to start for two steps
      await page.getByLabel('Workers', { exact: true }).fill('1');
      await page.getByLabel('Workers', { exact: true }).dispatchEvent('change');
      await page.getByLabel('Run name').fill('e2e-from');
      await page.getByRole('button', { name: 'Start pretraining' }).click();
      await page.getByTestId('run-monitor').waitFor();
      await expect
        .poll(() =>
          studio.api.invoke('runs.get', { id: 'e2e-from' }).then(
            (r) => [r.status, r.modelConfig?.n_embd, r.modelConfig?.vocab_size],
            () => undefined,
          ),
        )
        .toEqual(['completed', cfg.nEmbd, cfg.vocabSize]);
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
      // the model step's "Start from", in Chinese: the bundled sample model's summary
      await page.getByRole('button', { name: '下一步' }).click();
      await page.getByRole('button', { name: '下一步' }).click();
      await page.getByLabel('已有模型').check();
      await page.getByTestId('start-summary').getByText('词表大小').waitFor();
      await studio.shot(page, 'pretrain-zh-CN-dark-start-from');
      expect(errors).toEqual([]);
    } finally {
      await ctx.close();
    }
  });
});
