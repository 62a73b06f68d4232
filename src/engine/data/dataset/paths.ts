/** What an import's paths stand for: the files, walked out of folders, and their names. */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { assertRegularFile } from '../../util/fs';
import { formatOf } from '../records';

/** Extensions an import accepts (folders are walked for these). */
export const IMPORT_EXTENSIONS = ['.txt', '.md', '.jsonl', '.ndjson', '.csv', '.tsv', '.json'];

/**
 * The files a set of paths stands for, in the order given: a folder is walked for importable
 * files (sorted). Each file gets the name the user knows it by: `names[i]` for a given file,
 * else its name, and for a folder's files their path from the folder's parent. A given path that
 * is not a regular file or folder is refused; in a folder, an importable name that is a link
 * loop, a FIFO, a device or a socket is left out, and why goes into `skipped`. Symbolic links to
 * folders are not followed; a link to a file is taken only where `mayRead` accepts its real path
 * (browser mode's allow-list), else it too is skipped, with the reason `mayRead` threw.
 */
export async function expandImportPaths(
  paths: readonly string[],
  names: readonly string[] = [],
  skipped: string[] = [],
  mayRead?: (realPath: string, shown: string) => Promise<void>,
): Promise<Array<{ file: string; name: string }>> {
  if (paths.length === 0) throw new Error('No files to import');
  const out: Array<{ file: string; name: string }> = [];
  const seen = new Set<string>();
  const add = (file: string, name: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    out.push({ file, name });
  };
  const walk = async (dir: string, shown: string, into: string[]): Promise<void> => {
    for (const e of await fs.readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.name.startsWith('.')) continue;
      if (e.isDirectory()) await walk(p, path.join(shown, e.name), into);
      else if (IMPORT_EXTENSIONS.includes(path.extname(e.name).toLowerCase())) {
        if (e.isFile()) into.push(p);
        else {
          // a symbolic link (taken if it leads to a regular file), a FIFO, a device, a socket
          const name = path.join(shown, e.name);
          await assertRegularFile(p, name)
            .then(async () => mayRead?.(await fs.realpath(p), name))
            .then(
              () => into.push(p),
              (err: Error) => skipped.push(`${err.message}; skipped`),
            );
        }
      }
    }
  };
  for (const [i, p] of paths.entries()) {
    const shown = names[i] || p;
    const st = await fs.stat(p).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') throw new Error(`File not found: ${shown}`);
      return assertRegularFile(p, shown); // a link loop, no permission: refused, naming it
    });
    if (st.isDirectory()) {
      const base = names[i] || path.basename(p);
      const inside: string[] = [];
      const before = skipped.length;
      await walk(p, base, inside);
      if (inside.length === 0) {
        const why = skipped[before];
        throw new Error(
          `No importable files in folder ${shown} (.txt, .md, .jsonl, .csv, .tsv, .json)` +
            (why ? `: ${why}` : ''),
        );
      }
      for (const f of inside.sort()) add(f, path.join(base, path.relative(p, f)));
    } else {
      await assertRegularFile(p, shown); // a FIFO or a device is refused before any open
      formatOf(p); // an unknown extension is refused here, naming the file
      add(p, names[i] || path.basename(p));
    }
  }
  return out;
}
