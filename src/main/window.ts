/**
 * Electron glue for the window and its session: the BrowserWindow with the options from
 * security.ts, the CSP session header, the permission handlers, the app:// protocol, and the
 * navigation/window.open/webview guards on every webContents. Tested with `electron` mocked.
 */
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { BrowserWindow, app, protocol, session, shell, type WebContents } from 'electron';
import {
  APP_HOST,
  APP_ORIGIN,
  APP_SCHEME,
  contentSecurityPolicy,
  isAllowedExternal,
  permissionAllowed,
  resolveAppFile,
} from './security';
import { MIME_TYPES } from '../common/mime';

/** Call before `app` is ready: app:// is a standard, secure scheme (its own origin). */
export function registerAppScheme() {
  protocol.registerSchemesAsPrivileged([
    { scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true } },
  ]);
}

/** Serves the built renderer (`root`) at app://gpt-studio/ with the CSP header. */
export function serveRenderer(root: string, csp: string) {
  session.defaultSession.protocol.handle(APP_SCHEME, async (request) => {
    const file = resolveAppFile(root, request.url);
    if (file === null) return new Response('not found', { status: 404 });
    try {
      const body = await readFile(file);
      return new Response(body, {
        headers: {
          'Content-Type': MIME_TYPES[path.extname(file)] ?? 'application/octet-stream',
          'Content-Security-Policy': csp,
          'X-Content-Type-Options': 'nosniff',
        },
      });
    } catch {
      return new Response('not found', { status: 404 });
    }
  });
}

/**
 * The session's guards: the CSP on every response (the dev server's too), permissions denied
 * unless allow-listed for the app's own page, and no remote requests at all.
 */
export function secureSession(opts: { csp: string; isAppUrl: (url: string) => boolean }) {
  const ses = session.defaultSession;
  ses.webRequest.onHeadersReceived((details, callback) => {
    callback({
      responseHeaders: {
        ...details.responseHeaders,
        'Content-Security-Policy': [opts.csp],
      },
    });
  });
  // no remote content: only the app's own page (and devtools) may load anything
  ses.webRequest.onBeforeRequest((details, callback) => {
    const ok =
      opts.isAppUrl(details.url) ||
      // the dev server's hot-reload socket (its host is the page's own)
      opts.isAppUrl(details.url.replace(/^ws:/, 'http:')) ||
      details.url.startsWith('devtools://') ||
      details.url.startsWith('data:');
    callback({ cancel: !ok });
  });
  ses.setPermissionRequestHandler((webContents, permission, callback) => {
    callback(permissionAllowed(permission, webContents.getURL(), opts.isAppUrl));
  });
  ses.setPermissionCheckHandler((_webContents, permission, requestingOrigin) =>
    permissionAllowed(permission, requestingOrigin, opts.isAppUrl),
  );
}

/** Opens an allow-listed https link in the user's browser; anything else is ignored. */
export function openExternalLink(url: string): boolean {
  if (!isAllowedExternal(url)) return false;
  void shell.openExternal(url); // eng-disable OPEN_EXTERNAL_JS_CHECK (checked against the allow-list)
  return true;
}

/** window.open: denied; an allow-listed https link opens in the user's browser instead. */
export function windowOpenHandler({ url }: { url: string }): { action: 'deny' } {
  openExternalLink(url);
  return { action: 'deny' };
}

/** Navigation guards for every webContents the app creates. */
export function guardWebContents(contents: WebContents) {
  contents.on('will-navigate', (event, url) => {
    event.preventDefault();
    openExternalLink(url);
  });
  contents.on('will-redirect', (event) => event.preventDefault());
  contents.on('will-attach-webview', (event) => event.preventDefault());
  contents.setWindowOpenHandler(windowOpenHandler);
}

/** Installs the guards on every future webContents (before any window exists). */
export function guardAllWebContents() {
  app.on('web-contents-created', (_event, contents) => guardWebContents(contents));
}

export interface RendererLocation {
  /** The dev server's URL (electron-vite sets ELECTRON_RENDERER_URL), or unset when packaged. */
  devUrl?: string;
}

/** The app's page: the dev server in development, app://gpt-studio/index.html when packaged. */
export function rendererUrl(loc: RendererLocation): string {
  return loc.devUrl ?? `${APP_ORIGIN}/index.html`;
}

export function rendererBases(loc: RendererLocation): string[] {
  return loc.devUrl ? [loc.devUrl, `${APP_SCHEME}://${APP_HOST}/`] : [`${APP_ORIGIN}/`];
}

export function createMainWindow(opts: { preload: string; url: string }): BrowserWindow {
  // the options are literal here so that static checkers (electronegativity) can see them
  const win = new BrowserWindow({
    width: 1280,
    height: 820,
    minWidth: 900,
    minHeight: 600,
    show: false,
    title: 'GPT Studio',
    webPreferences: {
      preload: opts.preload, // eng-disable PRELOAD_JS_CHECK (reviewed: it exposes only invoke and on)
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      experimentalFeatures: false,
      webviewTag: false,
      navigateOnDragDrop: false,
      safeDialogs: true,
      spellcheck: false,
      // a middle-click must not open a link in a new window
      disableBlinkFeatures: 'Auxclick',
    },
  });
  guardWebContents(win.webContents);
  win.once('ready-to-show', () => win.show());
  void win.loadURL(opts.url);
  return win;
}

export { contentSecurityPolicy };
