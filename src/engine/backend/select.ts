/** The backend choice: walk the preference's order, keep the first that loads, and report it. */
import * as tf from '@tensorflow/tfjs-core';
import { tryCpu } from './cpu';
import { errorMessage } from './format';
import { notSelected, type Outcome } from './outcome';
import { tryTensorflow } from './tensorflow';
import { restoreBackend, safeGetBackend } from './tfjs';
import {
  AUTO_ORDER,
  BackendInitError,
  type BackendAttempt,
  type BackendName,
  type BackendPreference,
  type BackendReport,
  type InitBackendOptions,
} from './types';
import { tryWasm } from './wasm';
import { tryWebgpu } from './webgpu';

let current: { preference: BackendPreference; report: BackendReport } | undefined;
let queue: Promise<unknown> = Promise.resolve();

/** The report of the last successful `initBackend`, if any. */
export function getBackendReport(): BackendReport | undefined {
  return current?.report;
}

/**
 * Selects and initialises a tfjs backend. 'auto' walks AUTO_ORDER and takes the first that works;
 * an explicit name tries only that backend and throws a BackendInitError saying why it can't load.
 * Calling again with the same preference returns the cached report (while that backend is still
 * the active one); calls are serialised.
 */
export function initBackend(
  preference: BackendPreference = 'auto',
  opts: InitBackendOptions = {},
): Promise<BackendReport> {
  const run = queue.then(() => initBackendNow(preference, opts));
  queue = run.catch(() => undefined);
  return run;
}

async function initBackendNow(
  preference: BackendPreference,
  opts: InitBackendOptions,
): Promise<BackendReport> {
  if (
    current &&
    current.preference === preference &&
    safeGetBackend() === current.report.tfBackend
  ) {
    return current.report;
  }
  const log = opts.log ?? (() => {});
  const before = safeGetBackend();
  const auto = preference === 'auto';
  const order = auto ? AUTO_ORDER : [preference];
  const attempts: BackendAttempt[] = [];
  const shorts = new Map<BackendName, string>();

  for (const [index, name] of order.entries()) {
    const outcome = await tryBackend(name, auto);
    attempts.push(outcome.attempt);
    shorts.set(name, outcome.short);
    log(`backend ${name}: ${outcome.attempt.status} — ${outcome.attempt.detail}`);
    if (outcome.attempt.status === 'selected' && outcome.info) {
      const info = outcome.info;
      for (const later of order.slice(index + 1)) {
        attempts.push({
          name: later,
          status: 'not-tried',
          detail: `${name} was selected first`,
        });
      }
      const others = attempts
        .filter((a) => a.status !== 'selected' && a.status !== 'not-tried')
        .map((a) => `${a.name}: ${shorts.get(a.name) ?? a.status}`);
      const summary =
        `${name} (${info.features})` +
        (auto ? (others.length ? ` — ${others.join('; ')}` : '') : ' — explicit preference');
      const report: BackendReport = {
        name,
        tfBackend: tf.getBackend(),
        attempts,
        threads: info.threads,
        simd: info.simd,
        memoryLimitBytes: info.memoryLimitBytes,
        ...(info.maxTensorBytes !== undefined ? { maxTensorBytes: info.maxTensorBytes } : {}),
        device: info.device,
        notes: info.notes,
        summary,
      };
      current = { preference, report };
      log(`backend: ${summary}`);
      return report;
    }
    if (!auto) {
      await restoreBackend(before);
      throw new BackendInitError(outcome.attempt);
    }
  }
  // Unreachable in practice: cpu is pure JS and always loads.
  throw new Error(
    `no tfjs backend could be loaded: ${attempts.map((a) => `${a.name}: ${a.detail}`).join('; ')}`,
  );
}

async function tryBackend(name: BackendName, auto: boolean): Promise<Outcome> {
  try {
    switch (name) {
      case 'node-gpu':
        return await tryTensorflow('node-gpu');
      case 'node':
        return await tryTensorflow('node');
      case 'webgpu':
        return await tryWebgpu(auto);
      case 'wasm':
        return await tryWasm();
      case 'cpu':
        return await tryCpu();
    }
  } catch (err) {
    return notSelected(name, 'failed', errorMessage(err));
  }
}
