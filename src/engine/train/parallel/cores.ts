/**
 * How many data-parallel training workers a run gets: the physical cores by default on the
 * backends that run one thread per process (wasm, cpu), one on those that thread themselves
 * (node, node-gpu, webgpu), never more than the rows of a batch.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { MAX_TRAIN_WORKERS as MAX_WORKERS } from '../../../common/defaults';

/** The backends whose training is spread over worker threads (the others thread themselves). */
const PARALLEL_BACKENDS = new Set(['wasm', 'cpu']);

let cached: number | undefined;

/**
 * The physical cores this process may use: distinct (package, core) pairs of /proc/cpuinfo on
 * Linux, hw.physicalcpu on macOS, the logical CPUs elsewhere; never more than the CPUs the process
 * is allowed to run on.
 */
export function physicalCores(): number {
  if (cached !== undefined) return cached;
  const logical =
    typeof os.availableParallelism === 'function'
      ? os.availableParallelism()
      : Math.max(1, os.cpus().length);
  cached = Math.max(1, Math.min(logical, countPhysical() ?? logical));
  return cached;
}

function countPhysical(): number | undefined {
  try {
    if (process.platform === 'linux') return coresOfCpuinfo(readFileSync('/proc/cpuinfo', 'utf8'));
    if (process.platform === 'darwin') {
      const n = Number(execFileSync('sysctl', ['-n', 'hw.physicalcpu'], { encoding: 'utf8' }));
      return Number.isInteger(n) && n > 0 ? n : undefined;
    }
  } catch {
    // unreadable: the logical count stands
  }
  return undefined;
}

/** Distinct (physical id, core id) pairs; undefined when the file does not list them. */
export function coresOfCpuinfo(text: string): number | undefined {
  const cores = new Set<string>();
  for (const block of text.split(/\n\s*\n/)) {
    const pkg = /^physical id\s*:\s*(\d+)/m.exec(block)?.[1];
    const core = /^core id\s*:\s*(\d+)/m.exec(block)?.[1];
    if (pkg !== undefined && core !== undefined) cores.add(`${pkg}:${core}`);
  }
  return cores.size > 0 ? cores.size : undefined;
}

/** True when training on this backend can be spread over worker threads. */
export function backendRunsWorkers(backend: string): boolean {
  return PARALLEL_BACKENDS.has(backend);
}

/** The default worker count on this backend: the physical cores for wasm and cpu, else 1. */
export function defaultWorkers(backend: string): number {
  return backendRunsWorkers(backend) ? physicalCores() : 1;
}

/**
 * The workers a run gets: the ones asked for (undefined: 1), 1 on a backend that threads itself,
 * at most one per row of the batch. `note` says why it differs from the request.
 */
export function resolveWorkers(
  requested: number | undefined,
  backend: string,
  rows: number,
): { workers: number; note?: string } {
  const asked = requested ?? 1;
  if (!Number.isInteger(asked) || asked < 1 || asked > MAX_WORKERS) {
    throw new Error(`workers must be a whole number from 1 to ${MAX_WORKERS}, got ${asked}`);
  }
  if (asked === 1) return { workers: 1 };
  if (!backendRunsWorkers(backend)) {
    return {
      workers: 1,
      note: `the ${backend} backend threads itself: training runs on 1 worker, not ${asked}`,
    };
  }
  if (asked > rows) {
    return {
      workers: rows,
      note: `a batch of ${rows} row${rows === 1 ? '' : 's'} feeds at most ${rows} worker${rows === 1 ? '' : 's'}, not ${asked}`,
    };
  }
  return { workers: asked };
}
