/**
 * An EngineHost in this process, driven as the server drives it: each request a message handled
 * on a later turn (as one from another process would be), events recorded, exits captured.
 */
import type {
  ApiError,
  ApiEvent,
  Params,
  ReplyMessage,
  RequestName,
  Result,
} from '../../src/common/api';
import { EngineHost, type HostOptions } from '../../src/server/host';

export class TestHost {
  readonly events: ApiEvent[] = [];
  readonly exits: number[] = [];
  private next = 1;
  private pending = new Map<number, (m: ReplyMessage) => void>();
  private waiters: Array<() => void> = [];
  readonly host: EngineHost;

  /**
   * `asMessages`: each request is handled on a later macrotask, as a message from another process
   * is, which a host busy in synchronous work would not get to (for responsiveness tests).
   */
  constructor(
    workspace: string,
    opts: Partial<HostOptions> = {},
    private readonly asMessages = false,
  ) {
    this.host = new EngineHost({
      workspace,
      backend: 'wasm',
      progressIntervalMs: 20,
      exit: (code) => this.exits.push(code),
      flush: () => Promise.resolve(),
      ...opts,
      send: (m) => {
        if (m.type === 'event') {
          this.events.push(m.event);
          for (const w of [...this.waiters]) w();
        } else this.pending.get(m.id as number)?.(m);
      },
    });
  }

  async call<K extends RequestName>(name: K, params: Params<K>): Promise<Result<K>> {
    const r = await this.raw(name, params);
    if (r.error) throw new Error(`${r.error.code}: ${r.error.message}`);
    return r.result as Result<K>;
  }

  raw(name: string, params: unknown): Promise<{ result?: unknown; error?: ApiError }> {
    const id = this.next++;
    return new Promise((resolve) => {
      this.pending.set(id, (m) => {
        this.pending.delete(id);
        resolve(
          m.type === 'result' ? { result: m.result } : { error: (m as { error: ApiError }).error },
        );
      });
      const handle = () => void this.host.handle({ id, type: 'invoke', name, params });
      if (this.asMessages) setImmediate(handle);
      else handle();
    });
  }

  waitFor<E extends ApiEvent>(pred: (e: ApiEvent) => e is E, ms?: number): Promise<E>;
  waitFor(pred: (e: ApiEvent) => boolean, ms?: number): Promise<ApiEvent>;
  waitFor(pred: (e: ApiEvent) => boolean, ms = 30_000): Promise<ApiEvent> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const hit = this.events.find(pred);
        if (!hit) return false;
        this.waiters = this.waiters.filter((w) => w !== check);
        clearTimeout(timer);
        resolve(hit);
        return true;
      };
      const timer = setTimeout(
        () => reject(new Error(`timed out waiting for an event: ${pred.toString()}`)),
        ms,
      );
      if (!check()) this.waiters.push(check);
    });
  }
}
