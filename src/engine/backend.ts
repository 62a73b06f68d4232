/**
 * TensorFlow.js backend selection for the engine.
 *
 * tfjs backends are process-global: whichever `initBackend` selects is what every tensor op in
 * this process runs on afterwards. Auto order (best first):
 *
 *   node-gpu (TensorFlow C + CUDA) → webgpu (hardware GPU adapter via Dawn) → node (TensorFlow C
 *   on the CPU) → wasm (XNNPACK, SIMD) → cpu (plain JS)
 *
 * `@tensorflow/tfjs-node` / `-node-gpu` are optional dependencies and are often absent; `webgpu`
 * (Dawn's Node binding) needs a Vulkan/Metal/D3D12 adapter. See docs/backends.md.
 *
 * Engine code must read tensors with `await t.data()` / `await t.array()`: the webgpu backend
 * cannot read synchronously in Node (`dataSync()` throws there).
 */
import os from 'node:os';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { installWasmKernels } from './wasmKernels';

export type BackendName = 'node-gpu' | 'webgpu' | 'node' | 'wasm' | 'cpu';
export type BackendPreference = BackendName | 'auto';

export type AttemptStatus = 'selected' | 'not-installed' | 'no-adapter' | 'failed' | 'not-tried';

export interface BackendAttempt {
  name: BackendName;
  status: AttemptStatus;
  /** Why: the error message, the adapter that was skipped, or what was selected. */
  detail: string;
}

export interface BackendReport {
  name: BackendName;
  /** `tf.getBackend()` after selection: 'tensorflow' | 'webgpu' | 'wasm' | 'cpu'. */
  tfBackend: string;
  /** Auto mode: every backend in order (those after the selected one are 'not-tried').
   * Explicit preference: just that one. */
  attempts: BackendAttempt[];
  /** CPU threads doing the math: 1 for wasm in Node (upstream disables wasm threads there) and
   * for cpu; the TensorFlow intra-op pool size for node; 1 (the JS thread) for GPU backends. */
  threads: number;
  /** WASM SIMD in use (wasm only; false for the other backends). */
  simd: boolean;
  /** Rough memory budget for tensors, in bytes. wasm: the 4 GiB wasm32 heap cap; cpu: half of
   * system RAM; node: system RAM; webgpu: the device's maxBufferSize (WebGPU exposes no total);
   * node-gpu: 0 = unknown (tfjs-node-gpu does not expose GPU memory). */
  memoryLimitBytes: number;
  /** webgpu only: the largest single tensor (bytes) a kernel can bind — the device's
   * maxStorageBufferBindingSize, 128 MiB on lavapipe. Larger tensors make Dawn reject the bind
   * group, and tfjs then returns stale data instead of throwing, so the engine must stay below. */
  maxTensorBytes?: number;
  /** What runs the math, in words: the GPU adapter, "CPU (TensorFlow C)", "CPU (wasm)". */
  device: string;
  /** Caveats worth showing to a user (e.g. why threads = 1, per-tensor size caps). */
  notes: string[];
  /** One human line, e.g. "wasm (SIMD, 1 thread) — node-gpu: not installed; webgpu: no GPU adapter". */
  summary: string;
}

export interface InitBackendOptions {
  log?: (msg: string) => void;
}

/** Thrown by an explicit preference that cannot be satisfied. */
export class BackendInitError extends Error {
  readonly attempt: BackendAttempt;
  constructor(attempt: BackendAttempt) {
    super(`backend '${attempt.name}' ${STATUS_WORDS[attempt.status]}: ${attempt.detail}`);
    this.name = 'BackendInitError';
    this.attempt = attempt;
  }
}

export const AUTO_ORDER: readonly BackendName[] = ['node-gpu', 'webgpu', 'node', 'wasm', 'cpu'];

/** The wasm32 heap cap tfjs-backend-wasm is built with (memory growth up to 4 GiB). */
const WASM_HEAP_CAP = 4 * 1024 ** 3;

/** Optional env var: folder holding tfjs-backend-wasm's *.wasm files (for bundled builds). */
export const WASM_DIR_ENV = 'GPT_STUDIO_WASM_DIR';

const STATUS_WORDS: Record<AttemptStatus, string> = {
  selected: 'selected',
  'not-installed': 'is not installed',
  'no-adapter': 'has no usable device',
  failed: 'failed to load',
  'not-tried': 'was not tried',
};

const PACKAGES: Record<'node-gpu' | 'node', string> = {
  'node-gpu': '@tensorflow/tfjs-node-gpu',
  node: '@tensorflow/tfjs-node',
};

let current: { preference: BackendPreference; report: BackendReport } | undefined;
let queue: Promise<unknown> = Promise.resolve();
/** Which tfjs-node flavour has been imported into this process (they both register 'tensorflow'). */
let tensorflowPackage: string | undefined;

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

/**
 * The tensor memory the selected backend can give in all, for refusing a model before anything
 * is allocated (config.json's sizes): the wasm heap cap, half the RAM for cpu, the RAM for node.
 * webgpu's memoryLimitBytes is a per-buffer limit and node-gpu's is unknown, so for them (and
 * before any backend is selected) this is undefined, and the machine's RAM stands in.
 */
export function backendMemoryBudget(
  report: BackendReport | undefined = current?.report,
): { bytes: number; holder: string } | undefined {
  if (!report || report.name === 'webgpu' || report.name === 'node-gpu') return undefined;
  if (report.memoryLimitBytes <= 0) return undefined;
  return { bytes: report.memoryLimitBytes, holder: `the ${report.name} backend` };
}

interface SelectedInfo {
  threads: number;
  simd: boolean;
  memoryLimitBytes: number;
  maxTensorBytes?: number;
  device: string;
  notes: string[];
  /** For the summary, e.g. "SIMD, 1 thread". */
  features: string;
}

interface Outcome {
  attempt: BackendAttempt;
  /** A few words for the summary line. */
  short: string;
  info?: SelectedInfo;
}

function selected(name: BackendName, detail: string, info: SelectedInfo): Outcome {
  return { attempt: { name, status: 'selected', detail }, short: 'selected', info };
}

function notSelected(
  name: BackendName,
  status: Exclude<AttemptStatus, 'selected'>,
  detail: string,
  short?: string,
): Outcome {
  const words =
    short ??
    (status === 'not-installed'
      ? 'not installed'
      : status === 'failed'
        ? `failed (${firstLine(detail, 80)})`
        : status);
  return { attempt: { name, status, detail: clip(detail, 600) }, short: words };
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

// ---------------------------------------------------------------------------------------------
// node-gpu / node: @tensorflow/tfjs-node(-gpu), the TensorFlow C library.

async function tryTensorflow(name: 'node-gpu' | 'node'): Promise<Outcome> {
  const pkg = PACKAGES[name];
  let using = tensorflowPackage;
  if (using === undefined || (name === 'node-gpu' && using !== pkg)) {
    // Importing either package registers the 'tensorflow' backend and switches to it.
    const imported = await importOptional(pkg);
    if (!imported.ok) return notSelected(name, imported.status, imported.detail);
    tensorflowPackage = using = pkg;
  }
  if (tf.findBackendFactory('tensorflow') == null) {
    return notSelected(
      name,
      'failed',
      `${using} loaded but registered no 'tensorflow' backend on this @tensorflow/tfjs-core ` +
        `(${tf.version_core}); its tfjs-core copy differs — align the versions`,
    );
  }
  await setBackendOrThrow('tensorflow');
  const backend = tf.backend() as { isUsingGpuDevice?: boolean; isGPUPackage?: boolean };
  const onGpu = backend.isUsingGpuDevice === true;
  const threads = availableThreads();
  if (name === 'node-gpu') {
    if (!onGpu) {
      return notSelected(
        name,
        'no-adapter',
        `${pkg} loaded, but TensorFlow found no CUDA GPU and would run on the CPU ` +
          '(check the NVIDIA driver and the CUDA/cuDNN versions libtensorflow needs)',
        'no CUDA GPU (TensorFlow fell back to CPU)',
      );
    }
    return selected(name, `${pkg}: TensorFlow C on a CUDA GPU`, {
      threads,
      simd: false,
      memoryLimitBytes: 0,
      device: 'CUDA GPU (TensorFlow C)',
      notes: ['GPU memory size is not exposed by tfjs-node-gpu (memoryLimitBytes = 0: unknown)'],
      features: 'CUDA',
    });
  }
  const via = using === pkg ? pkg : `${using} (its CPU TensorFlow; ${pkg} itself not loaded)`;
  return selected(name, `${via}: TensorFlow C on the CPU`, {
    threads,
    simd: false,
    memoryLimitBytes: os.totalmem(),
    device: onGpu ? 'CUDA GPU (TensorFlow C)' : 'CPU (TensorFlow C)',
    notes: [],
    features: `TensorFlow C, ${plural(threads, 'thread')}`,
  });
}

// ---------------------------------------------------------------------------------------------
// webgpu: Dawn's Node binding (npm `webgpu`) + @tensorflow/tfjs-backend-webgpu.

interface AdapterLike {
  info?: Partial<Record<'vendor' | 'architecture' | 'device' | 'description', string>> & {
    isFallbackAdapter?: boolean;
  };
  isFallbackAdapter?: boolean;
  limits: { maxBufferSize: number; maxStorageBufferBindingSize: number };
}

interface GpuLike {
  requestAdapter(options?: {
    powerPreference?: 'low-power' | 'high-performance';
  }): Promise<AdapterLike | null>;
}

async function tryWebgpu(auto: boolean): Promise<Outcome> {
  if (initializedBackend('webgpu') === undefined) {
    const gpu = await installNavigatorGpu();
    if (!gpu.ok) return notSelected('webgpu', gpu.status, gpu.detail);
    const adapter = await gpu.gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (adapter == null) {
      uninstallNavigatorGpu();
      return notSelected(
        'webgpu',
        'no-adapter',
        'no WebGPU adapter (Dawn found no Vulkan/Metal/D3D12 device; on Linux it needs libvulkan1 ' +
          'and a Vulkan driver — scripts/install-webgpu-deps.sh installs Mesa lavapipe)',
        'no GPU adapter',
      );
    }
    const software = softwareAdapter(adapter);
    if (software && auto) {
      uninstallNavigatorGpu();
      return notSelected(
        'webgpu',
        'no-adapter',
        `only a software (CPU) Vulkan adapter: ${software} — not used automatically (slower than ` +
          "wasm); ask for 'webgpu' explicitly to use it",
        `software adapter only (${adapterShortName(software)})`,
      );
    }
    if (tf.findBackendFactory('webgpu') == null) {
      // Registers 'webgpu' only when navigator.gpu exists, which installNavigatorGpu ensured.
      await import('@tensorflow/tfjs-backend-webgpu');
    }
    if (tf.findBackendFactory('webgpu') == null) {
      return notSelected(
        'webgpu',
        'failed',
        '@tensorflow/tfjs-backend-webgpu registered no backend',
      );
    }
  }
  await setBackendOrThrow('webgpu');
  const backend = tf.backend() as {
    device?: { limits?: { maxBufferSize?: number; maxStorageBufferBindingSize?: number } };
  };
  const limits = backend.device?.limits ?? {};
  const adapter = await currentAdapterDescription();
  const software = adapter.software;
  const maxBinding = limits.maxStorageBufferBindingSize ?? 0;
  const notes = [
    'reads must be async (await t.data()); dataSync()/arraySync() throw in Node',
    `largest tensor a kernel can bind: ${formatBytes(maxBinding)} (maxStorageBufferBindingSize); ` +
      'bigger ones fail validation and read back stale data',
  ];
  if (software) notes.push(`software adapter (${software}): runs on the CPU, slower than wasm`);
  return selected('webgpu', `${adapter.text}${software ? ' (software adapter)' : ''}`, {
    threads: 1,
    simd: false,
    memoryLimitBytes: limits.maxBufferSize ?? 0,
    maxTensorBytes: maxBinding,
    device: adapter.text,
    notes,
    features: software
      ? `software adapter: ${adapterShortName(software)}`
      : adapterShortName(adapter.text),
  });
}

let adapterText: { text: string; software: string | undefined } | undefined;

async function currentAdapterDescription(): Promise<{
  text: string;
  software: string | undefined;
}> {
  if (adapterText) return adapterText;
  const gpu = (globalThis as { navigator?: { gpu?: GpuLike } }).navigator?.gpu;
  const adapter = gpu ? await gpu.requestAdapter({ powerPreference: 'high-performance' }) : null;
  const info = adapter?.info ?? {};
  const text =
    [info.description, info.vendor, info.device].find((s) => s && s.trim())?.trim() ??
    'WebGPU adapter';
  adapterText = { text, software: adapter ? softwareAdapter(adapter) : undefined };
  return adapterText;
}

/** "llvmpipe: Mesa 25.0.7 (LLVM 15.0.6)" → "llvmpipe"; "NVIDIA GeForce RTX 4090" stays. */
function adapterShortName(description: string): string {
  const head = description.split(/[:(]/)[0]?.trim() ?? '';
  return firstLine(head || description, 48);
}

/** The adapter's name when it is a software rasteriser (lavapipe/llvmpipe, SwiftShader, WARP). */
function softwareAdapter(adapter: AdapterLike): string | undefined {
  const info = adapter.info ?? {};
  const text = [info.description, info.device, info.vendor, info.architecture]
    .filter((s): s is string => typeof s === 'string' && s.length > 0)
    .join(' ');
  const fallback = info.isFallbackAdapter === true || adapter.isFallbackAdapter === true;
  if (
    fallback ||
    /llvmpipe|lavapipe|swiftshader|softpipe|microsoft basic render|\bsoftware\b/i.test(text)
  ) {
    return (info.description || info.device || text || 'fallback adapter').trim();
  }
  return undefined;
}

let createdGpu: object | undefined;

async function installNavigatorGpu(): Promise<
  { ok: true; gpu: GpuLike } | { ok: false; status: 'not-installed' | 'failed'; detail: string }
> {
  const g = globalThis as { navigator?: { gpu?: GpuLike } };
  if (g.navigator?.gpu) return { ok: true, gpu: g.navigator.gpu };
  const imported = await importOptional('webgpu');
  if (!imported.ok) return imported;
  const mod = imported.module as { create: (opts: string[]) => GpuLike; globals: object };
  // GPUBufferUsage, GPUMapMode, GPUShaderStage… are used as globals by tfjs-backend-webgpu.
  Object.assign(globalThis, mod.globals);
  const gpu = mod.create([]);
  if (g.navigator === undefined) {
    // Node 20 has no navigator; Node 21+ has one we can extend.
    Object.defineProperty(globalThis, 'navigator', {
      value: {},
      writable: true,
      configurable: true,
      enumerable: false,
    });
  }
  Object.defineProperty(g.navigator, 'gpu', { value: gpu, writable: true, configurable: true });
  createdGpu = gpu;
  return { ok: true, gpu };
}

/** Drops the Dawn instance we created, so it does not keep the process alive. */
function uninstallNavigatorGpu(): void {
  const nav = (globalThis as { navigator?: { gpu?: unknown } }).navigator;
  if (nav && createdGpu && nav.gpu === createdGpu) delete nav.gpu;
  createdGpu = undefined;
}

// ---------------------------------------------------------------------------------------------
// wasm / cpu.

async function tryWasm(): Promise<Outcome> {
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

async function tryCpu(): Promise<Outcome> {
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

// ---------------------------------------------------------------------------------------------
// helpers

type ImportResult =
  { ok: true; module: unknown } | { ok: false; status: 'not-installed' | 'failed'; detail: string };

/** Imports an optional package, telling "not installed" apart from "installed but threw". */
async function importOptional(pkg: string): Promise<ImportResult> {
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
async function setBackendOrThrow(name: string): Promise<void> {
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
async function restoreBackend(before: string | undefined): Promise<void> {
  if (before === undefined || safeGetBackend() === before) return;
  try {
    await tf.setBackend(before);
  } catch {
    // best effort
  }
}

function safeGetBackend(): string | undefined {
  // tf.getBackend() would initialise the highest-priority backend if none is set yet.
  const engine = tf.engine() as unknown as { backendName?: string | null };
  return engine.backendName ?? undefined;
}

/** The backend instance if it has been initialised already (never initialises one itself, unlike
 * tf.findBackend, which would start e.g. wasm before its paths are set). */
function initializedBackend(name: string): tf.KernelBackend | undefined {
  const engine = tf.engine() as unknown as { registry?: Record<string, tf.KernelBackend> };
  return engine.registry?.[name];
}

function availableThreads(): number {
  return typeof os.availableParallelism === 'function'
    ? os.availableParallelism()
    : Math.max(1, os.cpus().length);
}

function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (err && typeof err === 'object' && 'message' in err) return String(err.message);
  return String(err);
}

function firstLine(s: string, max: number): string {
  const line = s.split('\n')[0] ?? '';
  return line.length > max ? line.slice(0, max - 1) + '…' : line;
}

function clip(s: string, max: number): string {
  return s.length > max ? s.slice(0, max - 1) + '…' : s;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function formatBytes(n: number): string {
  if (n <= 0) return 'unknown';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 10 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}
