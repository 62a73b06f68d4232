import { promises as fs } from 'node:fs';

/** Whether a file or folder is there. */
export async function exists(p: string): Promise<boolean> {
  return fs
    .access(p)
    .then(() => true)
    .catch(() => false);
}
