/** The engine host's handlers for the console feature's requests (src/common/console.ts). */
import type { HostContext, Handlers } from '../context';

export function consoleHandlers(ctx: HostContext): Handlers {
  void ctx;
  return {};
}
