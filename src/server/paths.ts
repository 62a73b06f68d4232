/**
 * Which paths a request may name. Every path check resolves the real path first (symlinks and
 * `..` included) and then compares whole path components, never string prefixes.
 *
 * - Electron: the paths come from native dialogs the user answered, so the host reads and writes
 *   where the user chose (`unrestricted`).
 * - Browser mode: whoever holds the token drives the host, so it may read and write only inside
 *   the workspace and the folders named with `--allow-path DIR`, and read the app's bundled
 *   resources. Everything else is refused with a message naming the path and the flag.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { apiError } from '../common/api';
import { describeFileType } from '../engine/util/fs';
import { HostError } from './context';

export type PathAccess =
  { mode: 'unrestricted' } | { mode: 'allow-list'; allow: readonly string[] };

export type Want = 'file' | 'dir' | 'any';

/** Whether `child` is `parent` or inside it, by whole path components. */
export function isInside(parent: string, child: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..' + path.sep) && rel !== '..' && !path.isAbsolute(rel));
}

export class PathGuard {
  /** Real paths of the roots that may be read and written, and of those that may only be read. */
  private roots: Promise<{ rw: string[]; ro: string[] }> | null = null;

  constructor(
    readonly access: PathAccess,
    private readonly workspace: string,
    private readonly resourcesDir: string,
    /** More folders that may be read: the shared Hugging Face cache, whose models the app lists. */
    private readonly readable: readonly string[] = [],
  ) {}

  /** The readable folders' real paths, now (they may appear after the host starts). */
  private async readableRoots(): Promise<string[]> {
    return Promise.all(this.readable.map((p) => fs.realpath(p).catch(() => path.resolve(p))));
  }

  get restricted(): boolean {
    return this.access.mode === 'allow-list';
  }

  private realRoots() {
    return (this.roots ??= (async () => {
      const real = async (p: string) => {
        await fs.mkdir(p, { recursive: true }).catch(() => {});
        return fs.realpath(p).catch(() => path.resolve(p));
      };
      const allow = this.access.mode === 'allow-list' ? this.access.allow : [];
      const rw = [await real(this.workspace)];
      for (const a of allow)
        rw.push(await fs.realpath(path.resolve(a)).catch(() => path.resolve(a)));
      return { rw, ro: [await real(this.resourcesDir)] };
    })());
  }

  /** A request's path, absolute: relative paths are the workspace's. */
  absolute(p: string): string {
    return path.isAbsolute(p) ? path.normalize(p) : path.join(this.workspace, p);
  }

  private async refuseOutside(real: string, shown: string, field: string, write: boolean) {
    if (!this.restricted) return;
    const r = await this.realRoots();
    const ro = write ? [] : [...r.ro, ...(await this.readableRoots())];
    const ok = [...r.rw, ...ro].some((root) => isInside(root, real));
    if (ok) return;
    const where = real === shown ? shown : `${shown} (${real})`;
    throw new HostError(
      apiError(
        'forbidden',
        `${field}: ${where} is outside the folders browser mode may ${write ? 'write' : 'read'} ` +
          `(the workspace ${r.rw[0]}${r.rw.length > 1 ? ` and ${r.rw.slice(1).join(', ')}` : ''}); ` +
          `to allow it, restart the server with --allow-path ${path.dirname(real)}`,
        { path: shown },
      ),
    );
  }

  /**
   * An existing file or folder a request names, as its real path. Refused: a path that does not
   * exist, one outside the allowed folders, and anything but a regular file or a folder (FIFOs,
   * devices and sockets would block or never end).
   */
  async existing(p: string, field: string, want: Want = 'any'): Promise<string> {
    const shown = this.absolute(p);
    let real: string;
    try {
      real = await fs.realpath(shown);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why =
        code === 'ELOOP'
          ? 'is a symbolic link that loops'
          : code === 'EACCES'
            ? 'cannot be read (permission denied)'
            : 'does not exist';
      throw new HostError(apiError('not-found', `${field}: ${shown} ${why}`));
    }
    await this.refuseOutside(real, shown, field, false);
    const st = await fs.stat(real);
    const okType =
      want === 'file'
        ? st.isFile()
        : want === 'dir'
          ? st.isDirectory()
          : st.isFile() || st.isDirectory();
    if (!okType) {
      const expected =
        want === 'file'
          ? 'a regular file'
          : want === 'dir'
            ? 'a folder'
            : 'a regular file or a folder';
      throw new HostError(
        apiError('bad-request', `${field}: ${shown} is ${describeFileType(st)}, not ${expected}`),
      );
    }
    return real;
  }

  /**
   * A destination that may not exist yet (an export's folder): the nearest existing ancestor is
   * resolved, and the path must lie inside a folder that may be written.
   */
  async destination(p: string, field: string): Promise<string> {
    const shown = this.absolute(p);
    const rest: string[] = [];
    let cur = shown;
    for (;;) {
      try {
        const real = await fs.realpath(cur);
        const resolved = path.join(real, ...rest.reverse());
        await this.refuseOutside(resolved, shown, field, true);
        return resolved;
      } catch (err) {
        if (err instanceof HostError) throw err;
        if (
          await fs.lstat(cur).then(
            (st) => st.isSymbolicLink(),
            () => false,
          )
        ) {
          throw new HostError(
            apiError(
              'bad-request',
              `${field}: ${cur} is a symbolic link to nowhere; choose another place`,
            ),
          );
        }
        const parent = path.dirname(cur);
        if (parent === cur) throw err;
        rest.push(path.basename(cur));
        cur = parent;
      }
    }
  }
}
