/**
 * Export and import in the app, end to end in Chromium against the browser mode: export a tiny
 * run from the Runs page, import the exported folder back, and the dialog in zh-CN / dark with a
 * format it cannot take. Screenshots go to test-artifacts/e2e/.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bpeTok, charTok, makeRun } from '../engine/checkpoint/fixtures';
import { startStudio, TIMEOUT, type Studio } from './harness';

let studio: Studio;

beforeAll(async () => {
  studio = await startStudio();
  await makeRun(path.join(studio.dir, 'runs', 'tiny-bpe'), await bpeTok());
  await makeRun(path.join(studio.dir, 'runs', 'tiny-char'), charTok());
}, TIMEOUT);

afterAll(async () => {
  await studio?.close();
}, TIMEOUT);

describe('export and import in the app', { timeout: TIMEOUT }, () => {
  it('exports a run from the Runs page and imports it back', async () => {
    const { ctx, page, errors } = await studio.openPage('en-US', 'light');
    try {
      await page
        .getByRole('navigation', { name: 'Pages' })
        .getByRole('link', { name: 'Runs' })
        .click();
      const row = page.locator('tr[data-run="tiny-bpe"]');
      await row.waitFor();
      await row.getByRole('button', { name: 'Export tiny-bpe' }).click();
      const dialog = page.getByRole('dialog', { name: 'Export tiny-bpe' });
      await dialog.waitFor();
      const out = dialog.getByTestId('export-out');
      await expect
        .poll(() => out.inputValue())
        .toBe(path.join(studio.dir, 'exports', 'tiny-bpe-hf'));
      await dialog.getByTestId('export-format-gguf').check();
      await expect
        .poll(() => out.inputValue())
        .toBe(path.join(studio.dir, 'exports', 'tiny-bpe-gguf'));
      await dialog.getByTestId('export-format-hf').check();
      await studio.shot(page, 'checkpoints-export-dialog');
      await dialog.getByTestId('export-submit').click();
      const done = dialog.getByTestId('export-done');
      await done.waitFor();
      await expect.poll(() => done.textContent()).toContain('model.safetensors');
      await studio.shot(page, 'checkpoints-export-done');
      const exported = path.join(studio.dir, 'exports', 'tiny-bpe-hf');
      expect((await fs.readdir(exported)).sort()).toContain('README.md');
      await dialog.getByRole('button', { name: 'Close' }).last().click();

      await page.getByTestId('import-open').click();
      const imp = page.getByRole('dialog', { name: 'Import a GPT-2 model' });
      await imp.waitFor();
      await imp.getByTestId('import-from').fill(exported);
      await imp.getByTestId('import-name').fill('bad name!');
      await imp.getByText("Letters, digits, '.', '_' or '-' only").waitFor();
      await imp.getByTestId('import-name').fill('tiny-back');
      await imp.getByTestId('import-submit').click();
      await imp.getByTestId('import-done').waitFor();
      await studio.shot(page, 'checkpoints-import-done');
      const back = path.join(studio.dir, 'models', 'tiny-back');
      expect(await fs.readdir(back)).toContain('model.safetensors');

      // importing it again is refused: the folder exists
      await imp.getByTestId('import-submit').click();
      await expect
        .poll(() => imp.getByTestId('import-error').textContent())
        .toMatch(/already exists and is not empty/);
      expect(errors).toEqual([]);
    } finally {
      await ctx.close();
    }
  });

  it('the Runs page lists every model with its kind, filters, opens, and deletes them', async () => {
    const ft = path.join(studio.dir, 'finetunes', 'tiny-ft');
    const imp = path.join(studio.dir, 'models', 'tiny-imp');
    await makeRun(ft, charTok());
    await makeRun(imp, charTok());
    const { ctx, page, errors } = await studio.openPage('en-US', 'light');
    try {
      await page
        .getByRole('navigation', { name: 'Pages' })
        .getByRole('link', { name: 'Runs' })
        .click();
      const row = (id: string) => page.locator(`tr[data-run="${id}"]`);
      const kind = (id: string) => row(id).getByTestId('model-kind');
      await kind('tiny-ft').filter({ hasText: 'Fine-tuned' }).waitFor();
      expect(await kind('tiny-imp').textContent()).toBe('Imported');
      expect(await kind('tiny-bpe').textContent()).toBe('Pretrained');
      // the filter shows one kind
      await page.getByRole('radio', { name: /^Fine-tuned/ }).check();
      await expect.poll(() => page.locator('tbody tr').count()).toBe(1);
      await row('tiny-ft').getByRole('button', { name: 'Export tiny-ft' }).waitFor();
      await studio.shot(page, 'checkpoints-runs-fine-tuned');
      await row('tiny-ft').getByRole('button', { name: 'Delete' }).click();
      let dialog = page.getByRole('dialog');
      await dialog.getByText('Delete the fine-tune tiny-ft?').waitFor();
      await dialog.getByRole('button', { name: 'Delete' }).click();
      await row('tiny-ft').waitFor({ state: 'detached' });
      await expect(fs.access(ft)).rejects.toThrow();

      await page.getByRole('radio', { name: /^All/ }).check();
      await row('tiny-imp').getByRole('button', { name: 'Delete' }).click();
      dialog = page.getByRole('dialog');
      await dialog.getByText('Delete the imported model tiny-imp?').waitFor();
      await dialog.getByRole('button', { name: 'Delete' }).click();
      await row('tiny-imp').waitFor({ state: 'detached' });
      await expect(fs.access(imp)).rejects.toThrow();

      // Open: the console, on that model
      await row('tiny-char').getByRole('button', { name: 'Open in console' }).click();
      await expect
        .poll(() => page.getByTestId('model-select').inputValue())
        .toBe(path.join(studio.dir, 'runs', 'tiny-char'));
      expect(errors).toEqual([]);
    } finally {
      await ctx.close();
    }
  });

  it('zh-CN, dark: a char model cannot go to GGUF, and the dialog says why', async () => {
    await makeRun(path.join(studio.dir, 'runs', 'tiny-gpt1'), await bpeTok(), {
      cfg: { layout: 'gpt1' },
    });
    const { ctx, page, errors } = await studio.openPage('zh-CN', 'dark');
    try {
      await page
        .getByRole('navigation', { name: '页面' })
        .getByRole('link', { name: '训练记录' })
        .click();
      const row = page.locator('tr[data-run="tiny-char"]');
      await row.waitFor();
      await row.getByRole('button', { name: '导出 tiny-char' }).click();
      const dialog = page.getByRole('dialog', { name: '导出 tiny-char' });
      await dialog.waitFor();
      await expect.poll(() => dialog.getByTestId('export-format-gguf').isDisabled()).toBe(true);
      await dialog.getByText(/不可用：该模型使用字符级分词器/).waitFor();
      await studio.shot(page, 'checkpoints-export-dialog-zh-dark');
      // GPT-1's post-LayerNorm layout cannot go to a cluster (its train.py is GPT-2's)
      await page.keyboard.press('Escape');
      await page
        .locator('tr[data-run="tiny-gpt1"]')
        .getByRole('button', { name: '导出 tiny-gpt1' })
        .click();
      const gpt1 = page.getByRole('dialog', { name: '导出 tiny-gpt1' });
      await expect.poll(() => gpt1.getByTestId('export-format-cluster').isDisabled()).toBe(true);
      await gpt1.getByText(/不可用：该模型采用 GPT-1 的后置 LayerNorm 布局，而集群/).waitFor();
      await studio.shot(page, 'checkpoints-export-cluster-gpt1-zh-dark');
      expect(errors).toEqual([]);
    } finally {
      await ctx.close();
    }
  });
});
