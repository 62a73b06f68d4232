/**
 * The engine host's handlers for the hub feature (src/common/hub.ts): the Get models page's list
 * and `hub.pull`, a cancellable job downloading into the shared Hugging Face cache. The host's
 * environment says where: HF_ENDPOINT, HF_TOKEN, HF_HOME (or HF_HUB_CACHE), HF_HUB_OFFLINE; a
 * request may name its own endpoint and token. A pulled model is in models.list at once (the
 * cache's GPT-2 snapshots are listed there, source 'hub').
 */
import { apiError, type ErrorCode } from '../../common/api';
import type { HubList } from '../../common/hub';
import { HostError, type HostContext, type Handlers } from '../context';

const REFUSAL_CODES: Record<string, ErrorCode> = {
  'not-found': 'not-found',
  'revision-not-found': 'not-found',
  'needs-token': 'forbidden',
  'token-refused': 'forbidden',
  offline: 'engine',
  corrupt: 'engine',
  'hub-error': 'engine',
};

/** A refusal as the API's error: its words, the code that fits. */
async function asApiError(err: unknown): Promise<unknown> {
  const { HubRefusal } = await import('../../engine/hub/refuse');
  if (!(err instanceof HubRefusal)) return err;
  return new HostError(apiError(REFUSAL_CODES[err.code] ?? 'bad-request', err.message));
}

export function hubHandlers(ctx: HostContext): Handlers {
  /** repo@revision being pulled now: a second pull of it would write the same partial file. */
  const pulling = new Set<string>();

  return {
    'hub.list': async (): Promise<HubList> => {
      const { hubCacheDir, hubEndpoint, hubOffline, hubToken } =
        await import('../../engine/hub/cache');
      const { hubCatalog } = await import('../../engine/hub/catalog');
      const cacheDir = hubCacheDir();
      return {
        endpoint: hubEndpoint(),
        cacheDir,
        tokenSet: (await hubToken()) !== undefined,
        offline: hubOffline(),
        models: await hubCatalog(cacheDir),
      };
    },

    'hub.pull': async (p) => {
      const { hubCacheDir, hubEndpoint, hubOffline, hubToken } =
        await import('../../engine/hub/cache');
      const { pullModel } = await import('../../engine/hub/pull');
      const revision = p.revision ?? 'main';
      const key = `${p.repo}@${revision}`;
      if (pulling.has(key)) {
        throw new HostError(apiError('busy', `params.repo: ${key} is being pulled already`));
      }
      const token = p.token ?? (await hubToken());
      pulling.add(key);
      try {
        return ctx.startJob('pull', { subject: key }, async (push, signal) => {
          try {
            const r = await pullModel({
              repo: p.repo,
              revision,
              endpoint: (p.endpoint ?? hubEndpoint()).replace(/\/+$/, ''),
              ...(token ? { token } : {}),
              cacheDir: hubCacheDir(),
              offline: hubOffline(),
              signal,
              onProgress: (e) => push({ type: 'hub.progress', ...e }),
            });
            return { type: 'hub.result', ...r };
          } catch (err) {
            throw await asApiError(err);
          } finally {
            pulling.delete(key);
          }
        });
      } catch (err) {
        pulling.delete(key);
        throw err;
      }
    },
  };
}
