/**
 * The engine host as its parent sees it, written once for both parents: browser mode's server
 * (a `child_process.fork`, src/server/server.ts) and Electron's main (a `utilityProcess.fork`,
 * src/main/index.ts). It pairs replies with requests, forwards events, restarts the host when it
 * dies (backing off if it keeps dying), and then fails the requests it had not answered and the
 * jobs it was running. Runtime-agnostic: each parent injects how to start a child, so this has no
 * Node or Electron API and is unit-tested with a fake child.
 */
import {
  apiError,
  crashMessage,
  hostStoppedMessage,
  replyMessageSchema,
  type ApiEvent,
  type InvokeMessage,
  type JobKind,
} from './api';
import type { BridgeReply } from './bridge';

/** What Electron's main sends the host before quitting (a fork's channel closing says the same). */
export const SHUTDOWN_MESSAGE = { type: 'shutdown' } as const;

/** What a parent gives for one running engine host process. */
export interface HostChild {
  readonly pid: number | undefined;
  /** False once the channel to the child is closed (it is exiting); absent means open. */
  readonly connected?: boolean;
  postMessage(msg: InvokeMessage): void;
  on(event: 'message', fn: (msg: unknown) => void): unknown;
  /** `signal` where the runtime reports one (a fork), else only the code. */
  on(event: 'exit', fn: (code: number | null, signal?: string | null) => void): unknown;
  /**
   * Asks the host to stop its jobs (training saves a checkpoint) and exit: main sends the
   * `shutdown` message, the server closes the fork's channel.
   */
  stop(): void;
  /** Ends the process now. */
  kill(): void;
}

export interface HostProcessOptions {
  /** Starts a fresh host child. */
  spawn: () => HostChild;
  /** Every event from the host, and the parent's own notices about it. */
  onEvent: (e: ApiEvent) => void;
  /** Timers, injectable for tests. */
  setTimeout?: (fn: () => void, ms: number) => unknown;
  /** Clears what `setTimeout` returned (without it, a timer left to fire finds nothing to do). */
  clearTimeout?: (timer: unknown) => void;
}

/** A request waiting for the host's reply, and who asked (so it can be forgotten). */
interface Pending {
  reply: (reply: BridgeReply) => void;
  owner: unknown;
}

export class HostProcess {
  private child: HostChild | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
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

  private later(fn: () => void, ms: number): () => void {
    if (this.opts.setTimeout) {
      const timer = this.opts.setTimeout(fn, ms);
      return () => this.opts.clearTimeout?.(timer);
    }
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  }

  private start() {
    const child = this.opts.spawn();
    this.child = child;
    child.on('message', (m) => this.receive(m));
    child.on('exit', (code, signal) => this.exited(child, code, signal ?? null));
  }

  private exited(child: HostChild, code: number | null, signal: string | null) {
    if (this.child !== child) return;
    this.child = null;
    for (const p of this.pending.values()) {
      p.reply({
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
      message: hostStoppedMessage(code, signal, this.restarts),
    });
    // back off a little if it keeps dying
    this.later(
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
    const p = this.pending.get(Number(msg.id));
    if (!p) return;
    this.pending.delete(Number(msg.id));
    p.reply(
      msg.type === 'result'
        ? { type: 'result', result: msg.result }
        : { type: 'error', error: msg.error },
    );
  }

  /**
   * Sends one (already validated) request; `reply` gets the host's answer, or an error when the
   * host is restarting or dies first; it is called synchronously as the answer arrives, so replies
   * and events keep their order. `owner` says who asked, for `forget`.
   */
  send(name: string, params: unknown, reply: (r: BridgeReply) => void, owner?: unknown): void {
    const child = this.child;
    if (!child || child.connected === false) {
      reply({
        type: 'error',
        error: apiError('internal', 'the engine host is restarting; try again in a moment'),
      });
      return;
    }
    const id = this.nextId++;
    this.pending.set(id, { reply, owner });
    try {
      child.postMessage({ id, type: 'invoke', name, params });
    } catch (err) {
      this.pending.delete(id);
      reply({
        type: 'error',
        error: apiError('internal', `not sent to the engine host: ${(err as Error).message}`),
      });
    }
  }

  /** `send` as a promise: resolves with the host's reply, never rejects. */
  invoke(name: string, params: unknown): Promise<BridgeReply> {
    return new Promise((resolve) => this.send(name, params, resolve));
  }

  /** Drops the requests `owner` still waits for (it went away): their replies go nowhere. */
  forget(owner: unknown) {
    for (const [id, p] of this.pending) if (p.owner === owner) this.pending.delete(id);
  }

  /** Stops the host for good, now (a new one replaces it). */
  close() {
    this.closing = true;
    this.child?.kill();
  }

  /**
   * Asks the host to stop its jobs (training saves a checkpoint) and exit, waiting up to `maxMs`
   * before killing it; then it is closed for good.
   */
  shutdown(maxMs = 10_000): Promise<void> {
    const child = this.child;
    this.closing = true;
    if (!child) return Promise.resolve();
    return new Promise((resolve) => {
      let cancelKill = () => {};
      const done = () => {
        cancelKill();
        resolve();
      };
      child.on('exit', done);
      cancelKill = this.later(() => {
        child.kill();
        done();
      }, maxMs);
      try {
        child.stop();
      } catch {
        child.kill();
        done();
      }
    });
  }
}
