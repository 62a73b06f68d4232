/**
 * Uploads: how browser mode hands the engine a local file. The page streams it in ≤ 1 MiB
 * base64 chunks, strictly in order, into workspace/uploads/<id>/<name>.part; `end` checks the
 * size and renames it into place, so a half-sent file never looks complete. Uploads idle for an
 * hour are dropped.
 */
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { apiError } from '../common/api';
import { HostError } from './context';

const MAX_CHUNK = 1 << 20;
const IDLE_MS = 60 * 60 * 1000;

interface Upload {
  dir: string;
  file: string;
  size: number;
  received: number;
  handle: fs.FileHandle;
  touched: number;
}

export class Uploads {
  private readonly open = new Map<string, Upload>();

  constructor(private readonly root: string) {}

  async begin(name: string, size: number): Promise<{ uploadId: string }> {
    await this.sweep();
    const uploadId = randomUUID();
    const dir = path.join(this.root, uploadId);
    await fs.mkdir(dir, { recursive: true });
    const file = path.join(dir, name);
    const handle = await fs.open(`${file}.part`, 'w');
    this.open.set(uploadId, { dir, file, size, received: 0, handle, touched: Date.now() });
    return { uploadId };
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
      throw new HostError(apiError('bad-request', `params.data: a chunk is at most 1 MiB`));
    }
    if (u.received + bytes.length > u.size) {
      throw new HostError(
        apiError('bad-request', `params.data: more bytes than the ${u.size} announced`),
      );
    }
    await u.handle.write(bytes, 0, bytes.length, offset);
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
    await u.handle.close();
    await fs.rename(`${u.file}.part`, u.file);
    this.open.delete(uploadId);
    return { path: u.file };
  }

  async abort(uploadId: string): Promise<{ aborted: true }> {
    const u = this.get(uploadId);
    this.open.delete(uploadId);
    await u.handle.close().catch(() => {});
    await fs.rm(u.dir, { recursive: true, force: true });
    return { aborted: true };
  }

  private async sweep() {
    const now = Date.now();
    for (const [id, u] of [...this.open]) if (now - u.touched > IDLE_MS) await this.abort(id);
  }
}
