/**
 * The renderer shell end to end, in real headless Chromium (Debian's, driven by playwright-core)
 * against the browser mode: the server in-process on port 0 with a temp workspace and its engine
 * host on wasm. Runs the shell once in English and once in zh-CN; screenshots go to
 * test-artifacts/e2e/.
 */
import { promises as fs, readdirSync } from 'node:fs';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openWs, ROOT, startStudio, TIMEOUT, type Studio } from './harness';

const TEXT =
  'the cat sat on the mat. the dog sat on the log. a cat and a dog met on a mat by the log.\n' +
  'to be or not to be, that is the question; whether tis nobler in the mind to suffer.\n';
const RUN = 'e2e-run';

let studio: Studio;
let dir: string;
/** The corpus and the tokenizer the English test makes, for the restart test's run. */
let trainOn: { datasets: string[]; tokenizer: string } | undefined;

const openShell = (locale: string, colorScheme: 'light' | 'dark' = 'light') =>
  studio.openPage(locale, colorScheme);
const shot = (page: Page, name: string) => studio.shot(page, name);
/** A job's result (its job.done event's), or its failure thrown. */
const resultOf = async (jobId: string) => {
  const end = await studio.waitForEvent(
    (e) => (e.type === 'job.done' || e.type === 'job.failed') && e.jobId === jobId,
  );
  if (end.type !== 'job.done') throw new Error(JSON.stringify(end));
  return end.result;
};

beforeAll(async () => {
  studio = await startStudio({ files: { 'corpus.txt': TEXT.repeat(8) } });
  dir = studio.dir;
}, TIMEOUT);

afterAll(async () => {
  await studio?.close();
}, TIMEOUT);

describe('the renderer shell in Chromium', { timeout: TIMEOUT }, () => {
  it('each en catalog has a zh-CN twin with the same keys, none empty', async () => {
    const i18n = path.join(ROOT, 'src/renderer/i18n');
    const load = async (f: string) =>
      JSON.parse(await fs.readFile(path.join(i18n, f), 'utf8')) as Record<string, unknown>;
    const keys = (o: Record<string, unknown>, p = ''): string[] =>
      Object.entries(o).flatMap(([k, v]) => {
        if (v && typeof v === 'object') return keys(v as Record<string, unknown>, `${p}${k}.`);
        expect(typeof v === 'string' && v.trim() !== '', `${p}${k} is empty`).toBe(true);
        return [`${p}${k}`];
      });
    const files = readdirSync(i18n).filter((f) => f.endsWith('.json'));
    const en = files.filter((f) => f === 'en.json' || f.endsWith('.en.json'));
    expect(en.length).toBeGreaterThan(0);
    expect(files.length).toBe(2 * en.length);
    const all = new Set<string>();
    for (const f of en) {
      const twin = f.replace(/(^|\.)en\.json$/, '$1zh-CN.json');
      const enKeys = keys(await load(f));
      expect(keys(await load(twin)).sort(), twin).toEqual([...enKeys].sort());
      // one key lives in one catalog only
      for (const k of enKeys) {
        expect(all.has(k), `${k} is defined twice`).toBe(false);
        all.add(k);
      }
    }
  });

  it('refuses a WebSocket without the token', async () => {
    await expect(openWs(`ws://127.0.0.1:${studio.server.port}/api`)).rejects.toThrow('HTTP 401');
    const res = await fetch(studio.server.url);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'self'");
    // the built page has no inline script for the CSP to block
    const html = await res.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
  });

  it('takes the token out of the address bar and history, and still connects after a reload', async () => {
    const { ctx, page, errors } = await openShell('en-US');
    try {
      await page.getByTestId('backend').filter({ hasText: 'Backend: wasm' }).waitFor();
      expect(page.url()).not.toContain('token');
      expect(page.url()).not.toContain(studio.server.token);
      await page.reload();
      await page.getByTestId('backend').filter({ hasText: 'Backend: wasm' }).waitFor();
      expect(page.url()).not.toContain(studio.server.token);
      expect(errors).toEqual([]);
      // the entry with the token was replaced, not pushed: back leads to where the tab was before
      await page.goBack();
      expect(page.url()).toBe('about:blank');
    } finally {
      await ctx.close();
    }
  });

  it('the console refuses a prompt past the contract limit before sending it', async () => {
    const { ctx, page } = await openShell('en-US');
    try {
      await page.goto(`${studio.server.origin}/#/console`);
      const input = page.getByTestId('prompt-input');
      await input.waitFor();
      await input.fill('x'.repeat(100_001));
      await page
        .getByTestId('prompt-too-long')
        .filter({ hasText: '1 characters too long' })
        .waitFor();
      expect(await page.getByTestId('send').isDisabled()).toBe(true);
      await input.fill('x'.repeat(100_000));
      await page.getByTestId('prompt-too-long').waitFor({ state: 'detached' });
      expect(await page.getByTestId('send').isDisabled()).toBe(false);
    } finally {
      await ctx.close();
    }
  });

  it('English: loads cleanly, shows the backend, navigates, and a streamed job reaches the status bar', async () => {
    const { ctx, page, errors } = await openShell('en-US');
    try {
      await expect.poll(() => page.getAttribute('html', 'lang')).toBe('en');
      const backend = page.getByTestId('backend');
      await backend.filter({ hasText: 'Backend: wasm' }).waitFor();
      // the backend's details (why not a faster one) open from the status bar
      await backend.click();
      await page.locator('#backend-details').waitFor();
      await shot(page, 'en-backend-details');
      await page.keyboard.press('Escape');
      await page.locator('#backend-details').waitFor({ state: 'detached' });

      const nav = page.getByRole('navigation', { name: 'Pages' });
      for (const [label, title] of [
        ['Pretrain', 'Pretrain'],
        ['Fine-tune', 'Fine-tune'],
        ['Console', 'Console'],
        ['Runs', 'Runs'],
        ['Get models', 'Get models'],
        ['Data', 'Data'],
      ] as const) {
        await nav.getByRole('link', { name: label }).click();
        await expect.poll(() => page.locator('main h1').textContent()).toBe(title);
        await expect
          .poll(() => nav.getByRole('link', { name: label }).getAttribute('aria-current'))
          .toBe('page');
      }
      await shot(page, 'en-data');
      await nav.getByRole('link', { name: 'Runs' }).click();
      await page.getByText('No runs yet').waitFor();
      await shot(page, 'en-runs-empty');

      // arrow keys move between the pages' links
      await nav.getByRole('link', { name: 'Runs' }).focus();
      await page.keyboard.press('ArrowUp');
      await page.keyboard.press('Enter');
      await expect.poll(() => page.locator('main h1').textContent()).toBe('Console');

      // requests round-trip (the wizard's: data, tokenizer, pretrain.start) and the run's
      // streamed progress reaches the status bar
      const imported = await studio.api.invoke('datasets.import', {
        paths: [path.join(dir, 'corpus.txt')],
      });
      const { dataset } = (await resultOf(imported.jobId)) as { dataset: { id: string } };
      const trained = await studio.api.invoke('tokenizers.train', {
        datasets: [dataset.id],
        kind: 'char',
      });
      const { tokenizer } = (await resultOf(trained.jobId)) as { tokenizer: { id: string } };
      trainOn = { datasets: [dataset.id], tokenizer: tokenizer.id };
      const { jobId } = await studio.api.invoke('pretrain.start', {
        datasets: [dataset.id],
        tokenizer: tokenizer.id,
        name: RUN,
        model: { nLayer: 1, nHead: 2, nEmbd: 16, blockSize: 16 },
        train: { steps: 60, batchSize: 2, evalEvery: 20, evalIters: 1, sampleEvery: 0, warmup: 1 },
      });
      const job = page.getByTestId('job');
      await job.filter({ hasText: /Pretraining e2e-run: step \d+ of 60/ }).waitFor();
      await shot(page, 'en-job-running');
      await job.click();
      await expect.poll(() => page.locator('main h1').textContent()).toBe('Runs');
      await page.locator(`tr[data-run="${RUN}"]`).waitFor();

      await studio.waitForEvent(
        (e) => (e.type === 'job.done' || e.type === 'job.failed') && e.jobId === jobId,
      );
      await job.filter({ hasText: 'Pretraining e2e-run: Completed' }).waitFor();
      await page.locator(`tr[data-run="${RUN}"]`).getByText('Completed').waitFor();
      await shot(page, 'en-runs');

      // the language switcher in Settings
      await page.getByRole('button', { name: 'Settings' }).click();
      await page.getByRole('dialog', { name: 'Settings' }).waitFor();
      await shot(page, 'en-settings');
      await page.getByLabel('Language').selectOption('zh-CN');
      await page.getByRole('dialog', { name: '设置' }).waitFor();
      // kept in the workspace, not in the browser
      await expect
        .poll(async () => (await studio.api.invoke('settings.get', {})).language)
        .toBe('zh-CN');
      expect(await page.evaluate('localStorage.length')).toBe(0);
      await page.keyboard.press('Escape');
      await page
        .getByRole('navigation', { name: '页面' })
        .getByRole('link', { name: '训练记录' })
        .waitFor();
      await shot(page, 'en-switched-to-zh-CN');
      expect(await page.getAttribute('html', 'lang')).toBe('zh-CN');

      expect(errors).toEqual([]);
      // back to following the browser's language, for the next test
      await studio.api.invoke('settings.set', { language: 'system' });
    } finally {
      await ctx.close();
    }
  });

  it('zh-CN: the shell follows the browser language, in the dark theme', async () => {
    const { ctx, page, errors } = await openShell('zh-CN', 'dark');
    try {
      await expect.poll(() => page.getAttribute('html', 'lang')).toBe('zh-CN');
      const nav = page.getByRole('navigation', { name: '页面' });
      const labels = await nav.getByRole('link').allTextContents();
      expect(labels.map((s) => s.trim())).toEqual([
        '数据',
        '预训练',
        '微调',
        '控制台',
        '训练记录',
        '获取模型',
      ]);
      await page.getByTestId('backend').filter({ hasText: '计算后端：wasm' }).waitFor();
      await shot(page, 'zh-CN-data');
      await nav.getByRole('link', { name: '训练记录' }).click();
      await expect.poll(() => page.locator('main h1').textContent()).toBe('训练记录');
      await page.locator(`tr[data-run="${RUN}"]`).getByText('已完成').waitFor();
      await shot(page, 'zh-CN-runs');
      await nav.getByRole('link', { name: '控制台' }).click();
      await expect.poll(() => page.locator('main h1').textContent()).toBe('控制台');
      await shot(page, 'zh-CN-console');
      expect(errors).toEqual([]);
    } finally {
      await ctx.close();
    }
  });

  // last: it restarts the server the tests share
  it('a restarted server: the open tab reconnects by itself, its job controls wait meanwhile, the language stays', async () => {
    const { ctx, page, errors } = await openShell('en-US');
    try {
      await page.getByTestId('backend').filter({ hasText: 'Backend: wasm' }).waitFor();
      // a long run the tab shows with its controls
      const { jobId } = await studio.api.invoke('pretrain.start', {
        ...trainOn!,
        name: 'e2e-restart',
        model: { nLayer: 1, nHead: 2, nEmbd: 16, blockSize: 16 },
        train: {
          steps: 100_000,
          batchSize: 2,
          evalEvery: 0,
          sampleEvery: 0,
          saveEvery: 0,
          warmup: 1,
        },
      });
      await studio.waitForEvent(
        (e) => e.type === 'job.progress' && e.jobId === jobId && e.event.type === 'step',
      );
      await page
        .getByRole('navigation', { name: 'Pages' })
        .getByRole('link', { name: 'Pretrain' })
        .click();
      await page.getByTestId('run-phase').filter({ hasText: 'Running' }).waitFor();
      expect(await page.getByTestId('run-stop').isEnabled()).toBe(true);
      expect(await page.getByTestId('run-pause').isEnabled()).toBe(true);
      await page.getByRole('button', { name: 'Settings' }).click();
      await page.getByLabel('Language').selectOption('zh-CN');
      await page.keyboard.press('Escape');
      await expect
        .poll(async () => (await studio.api.invoke('settings.get', {})).language)
        .toBe('zh-CN');

      const before = studio.server.url;
      await studio.stopServer();
      // the tab cannot know whether the run goes on: its state is unknown, its controls wait
      await page.getByTestId('run-phase').filter({ hasText: '状态未知' }).waitFor();
      expect(await page.getByTestId('run-stop').isDisabled()).toBe(true);
      expect(await page.getByTestId('run-pause').isDisabled()).toBe(true);
      await page.getByTestId('job').filter({ hasText: '预训练 e2e-restart：状态未知' }).waitFor();
      await shot(page, 'restart-disconnected');

      const again = await studio.restartServer();
      expect(again.url).toBe(before);
      // the tab reconnects by itself and learns that the restart stopped the run
      await page.locator('.conn.open').waitFor();
      await page.getByTestId('run-phase').filter({ hasText: '已停止' }).waitFor();
      expect(await page.getByTestId('run-stop').count()).toBe(0);
      expect(await page.getAttribute('html', 'lang')).toBe('zh-CN');
      await shot(page, 'restart-reconnected');
      // the language is the workspace's: a new browser profile with English gets it too
      const other = await openShell('en-US');
      await expect.poll(() => other.page.getAttribute('html', 'lang')).toBe('zh-CN');
      await other.ctx.close();
      // only the refused connection attempts while the server was down
      expect(errors.filter((e) => !/WebSocket connection to .* failed/.test(e))).toEqual([]);
    } finally {
      await studio.api.invoke('settings.set', { language: 'system' }).catch(() => {});
      await ctx.close();
    }
  });
});
