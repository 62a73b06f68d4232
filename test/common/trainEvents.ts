/** Engine train events for the contract's and the coalescer's tests. */
import type { TrainEvent } from '../../src/common/events';

/** The `step` event of step `n` (of 100, 10 ms apart). */
export const stepEvent = (n: number): TrainEvent => ({
  type: 'step',
  step: n,
  totalSteps: 100,
  trainLoss: 3,
  lr: 1e-3,
  gradNorm: 1,
  tokensPerSecond: 1000,
  elapsedMs: n * 10,
  etaMs: 0,
  memoryMB: 100,
});
