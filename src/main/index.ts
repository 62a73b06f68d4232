/**
 * The Electron main process: thin glue. The window and its guards (window.ts, security.ts), the
 * engine host in a utility process (hostProcess.ts, over the HostProcess browser mode shares), the
 * request gate (ipc.ts), the settings (settings.ts) and the menu (menu.ts) hold the logic; this
 * file wires them to Electron.
 */
/// <reference types="electron-vite/node" />
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BrowserWindow,
  Menu,
  app,
  dialog,
  ipcMain,
  nativeTheme,
  utilityProcess,
  type IpcMainInvokeEvent,
} from 'electron';
import Store from 'electron-store';
// only the entry's path: the engine host runs in its own process (utilityProcess.fork)
import hostMainPath from '../server/hostMain?modulePath';
import type { ApiEvent } from '../common/api';
import { EVENT_CHANNEL as EVENT, INVOKE_CHANNEL as INVOKE } from '../common/bridge';
import { answerSettings, isSettingsRequest } from '../common/settings';
import { HostProcess, utilityHostChild } from './hostProcess';
import { appUrlMatcher, handleInvoke } from './ipc';
import { menuTemplate } from './menu';
import { openSettings, type AppSettings, type Settings, type SettingsStore } from './settings';
import {
  contentSecurityPolicy,
  createMainWindow,
  guardAllWebContents,
  openExternalLink,
  registerAppScheme,
  rendererBases,
  rendererUrl,
  secureSession,
  serveRenderer,
} from './window';

const here = path.dirname(fileURLToPath(import.meta.url));
const devUrl = !app.isPackaged ? process.env['ELECTRON_RENDERER_URL'] : undefined;
const location = devUrl ? { devUrl } : {};
const isAppUrl = appUrlMatcher(rendererBases(location));

let mainWindow: BrowserWindow | null = null;
let host: HostProcess | null = null;
let settings: AppSettings;
/** Notices raised before the window could show them (a reset settings file). */
const early: ApiEvent[] = [];

function sendEvent(event: ApiEvent) {
  if (event.type === 'job.started' && event.runId) settings.addRecentRun(event.runId);
  const wc = mainWindow && !mainWindow.isDestroyed() ? mainWindow.webContents : null;
  if (!wc || wc.isLoading()) {
    // the page is not listening yet: keep notices for it (progress is stale by then anyway)
    if (event.type === 'log' && early.length < 20) early.push(event);
    return;
  }
  wc.send(EVENT, event);
}

function startHost() {
  host?.close();
  host = new HostProcess({
    spawn: () =>
      utilityHostChild(
        utilityProcess.fork(
          hostMainPath,
          // the renderer's paths come from native dialogs the user answered (docs/security.md)
          [
            '--workspace',
            settings.get('workspace'),
            '--backend',
            settings.get('backend'),
            '--paths',
            'unrestricted',
          ],
          {
            serviceName: 'GPT Studio engine',
            stdio: 'inherit',
            env: {
              ...process.env,
              GPT_STUDIO_VERSION: app.getVersion(),
              // samples and the bundled model: beside the app when packaged (extraResources)
              GPT_STUDIO_RESOURCES: app.isPackaged
                ? path.join(process.resourcesPath, 'resources')
                : path.join(app.getAppPath(), 'resources'),
            },
          },
        ),
      ),
    onEvent: sendEvent,
  });
}

async function chooseWorkspace() {
  const options = {
    title: 'Choose the workspace folder',
    defaultPath: settings.get('workspace'),
    properties: ['openDirectory', 'createDirectory'] as Array<'openDirectory' | 'createDirectory'>,
  };
  const r = mainWindow
    ? await dialog.showOpenDialog(mainWindow, options)
    : await dialog.showOpenDialog(options);
  const dir = r.filePaths[0];
  if (r.canceled || !dir) return;
  const err = settings.set('workspace', dir);
  if (err) {
    sendEvent({ type: 'log', level: 'error', message: `workspace not changed: ${err}` });
    return;
  }
  sendEvent({ type: 'log', level: 'info', message: `workspace: ${dir} (the engine restarts)` });
  startHost();
}

function buildMenu() {
  const template = menuTemplate({
    isMac: process.platform === 'darwin',
    isDev: !app.isPackaged,
    appName: app.name,
    settings: { theme: settings.get('theme'), language: settings.get('language') },
    actions: {
      chooseWorkspace: () => void chooseWorkspace(),
      setTheme: (theme: Settings['theme']) => {
        settings.set('theme', theme);
        nativeTheme.themeSource = theme;
      },
      setLanguage: (language: Settings['language']) => {
        settings.set('language', language);
        sendEvent({
          type: 'log',
          level: 'info',
          message: 'the language changes when GPT Studio is restarted',
        });
      },
      openLink: (url: string) => void openExternalLink(url),
    },
  });
  Menu.setApplicationMenu(Menu.buildFromTemplate(template));
}

function onInvoke(event: IpcMainInvokeEvent, name: unknown, params: unknown) {
  const frame = event.senderFrame;
  return handleInvoke(
    {
      webContentsId: event.sender.id,
      frameUrl: frame ? frame.url : null,
      // the top frame has no parent (an iframe's requests are refused)
      isMainFrame: frame !== null && frame.parent === null,
    },
    {
      webContentsId: mainWindow && !mainWindow.isDestroyed() ? mainWindow.webContents.id : null,
      isAppUrl,
    },
    name,
    params,
    // the renderer's settings are main's own (electron-store), as they are the server's in browser mode
    (n, p) => (isSettingsRequest(n) ? setSettings(n, p) : host!.invoke(n, p)),
  );
}

/** Answers `settings.*`; a changed theme applies at once, and the menu shows the new choices. */
async function setSettings(name: Parameters<typeof answerSettings>[1], params: unknown) {
  const reply = await answerSettings(settings.uiHolder(), name, params);
  if (name === 'settings.set' && reply.type === 'result') {
    nativeTheme.themeSource = settings.get('theme');
    buildMenu();
  }
  return reply;
}

function openWindow() {
  mainWindow = createMainWindow({
    preload: path.join(here, '../preload/index.cjs'),
    url: rendererUrl(location),
  });
  mainWindow.webContents.on('did-finish-load', () => {
    for (const e of early.splice(0)) mainWindow?.webContents.send(EVENT, e);
  });
  mainWindow.on('closed', () => {
    mainWindow = null;
  });
}

function main() {
  if (!app.requestSingleInstanceLock()) {
    app.quit();
    return;
  }
  registerAppScheme();
  guardAllWebContents();

  const opened = openSettings({
    cwd: app.getPath('userData'),
    defaultWorkspace: path.join(app.getPath('documents'), 'GPT Studio'),
    create: (o) => new Store<Settings>(o) as unknown as SettingsStore,
  });
  settings = opened.settings;
  if (opened.notice) early.push({ type: 'log', level: 'warn', message: opened.notice });
  // the renderer's navigator.language follows this; 'system' keeps the OS language
  const language = settings.get('language');
  if (language !== 'system') app.commandLine.appendSwitch('lang', language);

  app.on('second-instance', () => {
    if (mainWindow) {
      if (mainWindow.isMinimized()) mainWindow.restore();
      mainWindow.focus();
    }
  });

  void app.whenReady().then(() => {
    const csp = contentSecurityPolicy(devUrl);
    secureSession({ csp, isAppUrl });
    if (!devUrl) serveRenderer(path.join(here, '../renderer'), csp);
    nativeTheme.themeSource = settings.get('theme');
    ipcMain.handle(INVOKE, onInvoke);
    startHost();
    buildMenu();
    openWindow();
    app.on('activate', () => {
      if (BrowserWindow.getAllWindows().length === 0) openWindow();
    });
  });

  app.on('window-all-closed', () => {
    if (process.platform !== 'darwin') app.quit();
  });
  // let a running job save before the app goes: ask the host to stop, then quit for real
  let hostStopped = false;
  app.on('will-quit', (event) => {
    if (hostStopped || !host) return;
    event.preventDefault();
    void host.shutdown().then(() => {
      hostStopped = true;
      app.quit();
    });
  });
}

main();
