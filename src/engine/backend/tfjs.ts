/** tfjs plumbing shared by the backend inits: optional imports, switching backends, the engine. */
import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { errorMessage } from './format';

type ImportResult =
  { ok: true; module: unknown } | { ok: false; status: 'not-installed' | 'failed'; detail: string };

/** Imports an optional package, telling "not installed" apart from "installed but threw". */
export async function importOptional(pkg: string): Promise<ImportResult> {
  // A variable specifier: these packages may be absent, and bundlers must leave them external.
  const specifier = pkg;
  try {
    return { ok: true, module: await import(specifier) };
  } catch (err) {
    const msg = errorMessage(err);
    const code = (err as { code?: unknown } | null)?.code;
    const missing =
      (code === 'ERR_MODULE_NOT_FOUND' ||
        code === 'MODULE_NOT_FOUND' ||
        /Cannot find (package|module)/.test(msg)) &&
      (msg.includes(`'${pkg}'`) || msg.includes(`"${pkg}"`));
    if (missing) return { ok: false, status: 'not-installed', detail: `${pkg} is not installed` };
    return {
      ok: false,
      status: 'failed',
      detail: `${pkg} is installed but failed to load: ${msg}`,
    };
  }
}

/** tf.setBackend returns false (after console.warn-ing why) instead of throwing; make it throw. */
export async function setBackendOrThrow(name: string): Promise<void> {
  const warnings: string[] = [];
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    warnings.push(args.map((a) => (a instanceof Error ? a.message : String(a))).join(' '));
  };
  let ok: boolean;
  try {
    ok = await tf.setBackend(name);
    if (ok) await tf.ready();
  } finally {
    console.warn = warn;
  }
  // Pass through unrelated warnings (e.g. tfjs platform notices).
  if (ok) for (const w of warnings) warn(w);
  if (!ok || safeGetBackend() !== name) {
    const why = warnings.filter((w) => !/^Initialization of backend .* failed$/.test(w));
    throw new Error(
      `tf.setBackend('${name}') failed${why.length ? `: ${why.join(' | ')}` : ''}`.slice(0, 2000),
    );
  }
}

/** After a failed explicit attempt, put back the backend that was active before (if any). */
export async function restoreBackend(before: string | undefined): Promise<void> {
  if (before === undefined || safeGetBackend() === before) return;
  try {
    await tf.setBackend(before);
  } catch {
    // best effort
  }
}

export function safeGetBackend(): string | undefined {
  // tf.getBackend() would initialise the highest-priority backend if none is set yet.
  const engine = tf.engine() as unknown as { backendName?: string | null };
  return engine.backendName ?? undefined;
}

/** The backend instance if it has been initialised already (never initialises one itself, unlike
 * tf.findBackend, which would start e.g. wasm before its paths are set). */
export function initializedBackend(name: string): tf.KernelBackend | undefined {
  const engine = tf.engine() as unknown as { registry?: Record<string, tf.KernelBackend> };
  return engine.registry?.[name];
}

export function availableThreads(): number {
  return typeof os.availableParallelism === 'function'
    ? os.availableParallelism()
    : Math.max(1, os.cpus().length);
}
