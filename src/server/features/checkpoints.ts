/** The engine host's handlers for the checkpoints feature's requests (src/common/checkpoints.ts). */
import type { HostContext, Handlers } from '../context';

export function checkpointHandlers(ctx: HostContext): Handlers {
  void ctx;
  return {};
}
