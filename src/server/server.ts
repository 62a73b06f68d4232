/**
 * Browser mode: an HTTP server on 127.0.0.1 that serves the renderer and carries the contract over
 * a WebSocket at /api?token=…. Engine work runs in a forked engine host (src/server/hostMain.ts),
 * restarted if it crashes.
 *
 * Security: loopback unless a host is given explicitly; a random 32-byte token in the URL; the
 * WebSocket upgrade is refused (401) without the token, and (403) when a browser's Origin is not
 * this server's own, so no other local process or web page can drive the engine.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  apiError,
  apiEventSchema,
  invokeMessageSchema,
  parseRequest,
  replyMessageSchema,
  type ApiError,
  type ApiEvent,
  type JobKind,
  type ReplyMessage,
} from '../common/api';
import { MIME_TYPES } from '../common/mime';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface ServeOptions {
  host?: string;
  /** 0 = a random free port. */
  port?: number;
  workspace?: string;
  backend?: string;
  /** Folder of the built renderer; default out/renderer. */
  staticDir?: string;
  /** Fixed token (tests); default 32 random bytes, hex. */
  token?: string;
  /** Where to note host restarts and such; default stderr. */
  log?: (msg: string) => void;
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

type Pending = { ws: WebSocket; clientId: string | number };

/** The forked engine host, restarted when it exits unexpectedly. */
class HostProcess {
  private child: ChildProcess | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Jobs started and not yet ended, to fail them if the host dies. */
  private readonly jobs = new Map<string, JobKind>();
  private closing = false;
  private restarts = 0;

  constructor(
    private readonly args: string[],
    private readonly onReply: (p: Pending, msg: ReplyMessage) => void,
    private readonly onEvent: (e: ApiEvent) => void,
  ) {
    this.start();
  }

  get pid() {
    return this.child?.pid;
  }

  private start() {
    const child = fork(path.join(ROOT, 'src/server/hostMain.ts'), this.args, {
      cwd: ROOT,
      execArgv: ['--import', 'tsx'],
      serialization: 'json',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child = child;
    child.on('message', (m) => this.receive(m));
    child.on('exit', (code, signal) => {
      if (this.child !== child) return;
      this.child = null;
      for (const [, p] of this.pending) {
        this.onReply(p, {
          id: p.clientId,
          type: 'error',
          error: apiError('internal', 'the engine host stopped before answering; try again'),
        });
      }
      this.pending.clear();
      for (const [jobId, kind] of this.jobs) {
        this.onEvent({
          type: 'job.failed',
          jobId,
          kind,
          error: apiError(
            'internal',
            'the engine host crashed; the run keeps its last checkpoint and can be resumed',
          ),
        });
      }
      this.jobs.clear();
      if (this.closing) return;
      this.restarts += 1;
      const how = signal ? `signal ${signal}` : `exit code ${code}`;
      this.onEvent({
        type: 'log',
        level: 'error',
        message: `the engine host stopped (${how}); restarting it (restart ${this.restarts})`,
      });
      // back off a little if it keeps dying
      setTimeout(() => this.closing || this.start(), Math.min(5000, 200 * this.restarts));
    });
  }

  private receive(m: unknown) {
    const r = replyMessageSchema.safeParse(m);
    if (!r.success) {
      this.onEvent({
        type: 'log',
        level: 'warn',
        message: 'malformed message from the engine host',
      });
      return;
    }
    const msg = r.data;
    if (msg.type === 'event') {
      const e = msg.event;
      if (e.type === 'job.started') this.jobs.set(e.jobId, e.kind);
      if (e.type === 'job.done' || e.type === 'job.failed') this.jobs.delete(e.jobId);
      this.onEvent(e);
      return;
    }
    const p = this.pending.get(Number(msg.id));
    if (!p) return;
    this.pending.delete(Number(msg.id));
    this.onReply(p, { ...msg, id: p.clientId });
  }

  invoke(p: Pending, name: string, params: unknown) {
    if (!this.child?.connected) {
      this.onReply(p, {
        id: p.clientId,
        type: 'error',
        error: apiError('internal', 'the engine host is restarting; try again in a moment'),
      });
      return;
    }
    const id = this.nextId++;
    this.pending.set(id, p);
    this.child.send({ id, type: 'invoke', name, params });
  }

  forget(ws: WebSocket) {
    for (const [id, p] of this.pending) if (p.ws === ws) this.pending.delete(id);
  }

  async close() {
    this.closing = true;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      // the host cancels its jobs and exits when the channel closes
      if (child.connected) child.disconnect();
      else child.kill('SIGTERM');
    });
  }
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
  const token = opts.token ?? randomBytes(32).toString('hex');
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
  const wss = new WebSocketServer({ noServer: true, maxPayload: 16 * 1024 * 1024 });
  const clients = new Set<WebSocket>();

  const sendTo = (ws: WebSocket, msg: ReplyMessage) => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(msg));
  };
  const broadcast = (event: ApiEvent) => {
    if (!apiEventSchema.safeParse(event).success) return;
    if (event.type === 'log' && event.level === 'error') log(`gpt-studio: ${event.message}`);
    for (const ws of clients) sendTo(ws, { type: 'event', event });
  };

  const hostArgs = [
    '--workspace',
    path.resolve(opts.workspace ?? 'workspace'),
    '--backend',
    opts.backend ?? 'auto',
  ];
  const host = new HostProcess(hostArgs, (p, msg) => sendTo(p.ws, msg), broadcast);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, bind, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const hostPart = bind.includes(':') ? `[${bind}]` : bind;
  const origin = `http://${hostPart}:${port}`;
  // a page opened as localhost rather than 127.0.0.1 is still this server
  const origins = new Set([origin]);
  const loopback = bind === '127.0.0.1' || bind === '::1' || bind === 'localhost';
  if (loopback) origins.add(`http://localhost:${port}`);

  server.on('upgrade', (req, socket, head) => {
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
    ws.on('close', () => {
      clients.delete(ws);
      host.forget(ws);
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
      host.invoke({ ws, clientId: id }, name, params ?? {});
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
      await host.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** `npm run serve -- [--host H] [--port N] [--workspace DIR] [--backend NAME]` */
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
      default:
        throw new Error(`unknown option ${a} (options: --host, --port, --workspace, --backend)`);
    }
  }
  opts.workspace ??= process.env.GPT_STUDIO_WORKSPACE ?? './workspace';
  return opts;
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
  const s = await startServer(opts);
  process.stdout.write(
    `GPT Studio is running at\n  ${s.url}\n(workspace: ${path.resolve(opts.workspace!)})\n`,
  );
  let stopping = false;
  const stop = () => {
    if (stopping) process.exit(130);
    stopping = true;
    void s.close().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
