/** The library on disk: each dataset's manifest, the list of them, and their text shards. */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { DatasetManifest } from '../../../common/datasets';

export async function readManifest(dir: string): Promise<DatasetManifest> {
  const file = path.join(dir, 'manifest.json');
  const m = JSON.parse(await fs.readFile(file, 'utf8')) as DatasetManifest;
  if (m.version !== 1 || typeof m.id !== 'string') throw new Error(`${file}: unknown format`);
  return m;
}

/** Every dataset in the library, newest first (folders without a readable manifest skipped). */
export async function listDatasets(root: string): Promise<DatasetManifest[]> {
  const names = await fs.readdir(root).catch(() => [] as string[]);
  const out: DatasetManifest[] = [];
  for (const n of names) {
    if (n.startsWith('.')) continue;
    try {
      out.push(await readManifest(path.join(root, n)));
    } catch {
      // not a dataset folder
    }
  }
  return out.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}

/** The normalized text files of a dataset, in order. */
export function datasetShards(root: string, m: DatasetManifest): string[] {
  return m.shards.map((s) => path.join(root, m.id, s));
}

/** Reads `length` characters of a dataset's text starting near byte `offset`, at a line start. */
export async function readTextAt(
  root: string,
  m: DatasetManifest,
  offset: number,
  length: number,
): Promise<string> {
  let pos = offset;
  for (const shard of datasetShards(root, m)) {
    const { size } = await fs.stat(shard);
    if (pos >= size) {
      pos -= size;
      continue;
    }
    const h = await fs.open(shard, 'r');
    try {
      const buf = Buffer.alloc(Math.min(size - pos, length * 4 + 4096));
      await h.read(buf, 0, buf.length, pos);
      let s = new TextDecoder('utf-8').decode(buf).replace(/^\uFFFD+/, '');
      if (offset > 0) {
        const nl = s.indexOf('\n');
        if (nl >= 0 && nl < s.length - 1) s = s.slice(nl + 1);
      }
      return [...s].slice(0, length).join('');
    } finally {
      await h.close();
    }
  }
  return '';
}
