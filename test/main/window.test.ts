import { beforeEach, describe, expect, it, vi } from 'vitest';

// Electron cannot run here: a stand-in records what main asks of it.
const h = vi.hoisted(() => {
  type Fn = (...args: unknown[]) => unknown;
  const makeContents = () => {
    const handlers = new Map<string, Fn[]>();
    return {
      handlers,
      windowOpen: null as Fn | null,
      on(event: string, fn: Fn) {
        handlers.set(event, [...(handlers.get(event) ?? []), fn]);
        return this;
      },
      setWindowOpenHandler(fn: Fn) {
        this.windowOpen = fn;
      },
      getURL: () => 'app://gpt-studio/index.html',
    };
  };
  const windows: Array<{ options: unknown; webContents: ReturnType<typeof makeContents> }> = [];
  class BrowserWindow {
    webContents = makeContents();
    loaded: string | null = null;
    constructor(readonly options: unknown) {
      windows.push(this);
    }
    once() {}
    show() {}
    loadURL(url: string) {
      this.loaded = url;
      return Promise.resolve();
    }
  }
  const session = {
    headers: null as Fn | null,
    beforeRequest: null as Fn | null,
    permissionRequest: null as Fn | null,
    permissionCheck: null as Fn | null,
  };
  const defaultSession = {
    webRequest: {
      onHeadersReceived: (fn: Fn) => (session.headers = fn),
      onBeforeRequest: (fn: Fn) => (session.beforeRequest = fn),
    },
    setPermissionRequestHandler: (fn: Fn) => (session.permissionRequest = fn),
    setPermissionCheckHandler: (fn: Fn) => (session.permissionCheck = fn),
    protocol: { handle: vi.fn() },
  };
  return {
    windows,
    session,
    makeContents,
    electron: {
      BrowserWindow,
      app: { on: vi.fn() },
      protocol: { registerSchemesAsPrivileged: vi.fn() },
      session: { defaultSession },
      shell: { openExternal: vi.fn(async () => {}) },
    },
  };
});
vi.mock('electron', () => ({ ...h.electron, default: h.electron }));

const { appUrlMatcher } = await import('../../src/main/ipc');
const { contentSecurityPolicy, isAllowedExternal, resolveAppFile } =
  await import('../../src/main/security');
const win = await import('../../src/main/window');

beforeEach(() => {
  h.electron.shell.openExternal.mockClear();
});

describe('main window', () => {
  it('is isolated, sandboxed, without Node, with the CJS preload', () => {
    const w = win.createMainWindow({ preload: '/app/out/preload/index.cjs', url: 'app://x/' });
    const { webPreferences } = h.windows.at(-1)!.options as {
      webPreferences: Record<string, unknown>;
    };
    expect(webPreferences).toMatchObject({
      preload: '/app/out/preload/index.cjs',
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
      disableBlinkFeatures: 'Auxclick',
    });
    expect((w as unknown as { loaded: string }).loaded).toBe('app://x/');
  });

  it('denies navigation, redirects, webviews and window.open', () => {
    win.createMainWindow({ preload: '/p.cjs', url: 'app://gpt-studio/index.html' });
    const wc = h.windows.at(-1)!.webContents;
    for (const event of ['will-navigate', 'will-redirect', 'will-attach-webview']) {
      const e = { preventDefault: vi.fn() };
      for (const fn of wc.handlers.get(event) ?? []) fn(e, 'https://evil.example/');
      expect(e.preventDefault, event).toHaveBeenCalled();
    }
    expect(wc.windowOpen!({ url: 'https://evil.example/' })).toEqual({ action: 'deny' });
    expect(h.electron.shell.openExternal).not.toHaveBeenCalled();
    // an allow-listed link is denied in the app and opened in the browser
    expect(wc.windowOpen!({ url: 'https://github.com/karpathy/nanoGPT' })).toEqual({
      action: 'deny',
    });
    expect(h.electron.shell.openExternal).toHaveBeenCalledWith(
      'https://github.com/karpathy/nanoGPT',
    );
  });

  it('guards every webContents the app creates', () => {
    win.guardAllWebContents();
    const [event, fn] = h.electron.app.on.mock.calls.at(-1) as [string, (...a: unknown[]) => void];
    expect(event).toBe('web-contents-created');
    const wc = h.makeContents();
    fn({}, wc);
    expect(wc.handlers.has('will-navigate')).toBe(true);
    expect(wc.windowOpen!({ url: 'file:///etc/passwd' })).toEqual({ action: 'deny' });
  });
});

describe('session', () => {
  const isAppUrl = appUrlMatcher(['app://gpt-studio/']);
  const csp = contentSecurityPolicy();
  win.secureSession({ csp, isAppUrl });

  it('sends a strict CSP on every response', () => {
    expect(csp).toBe(
      "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; connect-src 'self'; worker-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-src 'none'; frame-ancestors 'none'; object-src 'none'",
    );
    expect(csp).not.toMatch(/unsafe-eval|\*|https?:/);
    const cb = vi.fn();
    h.session.headers!({ responseHeaders: { 'X-A': ['1'] } }, cb);
    expect(cb).toHaveBeenCalledWith({
      responseHeaders: { 'X-A': ['1'], 'Content-Security-Policy': [csp] },
    });
    expect(contentSecurityPolicy('http://localhost:5173/')).toContain(
      "connect-src 'self' ws://localhost:5173",
    );
  });

  it('loads no remote content', () => {
    const cancel = (url: string) => {
      const cb = vi.fn();
      h.session.beforeRequest!({ url }, cb);
      return (cb.mock.calls[0]![0] as { cancel: boolean }).cancel;
    };
    expect(cancel('app://gpt-studio/assets/index.js')).toBe(false);
    expect(cancel('https://cdn.example/x.js')).toBe(true);
    expect(cancel('http://localhost:5173/')).toBe(true);
  });

  it('denies permissions by default', () => {
    const ask = (permission: string) => {
      const cb = vi.fn();
      h.session.permissionRequest!({ getURL: () => 'app://gpt-studio/index.html' }, permission, cb);
      return cb.mock.calls[0]![0];
    };
    for (const p of ['media', 'geolocation', 'notifications', 'openExternal', 'midi', 'hid']) {
      expect(ask(p), p).toBe(false);
    }
    expect(ask('clipboard-sanitized-write')).toBe(true);
    expect(h.session.permissionCheck!({}, 'media', 'app://gpt-studio')).toBe(false);
    const cb = vi.fn();
    h.session.permissionRequest!(
      { getURL: () => 'https://evil.example/' },
      'clipboard-sanitized-write',
      cb,
    );
    expect(cb).toHaveBeenCalledWith(false);
  });
});

describe('security helpers', () => {
  it('allows only https links to the allow-listed hosts', () => {
    expect(isAllowedExternal('https://huggingface.co/gpt2')).toBe(true);
    expect(isAllowedExternal('https://arxiv.org/abs/1706.03762')).toBe(true);
    expect(isAllowedExternal('http://github.com/')).toBe(false);
    expect(isAllowedExternal('https://github.com.evil.example/')).toBe(false);
    expect(isAllowedExternal('https://user@github.com/')).toBe(false);
    expect(isAllowedExternal('file:///etc/passwd')).toBe(false);
    expect(isAllowedExternal('javascript:alert(1)')).toBe(false);
  });

  it('maps app:// URLs into the renderer folder only', () => {
    const root = '/app/out/renderer';
    expect(resolveAppFile(root, 'app://gpt-studio/')).toBe('/app/out/renderer/index.html');
    expect(resolveAppFile(root, 'app://gpt-studio/assets/a.js?x=1')).toBe(
      '/app/out/renderer/assets/a.js',
    );
    expect(resolveAppFile(root, 'app://gpt-studio/../../etc/passwd')).toBe(
      '/app/out/renderer/etc/passwd',
    );
    expect(resolveAppFile(root, 'app://gpt-studio/%2e%2e/%2e%2e/etc/passwd')).toBe(
      '/app/out/renderer/etc/passwd',
    );
    expect(resolveAppFile(root, 'app://other/index.html')).toBeNull();
  });
});
