/**
 * A fresh folder per test for the data tests: `dir`, with the dataset library at `root`
 * (dir/datasets), and `write` to put a file in it. `dir` and `root` are live bindings.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach } from 'vitest';

export let dir = '';
export let root = '';

export function useScratch(prefix: string): void {
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
    root = path.join(dir, 'datasets');
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });
}

/** Writes `content` to dir/name (folders made as needed) and returns its path. */
export async function write(name: string, content: string | Uint8Array): Promise<string> {
  const p = path.join(dir, name);
  await fs.mkdir(path.dirname(p), { recursive: true });
  await fs.writeFile(p, content);
  return p;
}
