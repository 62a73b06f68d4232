/**
 * The preload (sandboxed, built as CommonJS): exposes exactly the contract to the renderer as
 * `window.gptStudio` — `invoke(name, params)` and `on(listener)`. Main validates every request
 * and its sender; nothing else of Electron or Node reaches the page.
 */
import { contextBridge, ipcRenderer, webUtils, type IpcRendererEvent } from 'electron';
import type { ApiEvent } from '../common/api';
import {
  BRIDGE_KEY as KEY,
  EVENT_CHANNEL as EVENT,
  INVOKE_CHANNEL as INVOKE,
  type BridgeReply,
  type GptStudioBridge,
} from '../common/bridge';

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
