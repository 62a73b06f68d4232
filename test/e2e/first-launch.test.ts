/**
 * First launch on an empty workspace: the bundled sample model (resources/models/austen-tiny) is
 * there, so the console writes with it at once and the fine-tune wizard opens on it with the
 * bundled sentiment set. Screenshots in test-artifacts/e2e/first-launch-*.png.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStudio, TIMEOUT, type Studio } from './harness';

let studio: Studio;

beforeAll(async () => {
  studio = await startStudio();
}, TIMEOUT);

afterAll(async () => {
  await studio?.close();
}, TIMEOUT);

describe('first launch', { timeout: 120_000 }, () => {
  it('the console writes with the sample model, and the fine-tune wizard starts from it', async () => {
    const { ctx, page, errors } = await studio.openPage('en-US');
    try {
      await page.goto(`${studio.server.url.split('#')[0]}#/console`);
      const select = page.getByTestId('model-select');
      await expect.poll(() => select.inputValue()).toMatch(/resources[\\/]models[\\/]austen-tiny$/);
      await page.getByTestId('max-new-tokens').fill('40');
      await page.getByTestId('prompt-input').fill('It is a truth universally');
      await page.getByTestId('send').click();
      const turn = page.getByTestId('turn').last();
      await turn.getByTestId('stopped-by').waitFor();
      // Austen-flavoured English: mostly letters and spaces, several words
      const reply = (await turn.getByTestId('reply').textContent()) ?? '';
      expect(
        reply.split(/\s+/).filter((w) => /^[A-Za-z]+[,.;:!?'"-]*$/.test(w)).length,
      ).toBeGreaterThan(8);
      await studio.shot(page, 'first-launch-console');

      await page
        .getByRole('navigation', { name: 'Pages' })
        .getByRole('link', { name: 'Fine-tune' })
        .click();
      await expect
        .poll(() => page.getByRole('radio', { name: /austen-tiny/ }).isChecked())
        .toBe(true);
      await page.getByRole('button', { name: 'Next' }).click();
      await page.getByRole('button', { name: 'Next' }).click();
      await page
        .getByTestId('import-counts')
        .filter({ hasText: '1000 rows read · 1000 imported · 0 skipped' })
        .waitFor();
      await page
        .getByTestId('truncation-rule')
        .filter({ hasText: 'Context: 128 tokens' })
        .waitFor();
      await studio.shot(page, 'first-launch-finetune');
      expect(errors).toEqual([]);
    } finally {
      await ctx.close();
    }
  });
});
