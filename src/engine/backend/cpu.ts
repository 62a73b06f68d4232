/** cpu: @tensorflow/tfjs-backend-cpu, plain JavaScript kernels; always loads. */
import os from 'node:os';
import { selected, type Outcome } from './outcome';
import { setBackendOrThrow } from './tfjs';

export async function tryCpu(): Promise<Outcome> {
  await import('@tensorflow/tfjs-backend-cpu');
  await setBackendOrThrow('cpu');
  return selected('cpu', '@tensorflow/tfjs-backend-cpu (plain JavaScript)', {
    threads: 1,
    simd: false,
    memoryLimitBytes: Math.floor(os.totalmem() / 2),
    device: 'CPU (JavaScript)',
    notes: ['plain JS kernels: slowest backend, for tests and as the last resort'],
    features: 'plain JS, 1 thread',
  });
}
