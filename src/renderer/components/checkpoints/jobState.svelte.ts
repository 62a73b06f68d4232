/** The state both checkpoint dialogs (export, import) keep of their job: progress, result, error. */
import type { CheckpointResult } from '../../../common/checkpoints';
import { api } from '../../lib/state.svelte';
import { watchJob } from './job';

export class CheckpointJob {
  jobId = $state<string | null>(null);
  fraction = $state(0);
  message = $state('');
  result = $state<CheckpointResult | null>(null);
  error = $state('');
  readonly busy = $derived(this.jobId !== null);
  private stop: (() => void) | null = null;

  /** Forgets the last job's outcome (the dialog opens again). */
  clear() {
    this.error = '';
    this.result = null;
    this.fraction = 0;
    this.message = '';
  }

  /**
   * Starts a job with `request` and follows it to its end; `cancelledText` is the error a
   * cancelled job shows.
   */
  async start(
    request: () => Promise<{ jobId: string }>,
    cancelledText: () => string,
    onDone?: (r: CheckpointResult) => void,
  ) {
    this.error = '';
    this.result = null;
    try {
      const ref = await request();
      this.jobId = ref.jobId;
      this.fraction = 0;
      this.message = '';
      this.stop = watchJob(ref.jobId, {
        onProgress: (f, m) => {
          this.fraction = f;
          this.message = m;
        },
        onDone: (r) => {
          this.result = r;
          this.jobId = null;
          onDone?.(r);
        },
        onFailed: (m, cancelled) => {
          this.error = cancelled ? cancelledText() : m;
          this.jobId = null;
        },
      });
    } catch (err) {
      this.error = (err as Error).message;
    }
  }

  async cancel() {
    if (this.jobId) await api.invoke('jobs.cancel', { jobId: this.jobId }).catch(() => {});
  }

  /** Stops following the job (the dialog closes). */
  unwatch() {
    this.stop?.();
  }
}
