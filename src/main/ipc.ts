/**
 * Main's request gate, free of Electron so it is unit-tested: every `api:invoke` from the renderer
 * is checked for its sender (the main window's webContents, its top frame, at the app's own page)
 * and validated against the contract's schemas before it is forwarded to the engine host.
 */
import { apiError, parseRequest, type ApiError } from '../common/api';
import type { BridgeReply } from '../common/bridge';

/** What main knows of an IPC message's sender (from `IpcMainInvokeEvent`). */
export interface SenderInfo {
  /** `event.sender.id` */
  webContentsId: number;
  /** `event.senderFrame?.url` (null when the frame is gone). */
  frameUrl: string | null;
  /** Whether the message came from the top frame (`event.senderFrame.parent === null`). */
  isMainFrame: boolean;
}

export interface TrustedRenderer {
  /** The main window's webContents id (null when there is no window). */
  webContentsId: number | null;
  /** Whether a URL is the app's own page (the dev server's origin, or the built index.html). */
  isAppUrl(url: string): boolean;
}

/** Why a sender is refused, or null when it is the app's own renderer. */
export function senderProblem(sender: SenderInfo, trusted: TrustedRenderer): string | null {
  if (trusted.webContentsId === null || sender.webContentsId !== trusted.webContentsId) {
    return 'the request did not come from the GPT Studio window';
  }
  if (!sender.isMainFrame) return 'the request came from a sub-frame';
  if (sender.frameUrl === null || !trusted.isAppUrl(sender.frameUrl)) {
    return "the request did not come from the app's own page";
  }
  return null;
}

/**
 * `isAppUrl` for the app's own page: one of `bases` (the packaged renderer's `app://gpt-studio/`,
 * or the dev server's `http://localhost:5173/`), compared by scheme and host. (URL.origin is
 * "null" for custom schemes, so it cannot be used for app://.)
 */
export function appUrlMatcher(bases: readonly string[]) {
  const allowed = bases.map((b) => new URL(b)).map((u) => `${u.protocol}//${u.host}`);
  return (url: string): boolean => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return false;
    }
    return u.host !== '' && allowed.includes(`${u.protocol}//${u.host}`);
  };
}

export type Forward = (name: string, params: unknown) => Promise<BridgeReply>;

/** The outcome of the gate: forwarded (with the host's reply) or refused with a typed error. */
export async function handleInvoke(
  sender: SenderInfo,
  trusted: TrustedRenderer,
  name: unknown,
  params: unknown,
  forward: Forward,
): Promise<BridgeReply> {
  const problem = senderProblem(sender, trusted);
  if (problem !== null) return refuse(apiError('bad-request', `refused: ${problem}`));
  if (typeof name !== 'string') return refuse(apiError('bad-request', 'the request has no name'));
  const parsed = parseRequest(name, params);
  if (!parsed.ok) return refuse(parsed.error);
  try {
    // the original params go on (the host parses them again and fills in defaults itself)
    return await forward(name, params ?? {});
  } catch (err) {
    return refuse(
      apiError('internal', `the engine host did not answer: ${(err as Error).message}`),
    );
  }
}

function refuse(error: ApiError): BridgeReply {
  return { type: 'error', error };
}
