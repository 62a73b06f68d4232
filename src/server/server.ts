/**
 * Browser mode: an HTTP server on 127.0.0.1 that serves the renderer and carries the contract over
 * a WebSocket at /api?token=…. Engine work runs in a forked engine host (src/server/hostMain.ts),
 * restarted if it crashes.
 *
 * Security (docs/security.md): loopback unless a host is given explicitly; a random 32-byte token
 * in the URL, kept with the port in the workspace's server.json (0600) so a restart serves the
 * same URL and open tabs reconnect (endpoint.ts; `--new-token` replaces it); the WebSocket upgrade
 * is refused (401) without the token, and (403) when a browser's Origin is not this server's own,
 * so no other local process or web page can drive the engine. Settings requests are answered here
 * from the workspace's settings.json (settings.ts), never by the engine host.
 * The host may touch only the workspace and the `--allow-path` folders. A bad frame (too large,
 * invalid UTF-8) closes that connection alone, with a close reason; a client that goes away has
 * its open uploads aborted.
 */
import { fork } from 'node:child_process';
import { timingSafeEqual } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  apiError,
  apiEventSchema,
  invokeMessageSchema,
  parseRequest,
  type ApiError,
  type ApiEvent,
  LIMITS,
  type ReplyMessage,
} from '../common/api';
import { formatBytes } from '../common/format';
import { HostProcess, type HostChild } from '../common/hostProcess';
import { MIME_TYPES } from '../common/mime';
import { answerSettings, isSettingsRequest } from '../common/settings';
import { describeSweep, sweepLeftovers } from '../engine/util/leftovers';
import { bundledEntry } from '../engine/util/sourceBundle';
import { chooseToken, choosePort, listen, readEndpoint, saveEndpoint } from './endpoint';
import { WorkspaceSettings } from './settings';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface ServeOptions {
  host?: string;
  /** 0 = a random free port; default: the port the last start on this workspace saved, else 0. */
  port?: number;
  workspace?: string;
  backend?: string;
  /** Folder of the built renderer; default out/renderer. */
  staticDir?: string;
  /** Fixed token (tests); default: the one saved in the workspace, else 32 random bytes, hex. */
  token?: string;
  /** Replace the saved token with a new one (`--new-token`): pages opened with the old one stop. */
  newToken?: boolean;
  /** Where to note host restarts and such; default stderr. */
  log?: (msg: string) => void;
  /** Folders besides the workspace that requests may read and write (`--allow-path DIR`). */
  allowPaths?: string[];
  /** The largest WebSocket message accepted (default LIMITS.messageBytes). */
  maxMessageBytes?: number;
}

export interface StudioServer {
  url: string;
  origin: string;
  token: string;
  port: number;
  /** The engine host's pid (changes when it is restarted). */
  hostPid(): number | undefined;
  close(): Promise<void>;
}

const HOST_MAIN = path.join(ROOT, 'src/server/hostMain.ts');

/**
 * Forks the engine host (src/server/hostMain.ts) as the shared HostProcess's child: its bundle
 * when there is one (engine/util/sourceBundle.ts), else the source through tsx.
 */
function forkHost(args: string[], bundle: string | null): HostChild {
  const child = fork(bundle ?? HOST_MAIN, args, {
    cwd: ROOT,
    execArgv: bundle ? [] : ['--import', 'tsx'],
    serialization: 'json',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return {
    get pid() {
      return child.pid;
    },
    get connected() {
      return child.connected;
    },
    postMessage: (msg) => void child.send(msg),
    on: (event: 'message' | 'exit', fn: (...args: never[]) => void) =>
      event === 'message'
        ? child.on('message', (m) => (fn as (m: unknown) => void)(m))
        : child.on('exit', (code, signal) =>
            (fn as (c: number | null, s: string | null) => void)(code, signal),
          ),
    // the host cancels its jobs and exits when the channel closes
    stop: () => (child.connected ? child.disconnect() : child.kill('SIGTERM')),
    kill: () => void child.kill('SIGKILL'),
  };
}

const PLACEHOLDER = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>GPT Studio</title></head>
<body><h1>GPT Studio</h1><p>The engine is running. The renderer has not been built yet
(<code>out/renderer</code> is missing); the API is at <code>/api</code>.</p></body></html>
`;

const HEADERS = {
  'Content-Security-Policy':
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self' 'unsafe-inline'; object-src 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

async function serveStatic(dir: string, req: http.IncomingMessage, res: http.ServerResponse) {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, HEADERS).end();
    return;
  }
  let rel: string;
  try {
    rel = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
  } catch {
    res.writeHead(400, HEADERS).end();
    return;
  }
  const file = path.join(dir, path.normalize(rel).replace(/^([/\\])+/, ''));
  if (!file.startsWith(path.resolve(dir) + path.sep) && file !== path.resolve(dir)) {
    res.writeHead(403, HEADERS).end();
    return;
  }
  for (const f of [file, path.join(file, 'index.html'), path.join(dir, 'index.html')]) {
    const st = await fs.stat(f).catch(() => null);
    if (st?.isFile()) {
      const body = await fs.readFile(f);
      res.writeHead(200, {
        ...HEADERS,
        'Content-Type': MIME_TYPES[path.extname(f)] ?? 'application/octet-stream',
      });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
  }
  res.writeHead(200, { ...HEADERS, 'Content-Type': 'text/html; charset=utf-8' }).end(PLACEHOLDER);
}

function sameToken(a: string | null, b: string): boolean {
  if (a === null) return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export async function startServer(opts: ServeOptions = {}): Promise<StudioServer> {
  const bind = opts.host ?? '127.0.0.1';
  const staticDir = path.resolve(opts.staticDir ?? path.join(ROOT, 'out/renderer'));
  const hasStatic = await fs
    .stat(path.join(staticDir, 'index.html'))
    .then((s) => s.isFile())
    .catch(() => false);
  const log = opts.log ?? ((m: string) => process.stderr.write(m + '\n'));

  const server = http.createServer((req, res) => {
    if (hasStatic) {
      serveStatic(staticDir, req, res).catch(() => {
        if (!res.headersSent) res.writeHead(500, HEADERS);
        res.end();
      });
    } else {
      res.writeHead(200, { ...HEADERS, 'Content-Type': 'text/html; charset=utf-8' });
      res.end(PLACEHOLDER);
    }
  });

  const clients = new Set<WebSocket>();

  const sendTo = (ws: WebSocket | null, msg: ReplyMessage) => {
    if (ws && ws.readyState === ws.OPEN) ws.send(JSON.stringify(msg));
  };
  /** Each client's open uploads, aborted when it goes away (so their handles close). */
  const uploadsOf = new Map<WebSocket, Set<string>>();
  /** One client's request to the host; its reply goes back to that client alone. */
  const forward = (
    ws: WebSocket,
    clientId: string | number,
    name: string,
    params: unknown,
    uploadId?: string,
  ) =>
    host.send(
      name,
      params,
      (reply) => {
        if (reply.type === 'result') {
          const mine = uploadsOf.get(ws);
          const id = (reply.result as { uploadId?: unknown } | null)?.uploadId;
          if (name === 'uploads.begin' && typeof id === 'string') mine?.add(id);
          if (uploadId && (name === 'uploads.end' || name === 'uploads.abort')) {
            mine?.delete(uploadId);
          }
        }
        sendTo(ws, { id: clientId, ...reply });
      },
      ws,
    );
  const broadcast = (event: ApiEvent) => {
    if (!apiEventSchema.safeParse(event).success) return;
    if (event.type === 'log' && event.level === 'error') log(`gpt-studio: ${event.message}`);
    for (const ws of clients) sendTo(ws, { type: 'event', event });
  };

  const workspace = path.resolve(opts.workspace ?? 'workspace');
  // what crashed processes left in the workspace goes before anything new starts there
  const removed = await sweepLeftovers([workspace]).catch(() => []);
  if (removed.length > 0) log(`gpt-studio: ${describeSweep(removed, workspace)}`);
  const saved = await readEndpoint(workspace, log);
  const token = chooseToken(opts, saved);
  const opened = await WorkspaceSettings.open(workspace);
  const settings = opened.settings;
  /** A reset settings file is told to the terminal and to the first page that connects. */
  let settingsNotice = opened.notice;
  if (settingsNotice) log(`gpt-studio: ${settingsNotice}`);
  const hostArgs = [
    '--workspace',
    workspace,
    '--backend',
    opts.backend ?? 'auto',
    ...(opts.allowPaths ?? []).flatMap((p) => ['--allow-path', path.resolve(p)]),
  ];
  const bundle = await bundledEntry(HOST_MAIN);
  const host = new HostProcess({ spawn: () => forkHost(hostArgs, bundle), onEvent: broadcast });
  const maxPayload = opts.maxMessageBytes ?? LIMITS.messageBytes;

  const port = await listen(server, bind, choosePort(opts, saved), log);
  await saveEndpoint(workspace, { port, token }).catch((err: Error) =>
    log(`gpt-studio: could not save the port and token for the next start: ${err.message}`),
  );
  const hostPart = bind.includes(':') ? `[${bind}]` : bind;
  const origin = `http://${hostPart}:${port}`;
  // a page opened as localhost rather than 127.0.0.1 is still this server
  const origins = new Set([origin]);
  const loopback = bind === '127.0.0.1' || bind === '::1' || bind === 'localhost';
  if (loopback) origins.add(`http://localhost:${port}`);

  const wss = new WebSocketServer({ noServer: true, maxPayload });
  // a failure of the listening machinery is logged, never a crash
  wss.on('error', (err) => log(`gpt-studio: websocket server: ${err.message}`));
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });

  server.on('upgrade', (req, socket, head) => {
    // a socket that errors before or during the handshake is dropped, alone
    socket.on('error', () => socket.destroy());
    const refuse = (status: number, text: string) => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    let url: URL;
    try {
      url = new URL(req.url ?? '/', origin);
    } catch {
      refuse(400, 'Bad Request');
      return;
    }
    if (url.pathname !== '/api') return refuse(404, 'Not Found');
    if (!sameToken(url.searchParams.get('token'), token)) return refuse(401, 'Unauthorized');
    const reqOrigin = req.headers.origin;
    // Bound elsewhere with --host, the page's origin is whatever name reached this machine: the
    // Host header's (the token still guards against DNS rebinding). On loopback, only our own.
    const sameHost = !loopback && reqOrigin === `http://${req.headers.host ?? ''}`;
    if (reqOrigin !== undefined && !origins.has(reqOrigin) && !sameHost) {
      return refuse(403, 'Forbidden');
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });

  wss.on('connection', (ws: WebSocket) => {
    clients.add(ws);
    uploadsOf.set(ws, new Set());
    if (settingsNotice) {
      sendTo(ws, { type: 'event', event: { type: 'log', level: 'warn', message: settingsNotice } });
      settingsNotice = null;
    }
    // Too large a message (1009), invalid UTF-8 (1007), a protocol error (1002): `ws` closes this
    // connection with that code (its own close carries no reason, so one is added here) and emits
    // the error, which is noted and goes no further.
    const close = ws.close.bind(ws);
    ws.close = (code?: number, reason?: string | Buffer) =>
      close(code, reason ?? (code !== undefined ? closeReason(code, maxPayload) : undefined));
    ws.on('error', (err: Error & { code?: string }) => {
      log(
        `gpt-studio: a client connection was closed: ${err.message}${err.code ? ` (${err.code})` : ''}`,
      );
    });
    ws.on('close', () => {
      clients.delete(ws);
      host.forget(ws);
      // its unfinished uploads go too (the host closes their files and removes them)
      for (const uploadId of uploadsOf.get(ws) ?? []) {
        host.send('uploads.abort', { uploadId }, () => {});
      }
      uploadsOf.delete(ws);
    });
    ws.on('message', (data) => {
      let raw: unknown;
      try {
        raw = JSON.parse(String(data));
      } catch {
        return sendTo(ws, {
          type: 'event',
          event: { type: 'log', level: 'warn', message: 'a message that is not JSON was ignored' },
        });
      }
      const msg = invokeMessageSchema.safeParse(raw);
      if (!msg.success) {
        const id = (raw as { id?: unknown } | null)?.id;
        const error: ApiError = apiError(
          'bad-request',
          'malformed message: expected {id, type:"invoke", name, params}',
        );
        if (typeof id === 'string' || typeof id === 'number')
          sendTo(ws, { id, type: 'error', error });
        return;
      }
      const { id, name, params } = msg.data;
      // validated here too, so a bad request never reaches the engine host
      const parsed = parseRequest(name, params);
      if (!parsed.ok) return sendTo(ws, { id, type: 'error', error: parsed.error });
      // settings are the server's own, as they are Electron main's: the engine host never sees them
      if (isSettingsRequest(name)) {
        void answerSettings(settings, name, parsed.params).then((reply) =>
          sendTo(ws, { id, ...reply }),
        );
        return;
      }
      const uploadId = (parsed.params as { uploadId?: string }).uploadId;
      forward(ws, id, name, params ?? {}, uploadId);
    });
  });

  return {
    url: `${origin}/?token=${token}`,
    origin,
    token,
    port,
    hostPid: () => host.pid,
    async close() {
      for (const ws of clients) ws.terminate();
      wss.close();
      await host.shutdown();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/**
 * `npm run serve -- [--host H] [--port N] [--workspace DIR] [--backend NAME] [--allow-path DIR]…
 * [--new-token]`
 */
export function parseServeArgs(argv: readonly string[]): ServeOptions {
  const opts: ServeOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes('=')
      ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]
      : [a, undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '') throw new Error(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--host':
        opts.host = value();
        break;
      case '--port': {
        const v = value();
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0 || n > 65535) {
          throw new Error(`--port must be an integer in 0..65535, got ${v}`);
        }
        opts.port = n;
        break;
      }
      case '--workspace':
        opts.workspace = value();
        break;
      case '--backend':
        opts.backend = value();
        break;
      case '--allow-path':
        (opts.allowPaths ??= []).push(path.resolve(value()));
        break;
      case '--new-token':
        if (inline !== undefined) throw new Error('--new-token takes no value');
        opts.newToken = true;
        break;
      default:
        throw new Error(
          `unknown option ${a} (options: --host, --port, --workspace, --backend, --allow-path, --new-token)`,
        );
    }
  }
  opts.workspace ??= process.env.GPT_STUDIO_WORKSPACE ?? './workspace';
  return opts;
}

/** Why a connection was closed, for the close frame (at most 123 bytes). */
export function closeReason(code: number, maxPayload: number): string | undefined {
  switch (code) {
    case 1009:
      return `message too large: at most ${formatBytes(maxPayload)} per message`;
    case 1007:
      return 'invalid UTF-8 in a text message';
    case 1002:
      return 'WebSocket protocol error';
    default:
      return undefined;
  }
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

/** What to say when the server is bound beyond loopback: the token travels in clear text. */
export function exposureWarning(host: string | undefined): string | null {
  if (host === undefined || LOOPBACK.test(host)) return null;
  return (
    `warning: bound to ${host}, not loopback. The page and its token travel over plain HTTP, so ` +
    `anyone who can watch the network can take the token and drive the engine with this ` +
    `workspace's file access. Prefer binding to 127.0.0.1 and reaching it through an SSH tunnel:\n` +
    `  ssh -L 8080:127.0.0.1:PORT user@this-machine   then open http://127.0.0.1:8080/?token=…\n`
  );
}

/** The `serve` entry: starts the server and prints its URL. */
export async function serveMain(argv: readonly string[]): Promise<void> {
  let opts: ServeOptions;
  try {
    opts = parseServeArgs(argv);
  } catch (err) {
    process.stderr.write(`gpt-studio serve: ${(err as Error).message}\n`);
    process.exitCode = 2;
    return;
  }
  for (const dir of opts.allowPaths ?? []) {
    const st = await fs.stat(dir).catch(() => null);
    if (!st?.isDirectory()) {
      process.stderr.write(`gpt-studio serve: --allow-path ${dir}: not a folder\n`);
      process.exitCode = 2;
      return;
    }
  }
  const s = await startServer(opts);
  process.stdout.write(
    `GPT Studio is running at\n  ${s.url}\n(workspace: ${path.resolve(opts.workspace!)})\n` +
      `The address stays the same when it restarts on this workspace, so open tabs reconnect; ` +
      `--new-token replaces the token.\n`,
  );
  const allowed = opts.allowPaths?.length ? `, and ${opts.allowPaths.join(', ')}` : '';
  process.stdout.write(
    `Requests may read and write only the workspace${allowed} (add folders with --allow-path DIR).\n`,
  );
  const warning = exposureWarning(opts.host);
  if (warning) process.stderr.write(warning);
  let stopping = false;
  const stop = () => {
    if (stopping) process.exit(130);
    stopping = true;
    void s.close().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
