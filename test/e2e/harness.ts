/**
 * The e2e harness shared by every page's test: the renderer built once (under a lock, since test
 * files run in parallel), the browser-mode server in-process on port 0 with a temp workspace and
 * its engine host on wasm (it can be stopped and restarted on the same workspace), a WebSocket
 * client for driving the engine directly, and Debian's Chromium through playwright-core.
 * Screenshots go to test-artifacts/e2e/.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, promises as fs, readdirSync, rmSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import WebSocket from 'ws';
import type { ApiEvent } from '../../src/common/api';
import { ApiClient } from '../../src/common/client';
import { startServer, type StudioServer } from '../../src/server/server';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const ARTIFACTS = path.join(ROOT, 'test-artifacts/e2e');
const OUT = path.join(ROOT, 'out/renderer/index.html');
const LOCK = path.join(ROOT, 'out/.renderer-build-lock');
export const TIMEOUT = 60_000;

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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Builds the renderer when out/renderer is missing or older than its sources (one builder at a time). */
export async function ensureBuilt(): Promise<void> {
  const fresh = () => existsSync(OUT) && statSync(OUT).mtimeMs >= newestSource();
  if (fresh()) return;
  mkdirSync(path.dirname(LOCK), { recursive: true });
  for (let waited = 0; ; waited += 200) {
    try {
      mkdirSync(LOCK);
      break;
    } catch {
      // another test file is building; a lock older than 3 minutes is a crashed builder's
      if (waited > 180_000 || Date.now() - statSync(LOCK).mtimeMs > 180_000) {
        rmSync(LOCK, { recursive: true, force: true });
      }
      await sleep(200);
    }
  }
  try {
    if (fresh()) return;
    execFileSync(
      process.execPath,
      [path.join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', '-c', 'vite.renderer.config.ts'],
      { cwd: ROOT, stdio: 'pipe' },
    );
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}

export function openWs(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

export interface Studio {
  /** The temp workspace. */
  dir: string;
  server: StudioServer;
  browser: Browser;
  /** A client of the same server, to drive or watch the engine directly. */
  api: ApiClient;
  /** Every event the client has seen. */
  events: ApiEvent[];
  waitForEvent(pred: (e: ApiEvent) => boolean, ms?: number): Promise<ApiEvent>;
  /** A page of the app in its own context, recording console errors and uncaught exceptions. */
  openPage(
    locale?: string,
    colorScheme?: 'light' | 'dark',
  ): Promise<{ ctx: BrowserContext; page: Page; errors: string[] }>;
  shot(page: Page, name: string): Promise<Buffer>;
  /** Closes the server alone (as Ctrl-C would): the browser and its pages stay open. */
  stopServer(): Promise<void>;
  /**
   * Starts the server again on the same workspace, without a port (so the one it saved), and
   * reconnects `api`; `server` is the new one.
   */
  restartServer(): Promise<StudioServer>;
  close(): Promise<void>;
}

/** Starts the server (temp workspace seeded with `files`), a client and Chromium. */
export async function startStudio(
  opts: { files?: Record<string, string | Uint8Array> } = {},
): Promise<Studio> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is missing at ${CHROMIUM}: the e2e tests need Debian's chromium ` +
        '(run `apt-get install chromium`, or scripts/install-test-deps.sh as root)',
    );
  }
  await ensureBuilt();
  await fs.mkdir(ARTIFACTS, { recursive: true });
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gpt-studio-e2e-'));
  for (const [name, content] of Object.entries(opts.files ?? {})) {
    await fs.mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await fs.writeFile(path.join(dir, name), content);
  }
  let server = await startServer({ port: 0, workspace: dir, backend: 'wasm', log: () => {} });
  let running = true;
  const connectClient = async () => {
    const socket = await openWs(`ws://127.0.0.1:${server.port}/api?token=${server.token}`);
    socket.on('message', (d) => api.receive(JSON.parse(String(d))));
    return socket;
  };
  const api: ApiClient = new ApiClient({ send: (m) => ws.send(JSON.stringify(m)) });
  let ws = await connectClient();
  const events: ApiEvent[] = [];
  api.onAny((e) => events.push(e));
  const browser = await chromium.launch({
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
  const studio: Studio = {
    dir,
    server,
    browser,
    api,
    events,
    waitForEvent(pred, ms = 40_000) {
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
    },
    async openPage(locale = 'en-US', colorScheme = 'light') {
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
    },
    shot: (page, name) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) }),
    async stopServer() {
      ws.close();
      running = false;
      await server.close();
    },
    async restartServer() {
      if (running) await studio.stopServer();
      server = await startServer({ workspace: dir, backend: 'wasm', log: () => {} });
      running = true;
      studio.server = server;
      ws = await connectClient();
      return server;
    },
    async close() {
      await browser.close();
      ws.close();
      if (running) await server.close();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
  return studio;
}
