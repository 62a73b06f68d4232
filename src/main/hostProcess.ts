/**
 * The engine host as main sees it: a child (Electron's `utilityProcess.fork` of
 * src/server/hostMain.ts) that answers the contract's requests and emits events, restarted when
 * it dies. Free of Electron (the child is injected), so the crash/restart logic is unit-tested;
 * it mirrors the browser-mode server's host restart (src/server/server.ts).
 */
import {
  apiError,
  crashMessage,
  hostStoppedMessage,
  replyMessageSchema,
  type ApiEvent,
  type InvokeMessage,
  type JobKind,
} from '../common/api';
import type { BridgeReply } from '../common/bridge';

/** The part of Electron's `UtilityProcess` used here. */
export interface HostChild {
  readonly pid: number | undefined;
  postMessage(msg: InvokeMessage | { type: 'shutdown' }): void;
  on(event: 'message', fn: (msg: unknown) => void): unknown;
  on(event: 'exit', fn: (code: number) => void): unknown;
  kill(): boolean;
}

export interface HostProcessOptions {
  /** Starts a fresh host child. */
  spawn: () => HostChild;
  /** Every event from the host, and main's own notices about it. */
  onEvent: (e: ApiEvent) => void;
  /** Timers, injectable for tests. */
  setTimeout?: (fn: () => void, ms: number) => unknown;
}

export class HostProcess {
  private child: HostChild | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, (reply: BridgeReply) => void>();
  /** Jobs started and not yet ended, to fail them if the host dies. */
  private readonly jobs = new Map<string, JobKind>();
  private closing = false;
  restarts = 0;

  constructor(private readonly opts: HostProcessOptions) {
    this.start();
  }

  get pid() {
    return this.child?.pid;
  }

  private start() {
    const child = this.opts.spawn();
    this.child = child;
    child.on('message', (m) => this.receive(m));
    child.on('exit', (code) => this.exited(child, code));
  }

  private exited(child: HostChild, code: number) {
    if (this.child !== child) return;
    this.child = null;
    for (const resolve of this.pending.values()) {
      resolve({
        type: 'error',
        error: apiError('internal', 'the engine host stopped before answering; try again'),
      });
    }
    this.pending.clear();
    for (const [jobId, kind] of this.jobs) {
      this.opts.onEvent({
        type: 'job.failed',
        jobId,
        kind,
        error: apiError('internal', crashMessage(kind)),
      });
    }
    this.jobs.clear();
    if (this.closing) return;
    this.restarts += 1;
    this.opts.onEvent({
      type: 'log',
      level: 'error',
      message: hostStoppedMessage(code, null, this.restarts),
    });
    // back off a little if it keeps dying
    const later = this.opts.setTimeout ?? ((fn, ms) => setTimeout(fn, ms));
    later(
      () => {
        if (!this.closing) this.start();
      },
      Math.min(5000, 200 * this.restarts),
    );
  }

  private receive(m: unknown) {
    const r = replyMessageSchema.safeParse(m);
    if (!r.success) {
      this.opts.onEvent({
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
      this.opts.onEvent(e);
      return;
    }
    const resolve = this.pending.get(Number(msg.id));
    if (!resolve) return;
    this.pending.delete(Number(msg.id));
    resolve(
      msg.type === 'result'
        ? { type: 'result', result: msg.result }
        : { type: 'error', error: msg.error },
    );
  }

  /** Sends one (already validated) request; resolves with the host's reply, never rejects. */
  invoke(name: string, params: unknown): Promise<BridgeReply> {
    const child = this.child;
    if (!child) {
      return Promise.resolve({
        type: 'error',
        error: apiError('internal', 'the engine host is restarting; try again in a moment'),
      });
    }
    const id = this.nextId++;
    return new Promise<BridgeReply>((resolve) => {
      this.pending.set(id, resolve);
      try {
        child.postMessage({ id, type: 'invoke', name, params });
      } catch (err) {
        this.pending.delete(id);
        resolve({
          type: 'error',
          error: apiError('internal', `not sent to the engine host: ${(err as Error).message}`),
        });
      }
    });
  }

  /** Stops the host for good (the app is quitting). */
  close() {
    this.closing = true;
    this.child?.kill();
  }

  /**
   * Asks the host to stop its jobs (training saves a checkpoint) and exit, waiting up to
   * `maxMs` before killing it; then it is closed for good.
   */
  shutdown(maxMs = 10_000): Promise<void> {
    const child = this.child;
    this.closing = true;
    if (!child) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        resolve();
      };
      child.on('exit', done);
      (this.opts.setTimeout ?? setTimeout)(() => {
        child.kill();
        done();
      }, maxMs);
      try {
        child.postMessage({ type: 'shutdown' });
      } catch {
        child.kill();
        done();
      }
    });
  }
}
