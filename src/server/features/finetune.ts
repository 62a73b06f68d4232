/** The engine host's handlers for the finetune feature's requests (src/common/finetune.ts). */
import type { HostContext, Handlers } from '../context';

export function finetuneHandlers(ctx: HostContext): Handlers {
  void ctx;
  return {};
}
