/**
 * The contract's client side, written once for every transport: the renderer wraps a browser
 * WebSocket (browser mode) or the preload bridge (Electron) in it; tests wrap a `ws` socket.
 * Pure: the transport is injected.
 */
import {
  apiError,
  replyMessageSchema,
  type ApiError,
  type ApiEvent,
  type ApiEventType,
  type EventOf,
  type InvokeMessage,
  type JobRef,
  type Params,
  type RequestName,
  type Result,
} from './api';

/** A request that came back as a typed error. */
export class ApiRequestError extends Error {
  constructor(readonly error: ApiError) {
    super(error.message);
    this.name = 'ApiRequestError';
  }
  get code() {
    return this.error.code;
  }
}

export interface Transport {
  send(msg: InvokeMessage): void;
}

type Listener = (e: ApiEvent) => void;

/** What `followJob` calls for one job's events; each is optional. */
export interface JobHandlers {
  started?(e: EventOf<'job.started'>): void;
  progress?(event: EventOf<'job.progress'>['event']): void;
  /** A generation's streamed token. */
  token?(e: EventOf<'generate.token'>): void;
  /** The job ended with a result; nothing more is called. */
  done?(result: EventOf<'job.done'>['result']): void;
  /** The job failed (code `cancelled` once stopped); nothing more is called. */
  failed?(error: ApiError): void;
}

export class ApiClient {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: ApiRequestError) => void }
  >();
  private readonly listeners = new Set<Listener>();

  constructor(private readonly transport: Transport) {}

  invoke<K extends RequestName>(name: K, params: Params<K>): Promise<Result<K>> {
    const id = this.nextId++;
    return new Promise<Result<K>>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      try {
        this.transport.send({ id, type: 'invoke', name, params });
      } catch (err) {
        this.pending.delete(id);
        reject(new ApiRequestError(apiError('internal', `not sent: ${(err as Error).message}`)));
      }
    });
  }

  /** Calls `fn` for every event of one type; returns the unsubscribe function. */
  on<T extends ApiEventType>(type: T, fn: (e: EventOf<T>) => void): () => void {
    return this.onAny((e) => {
      if (e.type === type) fn(e as EventOf<T>);
    });
  }

  onAny(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /**
   * Follows one job's events until it ends (job.done or job.failed); returns the function that
   * stops following it sooner. `job` is its id, or the request that starts it: then the events
   * that arrive before its reply (Electron sends replies and events on separate channels) are
   * held and replayed, so none is lost; a request that fails follows nothing.
   */
  followJob(job: string | PromiseLike<JobRef>, h: JobHandlers): () => void {
    let id = typeof job === 'string' ? job : null;
    let ended = false;
    const early: ApiEvent[] = [];
    const handle = (e: ApiEvent) => {
      if (ended || !('jobId' in e) || e.jobId !== id) return;
      switch (e.type) {
        case 'job.started':
          return h.started?.(e);
        case 'job.progress':
          return h.progress?.(e.event);
        case 'generate.token':
          return h.token?.(e);
        case 'job.done':
          stop();
          return h.done?.(e.result);
        case 'job.failed':
          stop();
          return h.failed?.(e.error);
      }
    };
    const off = this.onAny((e) => (id === null ? early.push(e) : handle(e)));
    const stop = () => {
      ended = true;
      off();
    };
    if (typeof job !== 'string') {
      job.then(
        (r) => {
          id = r.jobId;
          for (const e of early.splice(0)) handle(e);
        },
        () => stop(),
      );
    }
    return stop;
  }

  /** Feed every message from the transport here (parsed JSON); malformed ones are dropped. */
  receive(raw: unknown): void {
    const r = replyMessageSchema.safeParse(raw);
    if (!r.success) return;
    const msg = r.data;
    if (msg.type === 'event') {
      for (const l of [...this.listeners]) l(msg.event);
      return;
    }
    const p = this.pending.get(Number(msg.id));
    if (!p) return;
    this.pending.delete(Number(msg.id));
    if (msg.type === 'result') p.resolve(msg.result);
    else p.reject(new ApiRequestError(msg.error));
  }

  /** The transport closed: every pending request fails. */
  disconnected(message = 'the connection to the engine closed'): void {
    for (const p of this.pending.values())
      p.reject(new ApiRequestError(apiError('internal', message)));
    this.pending.clear();
  }
}
