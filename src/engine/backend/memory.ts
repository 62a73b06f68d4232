/**
 * How much tensor memory the selected backend can hold, and the largest tensor it can bind, for
 * refusing a model or a batch up front.
 */
import { getBackendReport } from './select';
import type { BackendReport } from './types';

/**
 * The tensor memory the selected backend can give in all, for refusing a model before anything
 * is allocated (config.json's sizes): the wasm heap cap, half the RAM for cpu, the RAM for node.
 * webgpu's memoryLimitBytes is a per-buffer limit and node-gpu's is unknown, so for them (and
 * before any backend is selected) this is undefined, and the machine's RAM stands in.
 */
export function backendMemoryBudget(
  report: BackendReport | undefined = getBackendReport(),
): { bytes: number; holder: string } | undefined {
  if (!report || report.name === 'webgpu' || report.name === 'node-gpu') return undefined;
  if (report.memoryLimitBytes <= 0) return undefined;
  return { bytes: report.memoryLimitBytes, holder: `the ${report.name} backend` };
}

/**
 * Refuses a tensor larger than the backend can bind (webgpu: the adapter's storage-buffer limit,
 * 128 MiB on some adapters), where it would otherwise compute garbage without an error.
 */
export function checkTensorSize(shape: number[], what: string): void {
  const limit = getBackendReport()?.maxTensorBytes;
  if (!limit) return;
  const bytes = shape.reduce((a, b) => a * b, 4);
  if (bytes > limit) {
    throw new Error(
      `${what} [${shape.join(', ')}] need ${(bytes / 2 ** 20).toFixed(0)} MiB, too large for the ` +
        `${getBackendReport()?.name} backend's largest tensor (${(limit / 2 ** 20).toFixed(0)} MiB). ` +
        `Use a smaller --batch-size or --block-size.`,
    );
  }
}
