/**
 * The preload (sandboxed, built as CommonJS): exposes exactly the contract to the renderer as
 * `window.gptStudio` — `invoke(name, params)` and `on(listener)`. Main validates every request
 * and its sender; nothing else of Electron or Node reaches the page.
 */
import { contextBridge, ipcRenderer, webUtils, type IpcRendererEvent } from 'electron';
import type { ApiEvent } from '../common/api';
import type {
  BridgeKey,
  BridgeReply,
  EventChannel,
  GptStudioBridge,
  InvokeChannel,
} from '../common/bridge';

const KEY: BridgeKey = 'gptStudio';
const INVOKE: InvokeChannel = 'api:invoke';
const EVENT: EventChannel = 'api:event';

const bridge: GptStudioBridge = {
  invoke(name: string, params: unknown): Promise<BridgeReply> {
    return ipcRenderer.invoke(INVOKE, String(name), params) as Promise<BridgeReply>;
  },
  on(listener: (event: ApiEvent) => void): () => void {
    // the renderer's function is wrapped: the IPC event object never reaches the page
    const handler = (_e: IpcRendererEvent, event: ApiEvent) => listener(event);
    ipcRenderer.on(EVENT, handler);
    return () => {
      ipcRenderer.removeListener(EVENT, handler);
    };
  },
  pathForFile(file: unknown): string {
    try {
      return webUtils.getPathForFile(file as File);
    } catch {
      return '';
    }
  },
};

contextBridge.exposeInMainWorld(KEY, bridge);
