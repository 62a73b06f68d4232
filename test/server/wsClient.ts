/** A contract client over a real `ws` WebSocket, for tests that drive the browser-mode server. */
import WebSocket from 'ws';
import type { ApiError, ApiEvent, Params, RequestName, Result } from '../../src/common/api';
import { ApiClient, ApiRequestError } from '../../src/common/client';

/** ApiClient over a `ws` socket, recording every event with its arrival time. */
export class Client {
  readonly api: ApiClient;
  readonly events: Array<{ at: number; event: ApiEvent }> = [];
  private listeners: Array<() => void> = [];

  constructor(readonly ws: WebSocket) {
    this.api = new ApiClient({ send: (m) => ws.send(JSON.stringify(m)) });
    ws.on('message', (d) => this.api.receive(JSON.parse(String(d))));
    ws.on('close', () => this.api.disconnected());
    this.api.onAny((event) => {
      this.events.push({ at: Date.now(), event });
      for (const l of this.listeners) l();
    });
  }

  static open(url: string, headers: Record<string, string> = {}): Promise<Client> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers });
      ws.once('open', () => resolve(new Client(ws)));
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      ws.once('error', reject);
    });
  }

  invoke<K extends RequestName>(name: K, params: Params<K>): Promise<Result<K>> {
    return this.api.invoke(name, params);
  }

  /** Sends a request, unchecked, and returns its result or typed error. */
  async raw(name: string, params: unknown): Promise<{ result?: unknown; error?: ApiError }> {
    try {
      return { result: await this.api.invoke(name as RequestName, params as never) };
    } catch (err) {
      if (err instanceof ApiRequestError) return { error: err.error };
      throw err;
    }
  }

  /** Resolves with the first event (from now on or already seen) that matches. */
  waitFor(pred: (e: ApiEvent) => boolean, timeoutMs = 30_000): Promise<ApiEvent> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const hit = this.events.find((x) => pred(x.event));
        if (hit) {
          this.listeners = this.listeners.filter((l) => l !== check);
          clearTimeout(timer);
          resolve(hit.event);
        }
      };
      const timer = setTimeout(
        () => reject(new Error('timed out waiting for an event')),
        timeoutMs,
      );
      this.listeners.push(check);
      check();
    });
  }

  jobEvents(jobId: string) {
    return this.events.filter((x) => 'jobId' in x.event && x.event.jobId === jobId);
  }
}

export const done = (jobId: string) => (e: ApiEvent) =>
  (e.type === 'job.done' || e.type === 'job.failed') && e.jobId === jobId;
