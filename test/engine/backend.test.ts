/**
 * Backend selection. tfjs backends are process-global, so this file (a fresh vitest fork) owns the
 * auto selection, and anything needing another fresh process runs in a child `node --import tsx`.
 */
import { execFile } from 'node:child_process';
import {
  copyFileSync,
  cpSync,
  mkdtempSync,
  mkdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import {
  AUTO_ORDER,
  BackendInitError,
  getBackendReport,
  initBackend,
  type BackendReport,
} from '../../src/engine/backend';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BACKEND_TS = path.join(ROOT, 'src/engine/backend/index.ts');
const require_ = createRequire(import.meta.url);
/** The child scripts live in a temp dir, so they import tfjs-core by absolute path. */
const TFJS_CORE = require_.resolve('@tensorflow/tfjs-core');

function installed(pkg: string): boolean {
  try {
    require_.resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

/** What kind of WebGPU adapter this machine has, probed without touching tfjs. */
async function probeAdapter(): Promise<'hardware' | 'software' | 'none'> {
  try {
    const { create } = await import('webgpu');
    const adapter = await create([]).requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) return 'none';
    const info = adapter.info;
    const text = `${info.description} ${info.device} ${info.architecture}`;
    return info.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader|software/i.test(text)
      ? 'software'
      : 'hardware';
  } catch {
    return 'none';
  }
}

interface ChildResult {
  report?: BackendReport;
  error?: { name: string; message: string };
  stderr: string;
}

/** Runs initBackend(preference) in a fresh Node process and returns its report or error. */
function initInChild(
  preference: string,
  opts: { backendTs?: string; cwd?: string; env?: Record<string, string> } = {},
): Promise<ChildResult> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gpt-studio-backend-child-'));
  const script = path.join(dir, 'child.mts');
  writeFileSync(
    script,
    `import { initBackend } from ${JSON.stringify(opts.backendTs ?? BACKEND_TS)};
import * as tf from ${JSON.stringify(TFJS_CORE)};
try {
  const report = await initBackend(${JSON.stringify(preference)});
  if (report.tfBackend !== 'tensorflow') {
    const y = await tf.matMul(tf.tensor2d([[1, 2]]), tf.tensor2d([[3], [4]])).data();
    if (y[0] !== 11) throw new Error('matmul gave ' + y[0]);
  }
  console.log('RESULT ' + JSON.stringify({ report }));
} catch (e) {
  console.log('RESULT ' + JSON.stringify({ error: { name: e.name, message: e.message } }));
}
`,
  );
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', script],
      { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, timeout: 60_000 },
      (err, stdout, stderr) => {
        rmSync(dir, { recursive: true, force: true });
        const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
        if (!line) {
          reject(new Error(`child gave no result (${err?.message ?? 'no error'}):\n${stderr}`));
          return;
        }
        resolve({ ...(JSON.parse(line.slice('RESULT '.length)) as ChildResult), stderr });
      },
    );
  });
}

describe('initBackend on this machine (auto)', () => {
  it('walks node-gpu → webgpu → node → wasm → cpu and picks the best available', async () => {
    const adapter = await probeAdapter();
    const logs: string[] = [];
    const report = await initBackend('auto', { log: (m) => logs.push(m) });

    expect(report.attempts.map((a) => a.name)).toEqual([...AUTO_ORDER]);
    expect(report.attempts.filter((a) => a.status === 'selected')).toHaveLength(1);
    expect(report.tfBackend).toBe(tf.getBackend());
    expect(logs.at(-1)).toContain(report.summary);

    const byName = Object.fromEntries(report.attempts.map((a) => [a.name, a]));
    if (!installed('@tensorflow/tfjs-node-gpu')) {
      expect(byName['node-gpu']).toMatchObject({ status: 'not-installed' });
      expect(byName['node-gpu']?.detail).toMatch(/not installed/);
      expect(report.summary).toContain('node-gpu: not installed');
    }
    if (!installed('@tensorflow/tfjs-node')) {
      expect(byName['node']).toMatchObject({ status: 'not-installed' });
    }
    if (adapter === 'hardware' || installed('@tensorflow/tfjs-node-gpu')) return; // not "this machine"

    // No GPU here: webgpu is skipped with a reason, and wasm (SIMD) wins.
    expect(byName['webgpu']?.status).toMatch(/^(no-adapter|failed)$/);
    expect(byName['webgpu']?.detail.length).toBeGreaterThan(10);
    if (adapter === 'software') {
      expect(byName['webgpu']?.detail).toMatch(/^only a software \(CPU\) Vulkan adapter: /);
    }
    if (!installed('@tensorflow/tfjs-node')) {
      expect(report.name).toBe('wasm');
      expect(report.tfBackend).toBe('wasm');
      expect(report.simd).toBe(true);
      expect(report.threads).toBe(1);
      expect(report.memoryLimitBytes).toBe(4 * 1024 ** 3);
      expect(byName['cpu']).toMatchObject({ status: 'not-tried' });
      expect(report.summary).toMatch(
        /^wasm \(SIMD, 1 thread\) — node-gpu: not installed; webgpu: /,
      );
      expect(report.notes.join(' ')).toMatch(/threads: 1 .*Node/);
    }
    // webgpu's probe must not leave a Dawn instance (or the webgpu backend) behind
    expect((globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu).toBeUndefined();
    expect(tf.findBackendFactory('webgpu')).toBeNull();
  });

  it('is idempotent: the same preference returns the cached report', async () => {
    const first = await initBackend();
    const [a, b] = await Promise.all([initBackend('auto'), initBackend()]);
    expect(a).toBe(first);
    expect(b).toBe(first);
    expect(getBackendReport()).toBe(first);
  });

  it('explicit node throws a clear "not installed" error', async () => {
    if (installed('@tensorflow/tfjs-node')) return;
    const before = getBackendReport();
    const err = await initBackend('node').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendInitError);
    expect((err as BackendInitError).message).toBe(
      "backend 'node' is not installed: @tensorflow/tfjs-node is not installed",
    );
    expect((err as BackendInitError).attempt.status).toBe('not-installed');
    // a failed explicit attempt leaves the previous selection alone
    expect(getBackendReport()).toBe(before);
    expect(tf.getBackend()).toBe(before?.tfBackend);
  });
});

describe('initBackend in a fresh process', () => {
  it('explicit cpu works', async () => {
    const { report, error } = await initInChild('cpu');
    expect(error).toBeUndefined();
    expect(report).toMatchObject({ name: 'cpu', tfBackend: 'cpu', threads: 1, simd: false });
    expect(report?.attempts).toEqual([
      { name: 'cpu', status: 'selected', detail: expect.any(String) as string },
    ]);
    expect(report?.summary).toBe('cpu (plain JS, 1 thread) — explicit preference');
    expect(report?.memoryLimitBytes).toBeGreaterThan(0);
  });

  it('wasm honours GPT_STUDIO_WASM_DIR, and says when the binaries are not there', async () => {
    const good = path.dirname(require_.resolve('@tensorflow/tfjs-backend-wasm'));
    const [ok, bad] = await Promise.all([
      initInChild('wasm', { env: { GPT_STUDIO_WASM_DIR: good } }),
      initInChild('wasm', { env: { GPT_STUDIO_WASM_DIR: os.tmpdir() } }),
    ]);
    expect(ok.report).toMatchObject({ name: 'wasm', simd: true });
    expect(ok.report?.attempts[0]?.detail).toContain(good);
    expect(bad.error?.name).toBe('BackendInitError');
    expect(bad.error?.message).toMatch(
      /^backend 'wasm' failed to load: .*tfjs-backend-wasm-simd\.wasm not found in \S+ \(copy them there/,
    );
  });
});

/**
 * tfjs-node(-gpu) can't be installed here (it downloads libtensorflow), so fake both packages in a
 * scratch project to check how "installed but broken" and "no CUDA, fell back to CPU" are reported.
 */
describe('tfjs-node classification (fake packages)', () => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'gpt-studio-fake-tfjs-node-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  const nm = path.join(scratch, 'node_modules');
  mkdirSync(path.join(nm, '@tensorflow'), { recursive: true });
  for (const pkg of [
    '@tensorflow/tfjs-core',
    '@tensorflow/tfjs-backend-cpu',
    '@tensorflow/tfjs-backend-wasm',
    '@tensorflow/tfjs-backend-webgpu',
    'webgpu',
  ]) {
    symlinkSync(path.join(ROOT, 'node_modules', pkg), path.join(nm, pkg), 'dir');
  }
  // FAKE_TF: 'gpu' | 'cpu-fallback' | 'throw' (node-gpu), tfjs-node always loads on the "CPU".
  const fake = (name: string, gpuPackage: boolean): void => {
    const dir = path.join(nm, '@tensorflow', name);
    mkdirSync(dir);
    writeFileSync(
      path.join(dir, 'package.json'),
      JSON.stringify({ name: `@tensorflow/${name}`, version: '4.22.0', main: 'index.js' }),
    );
    writeFileSync(
      path.join(dir, 'index.js'),
      `const tf = require('@tensorflow/tfjs-core');
const { MathBackendCPU } = require('@tensorflow/tfjs-backend-cpu');
const mode = ${gpuPackage ? 'process.env.FAKE_TF' : "'cpu'"};
if (mode === 'throw') throw new Error('libcudart.so.11.0: cannot open shared object file');
tf.registerBackend('tensorflow', () => {
  const b = new MathBackendCPU();
  b.isGPUPackage = ${gpuPackage};
  b.isUsingGpuDevice = mode === 'gpu';
  return b;
}, 3);
tf.setBackend('tensorflow');
`,
    );
  };
  fake('tfjs-node-gpu', true);
  fake('tfjs-node', false);
  writeFileSync(path.join(scratch, 'package.json'), JSON.stringify({ type: 'module' }));
  mkdirSync(path.join(scratch, 'src'));
  const backendDir = path.dirname(BACKEND_TS);
  cpSync(backendDir, path.join(scratch, 'src', 'backend'), { recursive: true });
  const backendTs = path.join(scratch, 'src', 'backend', path.basename(BACKEND_TS));
  // the backend folder's own imports from outside it come along
  for (const f of ['wasmKernels.ts']) {
    copyFileSync(path.join(path.dirname(backendDir), f), path.join(scratch, 'src', f));
  }
  cpSync(path.join(path.dirname(backendDir), 'kernels'), path.join(scratch, 'src', 'kernels'), {
    recursive: true,
  });
  // and the contract's formatting, at the same relative place (../../common from backend/)
  mkdirSync(path.join(scratch, 'common'));
  const common = path.join(path.dirname(path.dirname(backendDir)), 'common');
  copyFileSync(path.join(common, 'format.ts'), path.join(scratch, 'common', 'format.ts'));
  const child = (preference: string, FAKE_TF: string): Promise<ChildResult> =>
    initInChild(preference, { backendTs, env: { FAKE_TF } });

  it('reports CUDA, CPU fallback and load failures honestly', async () => {
    const [gpu, fallback, broken, explicitFallback] = await Promise.all([
      child('auto', 'gpu'),
      child('auto', 'cpu-fallback'),
      child('auto', 'throw'),
      child('node-gpu', 'cpu-fallback'),
    ]);

    expect(gpu.error).toBeUndefined();
    expect(gpu.report).toMatchObject({ name: 'node-gpu', tfBackend: 'tensorflow' });
    expect(gpu.report?.summary).toBe('node-gpu (CUDA)');

    expect(fallback.report?.name).toBe('node');
    expect(fallback.report?.attempts[0]).toMatchObject({ name: 'node-gpu', status: 'no-adapter' });
    expect(fallback.report?.attempts[0]?.detail).toMatch(/found no CUDA GPU/);
    expect(fallback.report?.attempts[2]?.detail).toMatch(/tfjs-node-gpu \(its CPU TensorFlow/);

    expect(broken.report?.name).toBe('node');
    expect(broken.report?.attempts[0]).toMatchObject({ name: 'node-gpu', status: 'failed' });
    expect(broken.report?.attempts[0]?.detail).toBe(
      '@tensorflow/tfjs-node-gpu is installed but failed to load: ' +
        'libcudart.so.11.0: cannot open shared object file',
    );
    expect(broken.report?.summary).toMatch(
      /^node \(TensorFlow C, \d+ threads?\) — node-gpu: failed/,
    );

    expect(explicitFallback.error?.name).toBe('BackendInitError');
    expect(explicitFallback.error?.message).toMatch(/^backend 'node-gpu' has no usable device: /);
  });
});
