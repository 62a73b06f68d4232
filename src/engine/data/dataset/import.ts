/**
 * Importing into the library: the sources' normalized text goes into shards under a temporary
 * folder, which becomes workspace/datasets/<id>/ once its manifest is written. Table files
 * (csv, tsv, jsonl, json) are kept too, under their own names, for the fine-tune wizard and the
 * console, which need their columns.
 */
import { createHash } from 'node:crypto';
import { constants as fsConstants, promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { DatasetManifest } from '../../../common/datasets';
import { safeFileName, uniqueFileName } from '../../../common/text';
import { writeJsonAtomic } from '../../util/atomic';
import { ownerTag } from '../../util/leftovers';
import { assertRegularFile } from '../../util/fs';
import { formatOf, type TableReadOptions } from '../records';
import { detectEncoding, FileChangedError } from '../text';
import { listDatasets } from './library';
import { normalizedText } from './normalize';
import { expandImportPaths } from './paths';
import { ShardWriter } from './shards';
import { TextStats } from './stats';

export interface ImportProgress {
  phase: 'read' | 'hash' | 'write';
  fraction: number;
  file: string;
  bytesDone: number;
  totalBytes: number;
}

export interface ImportOptions {
  /** workspace/datasets */
  root: string;
  /** Files or folders (walked recursively for .txt, .md, .jsonl, .csv, .tsv, .json). */
  paths: string[];
  name?: string;
  /** The field (jsonl/json) or column (csv/tsv) holding the text of table files. */
  field?: string;
  /** Display names of the sources (browser uploads arrive under generated names). */
  displayNames?: string[];
  source?: DatasetManifest['source'];
  signal?: AbortSignal;
  onProgress?: (p: ImportProgress) => void;
  /** The longest line, field, record or JSON element of a table file (default DEFAULT_MAX_RECORD). */
  maxRecord?: number;
  /** Refuses (throws) a file a folder's symbolic link leads to that the caller may not read. */
  mayRead?: (realPath: string, shown: string) => Promise<void>;
}

export interface ImportResult {
  manifest: DatasetManifest;
  /** True when the same content was already in the library (that dataset is returned). */
  duplicate: boolean;
}

export function slug(name: string): string {
  const s = name
    .normalize('NFKD')
    .replace(/[^\w.-]+/g, '-')
    .replace(/^[-.]+|[-.]+$/g, '')
    .toLowerCase()
    .slice(0, 40);
  return s || 'dataset';
}

/** A source's text, with a change to the file while it is read told in import terms. */
async function* changesRefused(texts: AsyncGenerator<string>, name: string) {
  try {
    yield* texts;
  } catch (err) {
    if (!(err instanceof FileChangedError)) throw err;
    throw new Error(
      `${name} changed while it was being imported (${err.detail}); nothing was imported`,
    );
  }
}

/** Where a dataset keeps its table files, as imported (its text is in the shards). */
export const SOURCES_DIR = 'sources';

/**
 * Keeps a copy of a table file in the dataset (`sources/<its name>`, made safe, " (2)" on a
 * clash), so the fine-tune wizard and the console can take its columns from the library. The
 * file must not have changed since it was measured.
 */
async function keepTable(
  tmp: string,
  file: string,
  shown: string,
  before: { size: number; mtimeMs: number },
  taken: string[],
): Promise<string> {
  const base = safeFileName(shown.split(/[\\/]/).pop() ?? '', 'table');
  const name = uniqueFileName(base, taken);
  taken.push(name);
  await fs.mkdir(path.join(tmp, SOURCES_DIR), { recursive: true });
  const dest = path.join(tmp, SOURCES_DIR, name);
  await fs.copyFile(file, dest, fsConstants.COPYFILE_FICLONE);
  const [now, copy] = await Promise.all([fs.stat(file), fs.stat(dest)]);
  if (now.mtimeMs !== before.mtimeMs || now.size !== before.size || copy.size !== before.size) {
    throw new Error(`${shown} changed while it was being imported; nothing was imported`);
  }
  return `${SOURCES_DIR}/${name}`;
}

/**
 * Imports files into the library; the same content again returns the existing dataset. Each
 * file's size and mtime are taken first; one that changes before it has been read through is
 * refused and nothing is imported.
 */
export async function importDataset(opts: ImportOptions): Promise<ImportResult> {
  const { signal } = opts;
  const skipped: string[] = [];
  const entries = await expandImportPaths(opts.paths, opts.displayNames, skipped, opts.mayRead);
  const files = entries.map((e) => e.file);
  const formats = files.map((f) => formatOf(f));
  // the size and mtime now: a file that differs by the end of its reading is refused
  const before = await Promise.all(entries.map((e) => assertRegularFile(e.file, e.name)));
  const sizes = before.map((st) => st.size);
  const totalBytes = sizes.reduce((a, b) => a + b, 0);
  const displayName = (i: number) => entries[i]!.name;
  // the encoding check refuses binary and empty files before anything is written
  const encodings: string[] = [];
  for (const f of files) encodings.push((await detectEncoding(f)).encoding);

  await fs.mkdir(opts.root, { recursive: true });
  const tmp = path.join(opts.root, `.import-${ownerTag()}`);
  await fs.mkdir(tmp, { recursive: true });
  const writer = new ShardWriter(tmp);
  try {
    const stats = new TextStats();
    const content = createHash('sha256');
    const problems: string[] = [...skipped];
    let done = 0;
    const fileInfo: DatasetManifest['files'] = [];
    const keptNames: string[] = [];
    for (const [i, file] of files.entries()) {
      const name = displayName(i);
      const format = formats[i]!;
      let read = 0;
      const hash = createHash('sha256');
      const reading: TableReadOptions = {
        expect: { size: sizes[i]!, mtimeMs: before[i]!.mtimeMs },
        onBytes: (b) => hash.update(b),
        ...(signal ? { signal } : {}),
        ...(opts.maxRecord !== undefined ? { maxRecord: opts.maxRecord } : {}),
      };
      const texts = normalizedText(file, format, opts.field, problems, reading);
      for await (const text of changesRefused(texts, name)) {
        signal?.throwIfAborted();
        stats.push(text);
        content.update(text, 'utf8');
        await writer.write(text);
        read = Math.min(sizes[i]!, read + Buffer.byteLength(text, 'utf8'));
        opts.onProgress?.({
          phase: 'read',
          fraction: totalBytes > 0 ? (done + read) / totalBytes : 1,
          file: name,
          bytesDone: done + read,
          totalBytes,
        });
      }
      done += sizes[i]!;
      opts.onProgress?.({
        phase: 'read',
        fraction: totalBytes > 0 ? done / totalBytes : 1,
        file: name,
        bytesDone: done,
        totalBytes,
      });
      const stored =
        format === 'text' ? undefined : await keepTable(tmp, file, name, before[i]!, keptNames);
      fileInfo.push({
        name,
        bytes: sizes[i]!,
        sha256: hash.digest('hex'),
        format,
        encoding: encodings[i]!,
        ...(stored ? { stored } : {}),
      });
    }
    await writer.close();
    const s = stats.finish();
    if (s.chars === 0 || s.nonEmptyLines === 0) {
      const names = fileInfo.map((f) => f.name).join(', ');
      throw new Error(
        `No text found in ${names}` +
          (opts.field ? ` (field "${opts.field}")` : '') +
          (problems[0] ? `: ${problems[0]}` : ''),
      );
    }
    const contentHash = content.digest('hex');
    const existing = (await listDatasets(opts.root)).find((d) => d.contentHash === contentHash);
    if (existing) {
      await fs.rm(tmp, { recursive: true, force: true });
      return { manifest: existing, duplicate: true };
    }
    const name =
      opts.name?.trim() ||
      (fileInfo.length === 1
        ? fileInfo[0]!.name.replace(/\.[^.]+$/, '')
        : path.basename(opts.paths[0]!).replace(/\.[^.]+$/, ''));
    const id = `${slug(name)}-${contentHash.slice(0, 8)}`;
    const distinct = [...new Set(formats)];
    const tableField = distinct.some((f) => f !== 'text') ? opts.field : undefined;
    const manifest: DatasetManifest = {
      version: 1,
      id,
      name,
      createdAt: new Date().toISOString(),
      contentHash,
      format: distinct.length === 1 ? distinct[0]! : 'mixed',
      ...(tableField ? { field: tableField } : {}),
      files: fileInfo,
      shards: writer.names,
      stats: s,
      warnings: problems.slice(0, 20),
      problemCount: problems.length,
      ...(opts.source ? { source: opts.source } : {}),
      tokenCounts: {},
    };
    await writeJsonAtomic(path.join(tmp, 'manifest.json'), manifest);
    const final = path.join(opts.root, id);
    await fs.rm(final, { recursive: true, force: true });
    await fs.rename(tmp, final);
    return { manifest, duplicate: false };
  } catch (err) {
    await writer.abandon();
    await fs.rm(tmp, { recursive: true, force: true });
    throw err;
  }
}
