/**
 * One blob's download: into `blobs/<etag>.incomplete`, resumed where a cancelled or killed
 * download stopped (HTTP Range), then checked against the Hub's hash before it is renamed into
 * place: the sha256 of an LFS file (its etag, the LFS oid), or the git blob sha1 of a small one.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { hashFile } from '../util/fs';
import { corrupt } from './refuse';

export interface BlobDownload {
  url: string;
  headers: Record<string, string>;
  /** The final blob path (`blobs/<etag>`). */
  dest: string;
  /** Its size as the Hub says. */
  size: number;
  /** The Hub's etag: 64 hex digits (sha256 of an LFS file) or 40 (git blob sha1). */
  etag: string;
  /** The file's name in the repo, for messages. */
  name: string;
  fetch?: typeof fetch;
  signal?: AbortSignal;
  /** Called with each chunk's byte count as it lands (a resumed part counts once, at the start). */
  onBytes?: (n: number) => void;
}

export const incompletePath = (blob: string) => `${blob}.incomplete`;

/** The hash the Hub gives for a file, or null when its etag is neither kind. */
export function etagHash(etag: string): { algorithm: 'sha256' | 'git-sha1'; hex: string } | null {
  if (/^[0-9a-f]{64}$/.test(etag)) return { algorithm: 'sha256', hex: etag };
  if (/^[0-9a-f]{40}$/.test(etag)) return { algorithm: 'git-sha1', hex: etag };
  return null;
}

/** The file's hash as the Hub names it: LFS's sha256, or git's blob sha1 (a size header first). */
async function hubHash(file: string, algorithm: 'sha256' | 'git-sha1'): Promise<string> {
  if (algorithm === 'sha256') return hashFile(file, 'sha256');
  return hashFile(file, 'sha1', `blob ${(await fs.stat(file)).size}\0`);
}

/** Bytes already in the partial file (0 when there is none, or it is past the size). */
async function partialBytes(file: string, size: number): Promise<number> {
  const st = await fs.stat(file).catch(() => null);
  if (!st) return 0;
  if (st.size > size) {
    await fs.rm(file, { force: true });
    return 0;
  }
  return st.size;
}

/** The Hub (or its CDN) answered a download with an error status. */
export class DownloadHttpError extends Error {
  constructor(
    readonly file: string,
    readonly status: number,
  ) {
    super(`${file}: the Hub answered ${status} to the download`);
  }
}

/** Appends the response body to `file`, chunk by chunk, until it ends or `signal` fires. */
async function appendBody(
  res: Response,
  file: string,
  onBytes: (n: number) => void,
  signal?: AbortSignal,
) {
  const handle = await fs.open(file, 'a');
  try {
    const reader = res.body!.getReader();
    for (;;) {
      signal?.throwIfAborted();
      const { done, value } = await reader.read();
      if (done) break;
      await handle.write(value);
      onBytes(value.byteLength);
    }
  } finally {
    await handle.close();
  }
}

/** Downloads (or finishes downloading) one blob and checks it; the blob appears only when whole. */
export async function downloadBlob(d: BlobDownload): Promise<void> {
  const part = incompletePath(d.dest);
  await fs.mkdir(path.dirname(d.dest), { recursive: true });
  let have = await partialBytes(part, d.size);
  d.onBytes?.(have);
  if (have < d.size || d.size === 0) {
    const headers = { ...d.headers, ...(have > 0 ? { Range: `bytes=${have}-` } : {}) };
    const res = await (d.fetch ?? fetch)(d.url, {
      headers,
      redirect: 'follow',
      ...(d.signal ? { signal: d.signal } : {}),
    });
    if (res.status === 416 && have > 0) {
      // the server has nothing past what we hold: check it as it is
      await res.body?.cancel();
    } else if (!res.ok) {
      await res.body?.cancel();
      throw new DownloadHttpError(d.name, res.status);
    } else {
      if (have > 0 && res.status !== 206) {
        // the server sent the whole file: start over
        d.onBytes?.(-have);
        await fs.rm(part, { force: true });
        have = 0;
      }
      await appendBody(res, part, (n) => d.onBytes?.(n), d.signal);
    }
  }
  await verify(part, d);
  await fs.rename(part, d.dest);
}

async function verify(part: string, d: BlobDownload) {
  const { size } = await fs.stat(part);
  const expected = etagHash(d.etag);
  if (size !== d.size) {
    await fs.rm(part, { force: true });
    throw corrupt(d.name, 'size', `${d.size} bytes`, `${size} bytes`);
  }
  if (!expected) return;
  const got = await hubHash(part, expected.algorithm);
  if (got !== expected.hex) {
    await fs.rm(part, { force: true });
    throw corrupt(d.name, expected.algorithm, expected.hex, got);
  }
}
