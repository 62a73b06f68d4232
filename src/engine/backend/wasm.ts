/** wasm: @tensorflow/tfjs-backend-wasm (XNNPACK, SIMD), with its binaries found on disk. */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { gemmModule } from '../kernels/gemm';
import { installWasmKernels } from '../wasmKernels';
import { plural } from './format';
import { notSelected, selected, type Outcome } from './outcome';
import { initializedBackend, setBackendOrThrow } from './tfjs';

/** The wasm32 heap cap tfjs-backend-wasm is built with (memory growth up to 4 GiB). */
const WASM_HEAP_CAP = 4 * 1024 ** 3;

/** Optional env var: folder holding tfjs-backend-wasm's *.wasm files (for bundled builds). */
export const WASM_DIR_ENV = 'GPT_STUDIO_WASM_DIR';

export async function tryWasm(): Promise<Outcome> {
  const envDir = process.env[WASM_DIR_ENV];
  const mod = await import('@tensorflow/tfjs-backend-wasm');
  let restoreDirname = (): void => {};
  if (initializedBackend('wasm') === undefined) {
    // By default the emscripten glue loads the .wasm next to itself (`__dirname`), which breaks
    // once bundled. Point it at GPT_STUDIO_WASM_DIR, else the package's dist folder, else the
    // folder of this (possibly bundled) module — the first that holds the binaries.
    const candidates = envDir ? [envDir] : [defaultWasmDir(), moduleDir()];
    const dir = candidates.find(
      (d): d is string => !!d && WASM_FILES.every((f) => fs.existsSync(path.join(d, f))),
    );
    if (!dir) {
      const looked = candidates.filter((d): d is string => !!d);
      return notSelected(
        'wasm',
        'failed',
        `tfjs-backend-wasm's ${WASM_FILES.join(' / ')} not found` +
          (looked.length ? ` in ${looked.join(', ')}` : '') +
          (envDir
            ? ' (copy them there from @tensorflow/tfjs-backend-wasm/dist)'
            : `; set ${WASM_DIR_ENV} to a folder holding them`),
      );
    }
    mod.setWasmPaths(dir.endsWith('/') ? dir : dir + '/');
    restoreDirname = shimDirname(dir);
  }
  try {
    await setBackendOrThrow('wasm');
  } finally {
    restoreDirname();
  }
  installWasmKernels();
  const simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) === true;
  const multithread = (await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')) === true;
  let threads = 1;
  try {
    threads = mod.getThreadsCount();
  } catch {
    // older builds: not exposed
  }
  const notes = [
    multithread
      ? `wasm threads: ${threads}`
      : 'wasm threads: 1 — tfjs-backend-wasm disables multithreading in Node (tfjs#3830)',
  ];
  if (!simd) notes.push('no WASM SIMD support in this runtime: expect ~2-3x slower math');
  notes.push(
    gemmModule().build === 'fma'
      ? "matmul: GPT Studio's wasm SIMD kernel with fused multiply-add (relaxed SIMD)"
      : "matmul: GPT Studio's wasm SIMD kernel (no relaxed SIMD here: multiply, then add)",
  );
  return selected(
    'wasm',
    `@tensorflow/tfjs-backend-wasm${simd ? ' (SIMD)' : ''}${envDir ? ` from ${envDir}` : ''}`,
    {
      threads,
      simd,
      memoryLimitBytes: WASM_HEAP_CAP,
      device: 'CPU (wasm, XNNPACK)',
      notes,
      features: `${simd ? 'SIMD' : 'no SIMD'}, ${plural(threads, 'thread')}`,
    },
  );
}

/** The binaries Node can use (the threaded one is never picked in Node). */
const WASM_FILES = ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm'];

/** tfjs-backend-wasm's dist folder, resolved from this module (undefined when it can't be). */
function defaultWasmDir(): string | undefined {
  try {
    // main is dist/tf-backend-wasm.node.js; the .wasm files sit beside it.
    return path.dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm'));
  } catch {
    return undefined; // e.g. bundled to CommonJS, where import.meta.url is empty
  }
}

/** The folder of this module's file (of the bundle, once bundled). */
function moduleDir(): string | undefined {
  try {
    return path.dirname(fileURLToPath(import.meta.url));
  } catch {
    return typeof __dirname === 'string' ? __dirname : undefined;
  }
}

/**
 * The emscripten glue reads the free variable `__dirname` while it starts, which throws
 * ReferenceError when tfjs-backend-wasm is bundled into an ES module. Provide a global one for
 * the duration of the init if (and only if) none exists.
 */
function shimDirname(dir: string): () => void {
  const g = globalThis as { __dirname?: string };
  if (typeof g.__dirname === 'string') return () => {};
  g.__dirname = dir;
  return () => {
    delete g.__dirname;
  };
}
