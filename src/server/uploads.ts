/**
 * Uploads: how browser mode hands the engine a local file. The page streams it in ≤ 1 MiB
 * base64 chunks, strictly in order, into workspace/uploads/<pid>-<id>/<name>.part; `end` checks
 * the size and renames it into place, so a half-sent file never looks complete.
 *
 * The host keeps the record of what it created: cleanup is keyed on upload ids it issued (and the
 * file paths it handed out for them), never on a path taken from a request. Open uploads are capped
 * in number and declared bytes; an upload idle for an hour is dropped, and the server aborts a
 * client's open uploads when its connection goes away. The folder names carry the host's pid, so a
 * host that starts after a crash sweeps what the dead one left.
 */
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { apiError } from '../common/api';
import { formatBytes } from '../common/format';
import { safeFileName } from '../common/text';
import { HostError } from './context';

const MAX_CHUNK = 1 << 20;

export interface UploadLimits {
  /** Uploads open at once (begun, not ended or aborted). */
  maxOpen: number;
  /** The declared sizes of all open uploads together. */
  maxOpenBytes: number;
  /** An upload untouched this long is dropped. */
  idleMs: number;
  /** Free disk space an upload must leave. */
  reserveBytes: number;
}

export const DEFAULT_UPLOAD_LIMITS: UploadLimits = {
  maxOpen: 8,
  maxOpenBytes: 16 * 2 ** 30,
  idleMs: 60 * 60 * 1000,
  reserveBytes: 256 * 2 ** 20,
};

interface Upload {
  dir: string;
  file: string;
  size: number;
  received: number;
  handle: fs.FileHandle | null;
  touched: number;
}

export class Uploads {
  private readonly open = new Map<string, Upload>();
  /** Ended uploads, by the path handed out, until an import releases them. */
  private readonly done = new Map<string, Upload>();
  private readonly limits: UploadLimits;

  constructor(
    private readonly root: string,
    limits: Partial<UploadLimits> = {},
  ) {
    this.limits = { ...DEFAULT_UPLOAD_LIMITS, ...limits };
  }

  async begin(name: string, size: number): Promise<{ uploadId: string }> {
    await this.sweep();
    const { maxOpen, maxOpenBytes, reserveBytes } = this.limits;
    if (this.open.size >= maxOpen) {
      throw new HostError(
        apiError(
          'busy',
          `upload ${name}: ${this.open.size} uploads are open already (at most ${maxOpen}); finish or cancel one first`,
        ),
      );
    }
    const declared = [...this.open.values()].reduce((a, u) => a + u.size, 0);
    if (declared + size > maxOpenBytes) {
      throw new HostError(
        apiError(
          'too-large',
          `upload ${name}: ${formatBytes(size)} would bring the open uploads to ${formatBytes(declared + size)}, past the ${formatBytes(maxOpenBytes)} allowed at once`,
        ),
      );
    }
    await fs.mkdir(this.root, { recursive: true });
    const free = await fs
      .statfs(this.root)
      .then((s) => s.bavail * s.bsize)
      .catch(() => Infinity);
    if (size + declared - this.receivedOpen() + reserveBytes > free) {
      throw new HostError(
        apiError(
          'too-large',
          `upload ${name}: ${formatBytes(size)} does not fit in the ${formatBytes(free)} free on the workspace's disk`,
        ),
      );
    }
    const uploadId = randomUUID();
    const dir = path.join(this.root, `${process.pid}-${uploadId}`);
    await fs.mkdir(dir);
    // the user's own file name, made safe for the disk: the engine and its messages show it
    const file = path.join(dir, safeFileName(name, 'upload'));
    const handle = await fs.open(`${file}.part`, 'wx');
    this.open.set(uploadId, { dir, file, size, received: 0, handle, touched: Date.now() });
    return { uploadId };
  }

  private receivedOpen() {
    return [...this.open.values()].reduce((a, u) => a + u.received, 0);
  }

  private get(uploadId: string): Upload {
    const u = this.open.get(uploadId);
    if (!u)
      throw new HostError(apiError('not-found', `params.uploadId: no open upload ${uploadId}`));
    u.touched = Date.now();
    return u;
  }

  async chunk(uploadId: string, offset: number, data: string): Promise<{ received: number }> {
    const u = this.get(uploadId);
    if (offset !== u.received) {
      throw new HostError(
        apiError(
          'bad-request',
          `params.offset: expected ${u.received} (chunks go in order), got ${offset}`,
        ),
      );
    }
    const bytes = Buffer.from(data, 'base64');
    if (bytes.length > MAX_CHUNK) {
      throw new HostError(apiError('too-large', `params.data: a chunk is at most 1 MiB`));
    }
    if (u.received + bytes.length > u.size) {
      throw new HostError(
        apiError('bad-request', `params.data: more bytes than the ${u.size} announced`),
      );
    }
    await u.handle!.write(bytes, 0, bytes.length, offset);
    u.received += bytes.length;
    return { received: u.received };
  }

  async end(uploadId: string): Promise<{ path: string }> {
    const u = this.get(uploadId);
    if (u.received !== u.size) {
      throw new HostError(
        apiError(
          'bad-request',
          `upload ${path.basename(u.file)}: received ${u.received} of ${u.size} bytes`,
        ),
      );
    }
    await u.handle!.close();
    u.handle = null;
    await fs.rename(`${u.file}.part`, u.file);
    this.open.delete(uploadId);
    this.done.set(u.file, u);
    return { path: u.file };
  }

  async abort(uploadId: string): Promise<{ aborted: true }> {
    const u = this.get(uploadId);
    this.open.delete(uploadId);
    await this.remove(u);
    return { aborted: true };
  }

  /** Whether `file` is an ended upload's path, as this host handed it out. */
  isUpload(file: string): boolean {
    return this.done.has(file);
  }

  /** Removes an ended upload's copy once it has been used; other paths are left alone. */
  async release(file: string): Promise<void> {
    const u = this.done.get(file);
    if (!u) return;
    this.done.delete(file);
    await this.remove(u);
  }

  /** Uploads open now (the server aborts a client's when it goes away). */
  get openCount(): number {
    return this.open.size;
  }

  /** Closes every handle and removes every upload (the host is closing). */
  async closeAll(): Promise<void> {
    for (const id of [...this.open.keys()]) await this.abort(id);
    for (const file of [...this.done.keys()]) await this.release(file);
  }

  private async remove(u: Upload) {
    await u.handle?.close().catch(() => {});
    u.handle = null;
    // u.dir is a folder this host created under root, never a path from a request
    await fs.rm(u.dir, { recursive: true, force: true });
  }

  private async sweep() {
    const now = Date.now();
    const idle = (u: Upload) => now - u.touched > this.limits.idleMs;
    for (const [id, u] of [...this.open]) if (idle(u)) await this.abort(id);
    for (const [file, u] of [...this.done]) if (idle(u)) await this.release(file);
  }
}
