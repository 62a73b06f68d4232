/**
 * `gpt-studio pull` against a local mock Hub: HF_HOME, HF_ENDPOINT and HF_TOKEN honoured, the
 * cache laid out as Python's, a process killed mid-download resumed by the next pull, refusals
 * said as errors with exit code 1.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { commitOf, MockHub, repoOf, tinyGpt2Files } from '../engine/hub/mockHub';
import { cli, jsonLines, last, ROOT, tmpDir } from './helpers';

let dir: string;
let hub: MockHub;
let files: Map<string, Buffer>;

beforeAll(async () => {
  dir = await tmpDir('gpt-studio-pull-');
  files = await tinyGpt2Files();
  const binOnly = new Map(files);
  binOnly.delete('model.safetensors');
  binOnly.set('pytorch_model.bin', Buffer.from('pickle'));
  hub = new MockHub(
    new Map(
      [
        repoOf('tiny', files),
        repoOf('org/private', files, { private: true }),
        repoOf('org/bin-only', binOnly),
      ].map((r) => [r.id, r]),
    ),
  );
  await hub.start();
  vi.stubEnv('HF_HOME', path.join(dir, 'hf'));
  vi.stubEnv('HF_ENDPOINT', hub.url);
  vi.stubEnv('HF_TOKEN', '');
  vi.stubEnv('HF_HUB_OFFLINE', '');
});
afterAll(async () => {
  vi.unstubAllEnvs();
  await hub.close();
  await fs.rm(dir, { recursive: true, force: true });
});

const weightsPart = () =>
  path.join(
    dir,
    'hf',
    'hub',
    'models--tiny',
    'blobs',
    `${sha256(files.get('model.safetensors')!)}.incomplete`,
  );
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Starts `pull` as a process and SIGKILLs it once half the weights are on disk. */
function pullKilledHalfway(args: string[]): Promise<number | null> {
  const size = files.get('model.safetensors')!.length;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'pull', ...args], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: '1' },
      stdio: 'ignore',
    });
    const timer = setInterval(() => {
      void fs.stat(weightsPart()).then(
        (st) => {
          if (st.size >= size / 2) child.kill('SIGKILL');
        },
        () => {},
      );
    }, 5);
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(timer);
      resolve(code);
    });
  });
}

describe('gpt-studio pull', () => {
  it('resumes after the process is killed mid-download, then finds it cached', async () => {
    hub.slow = { chunk: 512, delayMs: 15 };
    await pullKilledHalfway(['tiny', '--json']);
    hub.slow = null;
    const kept = (await fs.stat(weightsPart())).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(files.get('model.safetensors')!.length);

    hub.requests.length = 0;
    const r = await cli(['pull', 'tiny', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const result = last(jsonLines(r.stdout));
    const snapshot = path.join(dir, 'hf', 'hub', 'models--tiny', 'snapshots', commitOf('tiny'));
    expect(result).toMatchObject({
      type: 'hub.result',
      repo: 'tiny',
      dir: snapshot,
      cached: false,
    });
    expect(hub.requests.map((q) => q.range).filter(Boolean)).toContain(`bytes=${kept}-`);
    expect(jsonLines(r.stdout).some((l) => l.type === 'hub.progress')).toBe(true);

    const again = await cli(['pull', 'tiny']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(
      `pulled tiny@main (commit ${commitOf('tiny').slice(0, 10)}) to ${snapshot}`,
    );
    expect(again.stdout).toContain('already cached, nothing downloaded');
  });

  it('takes --revision, --endpoint and --token; HF_TOKEN works the same', async () => {
    const denied = await cli(['pull', 'org/private']);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain('HF_TOKEN (or pass --token)');
    const r = await cli([
      'pull',
      'org/private',
      '--revision',
      commitOf('org/private'),
      '--endpoint',
      hub.url,
      '--token',
      hub.token,
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(last(jsonLines(r.stdout))).toMatchObject({ commit: commitOf('org/private') });
    vi.stubEnv('HF_TOKEN', hub.token);
    try {
      const viaEnv = await cli(['pull', 'org/private', '--json']);
      expect(viaEnv.code, viaEnv.stderr).toBe(0);
    } finally {
      vi.stubEnv('HF_TOKEN', '');
    }
  });

  it('refuses .bin-only and missing repos with the reason', async () => {
    const bin = await cli(['pull', 'org/bin-only']);
    expect(bin.code).toBe(1);
    expect(bin.stderr).toContain('has only pytorch_model.bin, which is refused');
    const missing = await cli(['pull', 'org/none']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('org/none: no such model repo');
  });
});
