/**
 * The renderer shell end to end, in real headless Chromium (Debian's, driven by playwright-core)
 * against the browser mode: the server in-process on port 0 with a temp workspace and its engine
 * host on wasm. Runs the shell once in English and once in zh-CN; screenshots go to
 * test-artifacts/e2e/.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fs, statSync, readdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { ApiEvent } from '../../src/common/api';
import { ApiClient } from '../../src/common/client';
import { startServer, type StudioServer } from '../../src/server/server';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = path.join(ROOT, 'test-artifacts/e2e');
const OUT = path.join(ROOT, 'out/renderer/index.html');
const TIMEOUT = 60_000;

const TEXT =
  'the cat sat on the mat. the dog sat on the log. a cat and a dog met on a mat by the log.\n' +
  'to be or not to be, that is the question; whether tis nobler in the mind to suffer.\n';
const RUN = 'e2e-run';

/** The newest modification time of the renderer's sources (and what they import). */
function newestSource(): number {
  let newest = 0;
  const walk = (p: string) => {
    const st = statSync(p);
    if (st.isDirectory()) for (const f of readdirSync(p)) walk(path.join(p, f));
    else newest = Math.max(newest, st.mtimeMs);
  };
  for (const p of ['src/renderer', 'src/common', 'vite.renderer.config.ts', 'package.json']) {
    walk(path.join(ROOT, p));
  }
  return newest;
}

/** Builds the renderer when out/renderer is missing or older than its sources. */
function ensureBuilt() {
  if (existsSync(OUT) && statSync(OUT).mtimeMs >= newestSource()) return;
  execFileSync(
    process.execPath,
    [path.join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', '-c', 'vite.renderer.config.ts'],
    { cwd: ROOT, stdio: 'pipe' },
  );
}

function openWs(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

let dir: string;
let server: StudioServer;
let browser: Browser;
let ws: WebSocket;
let api: ApiClient;
const events: ApiEvent[] = [];

function waitForEvent(pred: (e: ApiEvent) => boolean, ms = 40_000): Promise<ApiEvent> {
  return new Promise((resolve, reject) => {
    const hit = events.find(pred);
    if (hit) return resolve(hit);
    const timer = setTimeout(() => reject(new Error('timed out waiting for an event')), ms);
    const off = api.onAny((e) => {
      if (!pred(e)) return;
      clearTimeout(timer);
      off();
      resolve(e);
    });
  });
}

/** A page of the shell in its own context, recording console errors and uncaught exceptions. */
async function openShell(
  locale: string,
  colorScheme: 'light' | 'dark' = 'light',
): Promise<{ ctx: BrowserContext; page: Page; errors: string[] }> {
  const ctx = await browser.newContext({
    locale,
    colorScheme,
    viewport: { width: 1200, height: 760 },
  });
  const page = await ctx.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(server.url);
  return { ctx, page, errors };
}

const shot = (page: Page, name: string) =>
  page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is missing at ${CHROMIUM}: the e2e tests need Debian's chromium ` +
        '(run `apt-get install chromium`, or scripts/install-test-deps.sh as root)',
    );
  }
  ensureBuilt();
  await fs.mkdir(ARTIFACTS, { recursive: true });
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gpt-studio-e2e-'));
  await fs.writeFile(path.join(dir, 'corpus.txt'), TEXT.repeat(8));
  server = await startServer({ port: 0, workspace: dir, backend: 'wasm', log: () => {} });
  ws = await openWs(`ws://127.0.0.1:${server.port}/api?token=${server.token}`);
  api = new ApiClient({ send: (m) => ws.send(JSON.stringify(m)) });
  ws.on('message', (d) => api.receive(JSON.parse(String(d))));
  api.onAny((e) => events.push(e));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}, TIMEOUT);

afterAll(async () => {
  await browser?.close();
  ws?.close();
  await server?.close();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
}, TIMEOUT);

describe('the renderer shell in Chromium', { timeout: TIMEOUT }, () => {
  it('the en and zh-CN catalogs have the same keys, none empty', async () => {
    const load = async (l: string) =>
      JSON.parse(await fs.readFile(path.join(ROOT, `src/renderer/i18n/${l}.json`), 'utf8'));
    const keys = (o: Record<string, unknown>, p = ''): string[] =>
      Object.entries(o).flatMap(([k, v]) => {
        if (v && typeof v === 'object') return keys(v as Record<string, unknown>, `${p}${k}.`);
        expect(typeof v === 'string' && v.trim() !== '', `${p}${k} is empty`).toBe(true);
        return [`${p}${k}`];
      });
    const en = keys(await load('en'));
    const zh = keys(await load('zh-CN'));
    expect(zh.sort()).toEqual(en.sort());
  });

  it('refuses a WebSocket without the token', async () => {
    await expect(openWs(`ws://127.0.0.1:${server.port}/api`)).rejects.toThrow('HTTP 401');
    const res = await fetch(server.url);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'self'");
    // the built page has no inline script for the CSP to block
    const html = await res.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
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

      // a request round-trips (pretrain.start) and its streamed progress reaches the status bar
      const { jobId } = await api.invoke('pretrain.start', {
        corpus: [path.join(dir, 'corpus.txt')],
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

      await waitForEvent(
        (e) => (e.type === 'job.done' || e.type === 'job.failed') && e.jobId === jobId,
      );
      await job.filter({ hasText: 'Pretraining e2e-run: finished' }).waitFor();
      await page.locator(`tr[data-run="${RUN}"]`).getByText('Completed').waitFor();
      await shot(page, 'en-runs');

      // the language switcher in Settings
      await page.getByRole('button', { name: 'Settings' }).click();
      await page.getByRole('dialog', { name: 'Settings' }).waitFor();
      await shot(page, 'en-settings');
      await page.getByLabel('Language').selectOption('zh-CN');
      await page.getByRole('dialog', { name: '设置' }).waitFor();
      expect(await page.evaluate('localStorage.getItem("gpt-studio.locale")')).toBe('zh-CN');
      await page.keyboard.press('Escape');
      await page
        .getByRole('navigation', { name: '页面' })
        .getByRole('link', { name: '训练记录' })
        .waitFor();
      await shot(page, 'en-switched-to-zh-CN');
      expect(await page.getAttribute('html', 'lang')).toBe('zh-CN');

      expect(errors).toEqual([]);
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
      expect(labels.map((s) => s.trim())).toEqual(['数据', '预训练', '微调', '控制台', '训练记录']);
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
});
