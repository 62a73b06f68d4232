/**
 * The Data page in Chromium through the browser mode: the sample corpus on first launch, files
 * dropped onto the page (uploaded in chunks, imported as a job), a JSONL file's field chosen, the
 * same content recognized, a binary and an empty file refused by name, and a folder from the
 * picker imported under its name.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStudio, TIMEOUT, type Studio } from './harness';

const TEXT =
  'the cat sat on the mat. the dog sat on the log.\n' +
  'to be or not to be, that is the question.\n' +
  'the cat sat on the mat. the dog sat on the log.\n';

let studio: Studio;
beforeAll(async () => {
  studio = await startStudio();
}, TIMEOUT);
afterAll(async () => {
  await studio?.close();
}, TIMEOUT);

/** Drops files onto the drop zone as a user's drag and drop would. */
async function drop(page: Page, files: Array<{ name: string; content: string | number[] }>) {
  // built in the page (DOM types are not in this file's Node tsconfig)
  const dt = await page.evaluateHandle(`(() => {
    const t = new DataTransfer();
    for (const f of ${JSON.stringify(files)}) {
      const body = typeof f.content === 'string' ? f.content : new Uint8Array(f.content);
      t.items.add(new File([body], f.name));
    }
    return t;
  })()`);
  await page.dispatchEvent('[data-testid="dropzone"]', 'dragover', { dataTransfer: dt });
  await page.dispatchEvent('[data-testid="dropzone"]', 'drop', { dataTransfer: dt });
}

describe('the Data page in Chromium', { timeout: TIMEOUT }, () => {
  it('imports dropped files, shows their statistics, and refuses binary and empty files', async () => {
    const { ctx, page, errors } = await studio.openPage('en-US');
    try {
      const list = page.getByTestId('dataset-list');
      await list.getByText('Jane Austen (sample)').waitFor();
      await page.getByTestId('dataset-stats').getByText('Unique characters').waitFor();
      await studio.shot(page, 'datasets-en-sample');

      await drop(page, [{ name: 'cats.txt', content: TEXT.repeat(10) }]);
      const message = page.getByTestId('import-message');
      await message.filter({ hasText: 'Imported “cats”.' }).waitFor();
      const stats = page.getByTestId('dataset-stats');
      // 30 lines, 28 of them repeats of an earlier line
      await stats.getByText(/^\s*28\s*\(93\.3%\)\s*$/).waitFor();
      expect(await page.getByTestId('dataset-preview').textContent()).toContain('to be or not');
      await studio.shot(page, 'datasets-en-imported');

      // the same text again is recognized
      await drop(page, [{ name: 'copy.txt', content: TEXT.repeat(10) }]);
      await message.filter({ hasText: '“cats” is already in the library' }).waitFor();

      await drop(page, [
        { name: 'photo.txt', content: [0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 1, 2, 3] },
      ]);
      await page
        .getByRole('alert')
        .filter({ hasText: /photo\.txt looks binary/ })
        .waitFor();
      await studio.shot(page, 'datasets-en-binary');
      await drop(page, [{ name: 'empty.txt', content: '' }]);
      await page
        .getByRole('alert')
        .filter({ hasText: /empty\.txt is empty/ })
        .waitFor();
      await studio.shot(page, 'datasets-en-empty');

      // a folder from the picker: its text files, named after it; other files left out
      const folder = path.join(
        await fs.mkdtemp(path.join(os.tmpdir(), 'gpt-studio-e2e-')),
        'poems',
      );
      await fs.mkdir(path.join(folder, 'more'), { recursive: true });
      await fs.writeFile(path.join(folder, 'one.txt'), 'the first poem, line one\nand line two\n');
      await fs.writeFile(path.join(folder, 'more', 'two.md'), '# the second poem\nits only line\n');
      await fs.writeFile(path.join(folder, 'cover.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0]));
      const folderChooser = page.waitForEvent('filechooser');
      await page.getByRole('button', { name: 'Add folder' }).click();
      await (await folderChooser).setFiles(folder);
      await message.filter({ hasText: 'Imported “poems”.' }).waitFor();
      expect(await page.getByTestId('dataset-preview').textContent()).toContain('the second poem');
      await fs.rm(path.dirname(folder), { recursive: true, force: true });

      // a JSONL file: the text field is chosen before the import
      await drop(page, [
        {
          name: 'reviews.jsonl',
          content:
            '{"id":1,"review":"a fine film","stars":5}\n{"id":2,"review":"dull","stars":1}\n',
        },
      ]);
      const chooser = page.getByTestId('field-chooser');
      await chooser.waitFor();
      expect(await chooser.getByLabel('Field').inputValue()).toBe('review');
      await studio.shot(page, 'datasets-en-field');
      await chooser.getByRole('button', { name: 'Import' }).click();
      await message.filter({ hasText: 'Imported “reviews”.' }).waitFor();
      expect(await page.getByTestId('dataset-preview').textContent()).toBe('a fine film\ndull\n');
      await expect.poll(() => list.getByRole('button').count()).toBe(4);

      // several files at once are one dataset; files that cannot be imported are left out
      await drop(page, [
        { name: 'part1.txt', content: 'first part\n' },
        { name: 'part2.md', content: '# second part\n' },
        { name: 'cover.png', content: [0x89, 0x50, 0x4e, 0x47, 0, 0] },
      ]);
      await message.filter({ hasText: 'Imported “part1 +1”.' }).waitFor();
      expect(await page.getByTestId('dataset-preview').textContent()).toBe(
        'first part\n# second part\n',
      );
      await expect.poll(() => list.getByRole('button').count()).toBe(5);

      // deleting asks first
      await page.getByTestId('dataset-view').getByRole('button', { name: 'Delete' }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
      await expect.poll(() => list.getByRole('button').count()).toBe(4);
      expect(errors).toEqual([]);
    } finally {
      await ctx.close();
    }
  });

  it('zh-CN, dark theme', async () => {
    const { ctx, page, errors } = await studio.openPage('zh-CN', 'dark');
    try {
      await page.getByTestId('dataset-stats').getByText('不同字符').waitFor();
      await studio.shot(page, 'datasets-zh-CN-dark');
      expect(errors).toEqual([]);
    } finally {
      await ctx.close();
    }
  });
});
