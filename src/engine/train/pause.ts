/**
 * Pause for a training loop: between steps the loop awaits `wait()` while paused. A stop (the
 * abort signal) also ends the wait, so a paused run can still be stopped and saved.
 */
export class PauseGate {
  private waiters: Array<() => void> = [];
  private pausedNow = false;

  get paused(): boolean {
    return this.pausedNow;
  }

  pause(): void {
    this.pausedNow = true;
  }

  resume(): void {
    this.pausedNow = false;
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves at once when not paused, else when resumed or when `signal` aborts. */
  wait(signal?: AbortSignal): Promise<void> {
    if (!this.pausedNow || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        signal?.removeEventListener('abort', done);
        this.waiters = this.waiters.filter((w) => w !== done);
        resolve();
      };
      this.waiters.push(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }
}
