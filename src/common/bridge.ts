/**
 * The preload bridge's shape: what the Electron preload exposes to the renderer as
 * `window.gptStudio` through contextBridge, and the channel names main and the preload both use
 * (one constant each, typed by its literal type, so both sides agree).
 *
 * `invoke` resolves to a reply (the wire reply without its id) rather than rejecting: an Error
 * crossing contextBridge keeps only its message, and the renderer needs the typed `ApiError` (its
 * code and details). The renderer feeds the reply to its `ApiClient`, as the WebSocket transport
 * does. Main validates every request (name and params) against the contract before the engine
 * host sees it, so `invoke` takes any name and params here.
 */
import type { ApiError, ApiEvent } from './api';

/** The name the bridge is exposed under: `window.gptStudio`. */
export type BridgeKey = 'gptStudio';
/** renderer → main: `ipcRenderer.invoke(InvokeChannel, name, params)` → `BridgeReply`. */
export type InvokeChannel = 'api:invoke';
/** main → renderer: every `ApiEvent`, including main's own notices (host restarts, settings reset). */
export type EventChannel = 'api:event';

export const BRIDGE_KEY: BridgeKey = 'gptStudio';
export const INVOKE_CHANNEL: InvokeChannel = 'api:invoke';
export const EVENT_CHANNEL: EventChannel = 'api:event';

export type BridgeReply = { type: 'result'; result: unknown } | { type: 'error'; error: ApiError };

export interface GptStudioBridge {
  /** One request of the contract (`RequestName` and its `Params`); never rejects. */
  invoke(name: string, params: unknown): Promise<BridgeReply>;
  /** Calls `listener` for every event; returns the unsubscribe function. */
  on(listener: (event: ApiEvent) => void): () => void;
  /**
   * The local path of a dropped or picked DOM `File` (Electron's webUtils.getPathForFile), so the
   * engine reads the file itself; '' when it has none.
   */
  pathForFile(file: unknown): string;
}
