import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeFileAtomic } from '../../../src/engine/util/atomic';
import {
  classifyLeftover,
  describeSweep,
  LEGACY_LEFTOVER_AGE_MS,
  ownerTag,
  processAlive,
  sweepLeftovers,
} from '../../../src/engine/util/leftovers';

let dir: string;
beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'leftovers-'));
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** A pid that belonged to a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  const pid = Number(String(r.stdout));
  expect(processAlive(pid)).toBe(false);
  return pid;
}

async function make(p: string, bytes = 10, folder = false) {
  await fs.mkdir(path.dirname(p), { recursive: true });
  if (folder) {
    await fs.mkdir(p);
    await fs.writeFile(path.join(p, 'model.safetensors'), Buffer.alloc(bytes));
  } else {
    await fs.writeFile(p, Buffer.alloc(bytes));
  }
}

describe('leftovers of crashed processes', () => {
  it('every temp name the engine writes carries its pid', async () => {
    const tag = ownerTag();
    expect(tag).toMatch(new RegExp(`^${process.pid}-[0-9a-f]{12}$`));
    expect(classifyLeftover(`.state.json.${tag}.tmp`, false)).toEqual({
      what: 'half-written file',
      pid: process.pid,
    });
    expect(classifyLeftover(`.checkpoint-250.${process.pid}.tmp`, false)?.pid).toBe(process.pid);
    expect(classifyLeftover(`.import-${tag}`, false)?.what).toBe('unfinished dataset import');
    expect(classifyLeftover(`.gpt2-hf.partial-${tag}`, false)?.what).toMatch(/export/);
    expect(
      classifyLeftover(`${process.pid}-0b5c9a1e-8f3b-4a7e-9c1d-2e3f4a5b6c7d`, true)?.what,
    ).toBe('unfinished upload');
    // ordinary names are not leftovers
    for (const n of ['state.json', 'checkpoint-250', '.seeded', 'model.safetensors', 'uploads']) {
      expect(classifyLeftover(n, false)).toBeNull();
    }
    // an atomic write leaves nothing behind when it succeeds
    await writeFileAtomic(path.join(dir, 'a.json'), '{}');
    expect(await fs.readdir(dir)).toEqual(['a.json']);
  });

  it("removes a dead process's leftovers, keeps a live one's, and says what it removed", async () => {
    const dead = deadPid();
    const hex = 'abcdef012345';
    const gone = [
      path.join(dir, 'runs', 'r1', `.checkpoint-40.${dead}.tmp`),
      path.join(dir, 'runs', 'r1', `.state.json.${dead}-${hex}.tmp`),
      path.join(dir, 'datasets', `.import-${dead}-${hex}`),
      path.join(dir, 'exports', `.m-hf.partial-${dead}-${hex}`),
      path.join(dir, 'uploads', `${dead}-0b5c9a1e-8f3b-4a7e-9c1d-2e3f4a5b6c7d`),
    ];
    const kept = [
      path.join(dir, 'runs', 'r1', `.checkpoint-40.${process.pid}.tmp`),
      path.join(dir, 'datasets', `.import-${process.pid}-${hex}`),
      path.join(dir, 'uploads', `${process.pid}-0b5c9a1e-8f3b-4a7e-9c1d-2e3f4a5b6c7d`),
      path.join(dir, 'runs', 'r1', 'state.json'),
      path.join(dir, 'runs', 'r1', 'checkpoint-40'),
    ];
    for (const p of [...gone, ...kept]) await make(p, 2048, !p.endsWith('.json'));
    const removed = await sweepLeftovers([dir]);
    expect(removed.map((r) => r.path).sort()).toEqual([...gone].sort());
    for (const p of gone) await expect(fs.access(p)).rejects.toThrow();
    for (const p of kept) await expect(fs.access(p)).resolves.toBeUndefined();
    const said = describeSweep(removed, dir);
    expect(said).toMatch(/^removed 5 leftovers \(.*KiB\) of processes that are gone: /);
    expect(said).toContain(`runs/r1/.checkpoint-40.${dead}.tmp (half-written checkpoint`);
  });

  it('names from before pids were recorded go once they are an hour old', async () => {
    const old = path.join(dir, '.import-0123456789ab');
    const fresh = path.join(dir, '.x.json.0123456789ab.tmp');
    await make(old, 1, true);
    await make(fresh);
    const hourAgo = (Date.now() - LEGACY_LEFTOVER_AGE_MS - 60_000) / 1000;
    await fs.utimes(old, hourAgo, hourAgo);
    const removed = await sweepLeftovers([dir]);
    expect(removed.map((r) => r.path)).toEqual([old]);
    await expect(fs.access(fresh)).resolves.toBeUndefined();
  });

  it('never follows a symlink out of the tree', async () => {
    const dead = deadPid();
    const outside = await fs.mkdtemp(path.join(os.tmpdir(), 'leftovers-outside-'));
    try {
      const victim = path.join(outside, `.import-${dead}-abcdef012345`);
      await make(victim, 1, true);
      await fs.symlink(outside, path.join(dir, 'link'));
      expect(await sweepLeftovers([dir])).toEqual([]);
      await expect(fs.access(victim)).resolves.toBeUndefined();
    } finally {
      await fs.rm(outside, { recursive: true, force: true });
    }
  });
});
