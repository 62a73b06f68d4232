/**
 * The engine host as main sees it: Electron's `utilityProcess.fork` of src/server/hostMain.ts,
 * driven by the HostProcess shared with browser mode (src/common/hostProcess.ts: replies, events,
 * restart after a crash). This file adapts a utility process to it, free of Electron (the process
 * is injected), so main's use of it is unit-tested.
 */
import { SHUTDOWN_MESSAGE, type HostChild } from '../common/hostProcess';

export { HostProcess, type HostChild, type HostProcessOptions } from '../common/hostProcess';

/** The part of Electron's `UtilityProcess` used here. */
export interface UtilityChild {
  readonly pid: number | undefined;
  postMessage(msg: unknown): void;
  on(event: 'message', fn: (msg: unknown) => void): unknown;
  on(event: 'exit', fn: (code: number) => void): unknown;
  kill(): boolean;
}

/**
 * A utility process as the host's child: requests are posted to it, and asked to stop it gets
 * the `shutdown` message (it stops its jobs, training saves a checkpoint, then it exits).
 */
export function utilityHostChild(child: UtilityChild): HostChild {
  return {
    get pid() {
      return child.pid;
    },
    postMessage: (msg) => child.postMessage(msg),
    on: (event: 'message' | 'exit', fn: (x: never) => void) =>
      event === 'message'
        ? child.on('message', (m: unknown) => (fn as (m: unknown) => void)(m))
        : child.on('exit', (code: number) => (fn as (c: number) => void)(code)),
    stop: () => child.postMessage(SHUTDOWN_MESSAGE),
    kill: () => void child.kill(),
  };
}
