/**
 * The Get models page's state: the hub list, and the one pull it follows (kept here, not in the
 * page, so leaving the page and coming back still shows the download's progress).
 */
import type { HubList, HubProgress, HubResult } from '../../common/hub';
import type { ApiRequestError } from '../../common/client';
import { awaitJob } from './datasets-jobs';
import { api } from './state.svelte';

export const hub = $state({
  list: null as HubList | null,
  listError: '',
  pull: null as {
    jobId: string;
    repo: string;
    progress: HubProgress | null;
  } | null,
  result: null as HubResult | null,
  error: '',
  cancelled: false,
});

export async function loadHubList(): Promise<void> {
  try {
    hub.list = await api.invoke('hub.list', {});
    hub.listError = '';
  } catch (err) {
    hub.listError = (err as Error).message;
  }
}

/** Starts pulling `repo` (at `revision`) and follows the job to its end. */
export async function startPull(repo: string, revision?: string): Promise<void> {
  hub.error = '';
  hub.result = null;
  hub.cancelled = false;
  try {
    const { jobId } = await api.invoke('hub.pull', { repo, ...(revision ? { revision } : {}) });
    hub.pull = { jobId, repo, progress: null };
    const r = await awaitJob(jobId, (e) => {
      if (e.type === 'hub.progress' && hub.pull?.jobId === jobId) hub.pull.progress = e;
    });
    if ('type' in r && r.type === 'hub.result') hub.result = r;
  } catch (err) {
    const e = err as ApiRequestError;
    if (e.code === 'cancelled') hub.cancelled = true;
    else hub.error = e.message;
  } finally {
    hub.pull = null;
    void loadHubList();
  }
}

export async function cancelPull(): Promise<void> {
  if (hub.pull) await api.invoke('jobs.cancel', { jobId: hub.pull.jobId }).catch(() => {});
}
