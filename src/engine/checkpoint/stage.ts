/**
 * Writing a whole folder or nothing: everything goes into a hidden staging folder beside the
 * destination, which is renamed into place only once complete. A failure or a cancel removes the
 * staging folder, so no half-written model is ever left where a user would find it.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { ownerTag } from '../util/leftovers';

/** Refuses a destination that exists and is not an empty folder. */
export async function checkDestination(out: string, flag = '--out'): Promise<void> {
  const stat = await fs.stat(out).catch(() => undefined);
  if (!stat) return;
  if (!stat.isDirectory()) throw new Error(`${flag}: ${out} exists and is not a folder`);
  const entries = await fs.readdir(out);
  if (entries.length > 0) {
    throw new Error(`${flag}: ${out} already exists and is not empty; choose another folder`);
  }
}

/**
 * Runs `write(staging)` and moves the staging folder to `out`. `out` must not exist, or be an
 * empty folder (checked first and again at the end).
 */
export async function writeFolder<R>(
  out: string,
  write: (staging: string) => Promise<R>,
  flag = '--out',
): Promise<R> {
  const dest = path.resolve(out);
  await checkDestination(dest, flag);
  const parent = path.dirname(dest);
  await fs.mkdir(parent, { recursive: true });
  const staging = path.join(parent, `.${path.basename(dest)}.partial-${ownerTag()}`);
  await fs.mkdir(staging);
  try {
    const result = await write(staging);
    await checkDestination(dest, flag);
    await fs.rm(dest, { recursive: true, force: true }); // an empty folder, if any
    await fs.rename(staging, dest);
    return result;
  } catch (err) {
    await fs.rm(staging, { recursive: true, force: true });
    throw err;
  }
}

/** Relative paths of every file under dir, sorted. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(path.join(d, e.name), rel + e.name + '/');
      else out.push(rel + e.name);
    }
  };
  await walk(dir, '');
  return out.sort();
}

/** Bytes of the files under dir; a folder or file that is gone (a run saving as we count) is 0. */
export async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += await folderBytes(p);
    else total += (await fs.stat(p).catch(() => ({ size: 0 }))).size;
  }
  return total;
}
