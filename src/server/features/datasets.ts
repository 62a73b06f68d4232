/** The engine host's handlers for the datasets feature's requests (src/common/datasets.ts). */
import type { HostContext, Handlers } from '../context';

export function datasetHandlers(ctx: HostContext): Handlers {
  void ctx;
  return {};
}
