/** webgpu: Dawn's Node binding (npm `webgpu`) + @tensorflow/tfjs-backend-webgpu. */
import * as tf from '@tensorflow/tfjs-core';
import { formatBytes } from '../../common/format';
import { firstLine } from './format';
import { notSelected, selected, type Outcome } from './outcome';
import { importOptional, initializedBackend, setBackendOrThrow } from './tfjs';
import { probeAdapterInChild } from './webgpuProbe';

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

export async function tryWebgpu(auto: boolean): Promise<Outcome> {
  if (initializedBackend('webgpu') === undefined) {
    if (auto && !hasNavigatorGpu()) {
      const skip = await reasonToSkip();
      if (skip) return skip;
    }
    const gpu = await installNavigatorGpu();
    if (!gpu.ok) return notSelected('webgpu', gpu.status, gpu.detail);
    const adapter = await gpu.gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (adapter == null) {
      uninstallNavigatorGpu();
      return noAdapter();
    }
    const software = softwareAdapter(adapter);
    if (software && auto) {
      uninstallNavigatorGpu();
      return softwareOnly(software);
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
    `largest tensor a kernel can bind: ${maxBinding > 0 ? formatBytes(maxBinding) : 'unknown'} (maxStorageBufferBindingSize); ` +
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

/**
 * Auto selection's look from a child process (webgpuProbe.ts), before Dawn loads here: why webgpu
 * is passed by (not installed, no adapter, a software one), or undefined when it may be used.
 */
async function reasonToSkip(): Promise<Outcome | undefined> {
  const probe = await probeAdapterInChild();
  if (probe === undefined) return undefined;
  if (!probe.ok) return notSelected('webgpu', probe.status, probe.detail);
  if (probe.adapter === null) return noAdapter();
  const software = softwareAdapter({ info: probe.adapter });
  return software ? softwareOnly(software) : undefined;
}

function noAdapter(): Outcome {
  return notSelected(
    'webgpu',
    'no-adapter',
    'no WebGPU adapter (Dawn found no Vulkan/Metal/D3D12 device; on Linux it needs libvulkan1 ' +
      'and a Vulkan driver — scripts/install-webgpu-deps.sh installs Mesa lavapipe)',
    'no GPU adapter',
  );
}

function softwareOnly(software: string): Outcome {
  return notSelected(
    'webgpu',
    'no-adapter',
    `only a software (CPU) Vulkan adapter: ${software} — not used automatically (slower than ` +
      "wasm); ask for 'webgpu' explicitly to use it",
    `software adapter only (${adapterShortName(software)})`,
  );
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
function softwareAdapter(
  adapter: Pick<AdapterLike, 'info' | 'isFallbackAdapter'>,
): string | undefined {
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

function hasNavigatorGpu(): boolean {
  return (globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu != null;
}

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
