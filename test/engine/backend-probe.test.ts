/**
 * Auto selection's child-process look at the WebGPU adapter (src/engine/backend/webgpuProbe.ts),
 * against fake `webgpu` packages: how a broken install, a crash and a missing package are told.
 * The probe module is copied beside each fake, as it finds `webgpu` from its own location.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { ProbeResult } from '../../src/engine/backend/webgpuProbe';

const BACKEND = fileURLToPath(new URL('../../src/engine/backend/', import.meta.url));
const scratch = mkdtempSync(path.join(os.tmpdir(), 'gpt-studio-webgpu-probe-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A project whose `webgpu` is `index` (none when undefined), and the probe found from there. */
async function probeWith(name: string, index: string | undefined): Promise<ProbeResult> {
  const dir = path.join(scratch, name);
  const src = path.join(dir, 'src');
  mkdirSync(src, { recursive: true });
  for (const f of ['webgpuProbe.ts', 'format.ts']) {
    copyFileSync(path.join(BACKEND, f), path.join(src, f));
  }
  if (index !== undefined) {
    const pkg = path.join(dir, 'node_modules', 'webgpu');
    mkdirSync(pkg, { recursive: true });
    writeFileSync(
      path.join(pkg, 'package.json'),
      JSON.stringify({ name: 'webgpu', type: 'module', main: 'index.js' }),
    );
    writeFileSync(path.join(pkg, 'index.js'), index);
  }
  const probe = (await import(
    path.join(src, 'webgpuProbe.ts')
  )) as typeof import('../../src/engine/backend/webgpuProbe');
  const result = await probe.probeAdapterInChild();
  if (result === undefined) throw new Error('the probe declined to run in a child');
  return result;
}

describe('the WebGPU adapter probe (child process)', () => {
  it('reports the adapter, no adapter, a load failure, a crash and a missing package', async () => {
    const adapter = `export const create = () => ({ requestAdapter: async () => ({
      info: { vendor: 'mesa', architecture: 'software', device: 'llvmpipe', description: 'llvmpipe: Mesa', isFallbackAdapter: true },
    }) });`;
    const [found, none, broken, crashed, missing] = await Promise.all([
      probeWith('found', `process.stderr.write('Warning: x artificially reduced\\n');\n${adapter}`),
      probeWith('none', 'export const create = () => ({ requestAdapter: async () => null });'),
      probeWith('broken', 'throw new Error("dawn.node: cannot open shared object file");'),
      probeWith(
        'crashed',
        'process.stderr.write("Warning: x artificially reduced\\nvkCreateInstance failed\\n");\n' +
          'process.kill(process.pid, "SIGSEGV");',
      ),
      probeWith('missing', undefined),
    ]);
    expect(found).toEqual({
      ok: true,
      adapter: {
        vendor: 'mesa',
        architecture: 'software',
        device: 'llvmpipe',
        description: 'llvmpipe: Mesa',
        isFallbackAdapter: true,
      },
    });
    expect(none).toEqual({ ok: true, adapter: null });
    expect(broken).toEqual({
      ok: false,
      status: 'failed',
      detail: 'webgpu is installed but failed to load: dawn.node: cannot open shared object file',
    });
    // Dawn's warnings are dropped from what a crash reports; the rest is kept
    expect(crashed).toEqual({
      ok: false,
      status: 'failed',
      detail: 'the WebGPU adapter probe crashed (SIGSEGV): vkCreateInstance failed',
    });
    expect(missing).toEqual({
      ok: false,
      status: 'not-installed',
      detail: 'webgpu is not installed',
    });
  });
});
