/**
 * The renderer's one transport module: an ApiClient over the Electron preload bridge when it is
 * present (`window.gptStudio`), otherwise over a WebSocket to this page's server at
 * `/api?token=…` (browser mode). Everything else in the renderer is the same in both modes.
 */
import { apiError, isApiError, type InvokeMessage } from '../../common/api';
import type { GptStudioBridge } from '../../common/bridge';
import { ApiClient } from '../../common/client';

declare global {
  interface Window {
    gptStudio?: GptStudioBridge;
  }
}

export type ConnectionState = 'connecting' | 'open' | 'closed';

export interface Connection {
  client: ApiClient;
  mode: 'electron' | 'browser';
  /** Calls `fn` with the connection state now and whenever it changes. */
  onState(fn: (s: ConnectionState) => void): () => void;
}

function overBridge(bridge: GptStudioBridge): Connection {
  const client: ApiClient = new ApiClient({
    send(msg: InvokeMessage) {
      bridge.invoke(msg.name, msg.params ?? {}).then(
        (reply) => client.receive({ id: msg.id, ...reply }),
        (err: unknown) =>
          client.receive({
            id: msg.id,
            type: 'error',
            error: isApiError(err) ? err : apiError('internal', String((err as Error)?.message)),
          }),
      );
    },
  });
  bridge.on((event) => client.receive({ type: 'event', event }));
  return { client, mode: 'electron', onState: (fn) => (fn('open'), () => {}) };
}

const TOKEN_KEY = 'gpt-studio.token';

/**
 * The browser-mode token: taken from the address bar once, kept for this tab (sessionStorage, so
 * a reload still connects) and removed from the address bar and the history entry, so it is not
 * left in the browser's history or shown over the user's shoulder.
 */
export function takeToken(): string {
  const params = new URLSearchParams(location.search);
  const fromUrl = params.get('token');
  if (fromUrl !== null) {
    try {
      sessionStorage.setItem(TOKEN_KEY, fromUrl);
    } catch {
      // storage refused: the token still works for this page's life
    }
    params.delete('token');
    const rest = params.toString();
    history.replaceState(
      history.state,
      '',
      `${location.pathname}${rest ? `?${rest}` : ''}${location.hash}`,
    );
    return fromUrl;
  }
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? '';
  } catch {
    return '';
  }
}

function overWebSocket(): Connection {
  const token = takeToken();
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const url = `${proto}//${location.host}/api?token=${encodeURIComponent(token)}`;
  const listeners = new Set<(s: ConnectionState) => void>();
  let state: ConnectionState = 'connecting';
  let ws: WebSocket;
  let queue: string[] = [];
  let retryMs = 500;
  const setState = (s: ConnectionState) => {
    state = s;
    for (const l of listeners) l(s);
  };

  const client = new ApiClient({
    send(msg) {
      const text = JSON.stringify(msg);
      if (ws.readyState === WebSocket.OPEN) ws.send(text);
      else if (state === 'connecting') queue.push(text);
      else throw new Error('not connected to the engine');
    },
  });

  const open = () => {
    ws = new WebSocket(url);
    ws.onopen = () => {
      retryMs = 500;
      for (const m of queue) ws.send(m);
      queue = [];
      setState('open');
    };
    ws.onmessage = (e) => {
      try {
        client.receive(JSON.parse(String(e.data)));
      } catch {
        // not JSON: ignored
      }
    };
    ws.onclose = () => {
      queue = [];
      client.disconnected();
      setState('closed');
      setTimeout(() => {
        setState('connecting');
        open();
      }, retryMs);
      // a restarted server serves the same address (its workspace keeps the port and token): the
      // page tries again every few seconds at most, so it is back soon after the server is
      retryMs = Math.min(3_000, retryMs * 2);
    };
  };
  open();
  return {
    client,
    mode: 'browser',
    onState(fn) {
      listeners.add(fn);
      fn(state);
      return () => listeners.delete(fn);
    },
  };
}

export function connect(): Connection {
  return window.gptStudio ? overBridge(window.gptStudio) : overWebSocket();
}
