import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { ownerTag } from './leftovers';

export interface AtomicWriteOptions {
  /** The file's permissions (e.g. 0o600 for a secret); default 0o666 less the umask. */
  mode?: number;
}

/** Writes a file atomically: a temp file in the same folder, fsync, then rename over the target. */
export async function writeFileAtomic(
  file: string,
  data: string | Uint8Array,
  opts: AtomicWriteOptions = {},
): Promise<void> {
  await writeFileAtomicWith(file, (handle) => handle.writeFile(data), opts);
}

/**
 * Writes a file atomically from `fill`, which writes through the handle (for files too large to
 * hold in memory): a temp file in the same folder, fsync, then rename over the target.
 */
export async function writeFileAtomicWith(
  file: string,
  fill: (handle: FileHandle) => Promise<void>,
  opts: AtomicWriteOptions = {},
): Promise<void> {
  const dir = path.dirname(file);
  await fs.mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${ownerTag()}.tmp`);
  const handle = await fs.open(tmp, 'w', opts.mode);
  try {
    await fill(handle);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

export async function writeJsonAtomic(
  file: string,
  value: unknown,
  opts: AtomicWriteOptions = {},
): Promise<void> {
  await writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n', opts);
}
