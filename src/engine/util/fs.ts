import { createHash } from 'node:crypto';
import { createReadStream, promises as fs, type Stats } from 'node:fs';

/** Whether a file or folder is there. */
export async function exists(p: string): Promise<boolean> {
  return fs
    .access(p)
    .then(() => true)
    .catch(() => false);
}

/** What a stat result is, in words: "a regular file", "a FIFO (named pipe)", "a socket", … */
export function describeFileType(st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

/** An Error carrying the errno code of the failure it describes. */
function coded(message: string, code: string | undefined): Error {
  return Object.assign(new Error(message), code ? { code } : {});
}

/**
 * Refuses anything but a regular file before it is opened (a FIFO or a device could block the
 * open or never end): follows symbolic links, then stats. Messages name the file as `name`
 * (default: the path), e.g. "<name> is a FIFO (named pipe), not a regular file"; a missing file
 * or a link loop keeps its errno code (ENOENT, ELOOP). Returns the file's stat.
 */
export async function assertRegularFile(file: string, name: string = file): Promise<Stats> {
  let st: Stats;
  try {
    st = await fs.stat(await fs.realpath(file));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw coded(`${name}: file not found`, code);
    if (code === 'ELOOP') {
      throw coded(`${name} is a symbolic link that loops (it leads back to itself)`, code);
    }
    throw coded(`Cannot read ${name}: ${(err as Error).message}`, code);
  }
  if (!st.isFile()) throw new Error(`${name} is ${describeFileType(st)}, not a regular file`);
  return st;
}

/** The hex digest of a file's bytes, streamed 16 MiB at a time, after `prefix` when given. */
export async function hashFile(
  file: string,
  algorithm: 'sha256' | 'sha1' = 'sha256',
  prefix?: string,
): Promise<string> {
  const h = createHash(algorithm);
  if (prefix !== undefined) h.update(prefix);
  for await (const chunk of createReadStream(file, { highWaterMark: 16 * 2 ** 20 })) {
    h.update(chunk as Buffer);
  }
  return h.digest('hex');
}
