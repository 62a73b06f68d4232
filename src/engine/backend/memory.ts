/** How much tensor memory the selected backend can hold, for refusing a model up front. */
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
