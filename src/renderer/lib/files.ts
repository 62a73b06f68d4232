/**
 * Getting the user's files to the engine. In Electron the engine reads a dropped or picked file
 * from its own path. In browser mode a page cannot know paths, so the file is streamed to the
 * workspace in 1 MiB slices (`upload.*` requests): a multi-GB corpus never sits whole in the
 * renderer's memory.
 */
import { api } from './state.svelte';

const CHUNK = 1 << 20;

/** A dropped folder's files keep their path in it ("books/emma.txt"), as a picked folder's do. */
const dropPaths = new WeakMap<File, string>();

/** The file's path inside the folder it came in, else its name. */
export function relativePath(f: File): string {
  return f.webkitRelativePath || dropPaths.get(f) || f.name;
}

/** Recursively reads a dropped folder's entries. */
async function entryFiles(entry: FileSystemEntry): Promise<File[]> {
  if (entry.isFile) {
    const file = await new Promise<File>((resolve, reject) =>
      (entry as FileSystemFileEntry).file(resolve, reject),
    );
    // a file dropped on its own has fullPath "/name": only a folder's files get a path
    if (entry.fullPath.lastIndexOf('/') > 0) dropPaths.set(file, entry.fullPath.replace(/^\//, ''));
    return [file];
  }
  if (!entry.isDirectory) return [];
  const reader = (entry as FileSystemDirectoryEntry).createReader();
  const out: File[] = [];
  // readEntries returns at most ~100 entries per call: read until it returns none
  for (;;) {
    const batch = await new Promise<FileSystemEntry[]>((resolve, reject) =>
      reader.readEntries(resolve, reject),
    );
    if (batch.length === 0) break;
    for (const e of batch) out.push(...(await entryFiles(e)));
  }
  return out;
}

/** The files of a drop, folders walked recursively. */
export async function filesFromDrop(e: DragEvent): Promise<File[]> {
  const dt = e.dataTransfer;
  if (!dt) return [];
  const entries = [...dt.items]
    .filter((i) => i.kind === 'file')
    .map((i) => i.webkitGetAsEntry?.() ?? null);
  if (entries.length > 0 && entries.every((x) => x !== null)) {
    const files: File[] = [];
    for (const entry of entries) files.push(...(await entryFiles(entry!)));
    return files;
  }
  return [...dt.files];
}

/** Opens the system file picker. Resolves with [] when the user cancels. */
export function pickFiles(
  opts: { accept?: string; multiple?: boolean; directory?: boolean } = {},
): Promise<File[]> {
  return new Promise((resolve) => {
    const input = document.createElement('input');
    input.type = 'file';
    if (opts.accept) input.accept = opts.accept;
    input.multiple = opts.multiple ?? false;
    if (opts.directory) input.webkitdirectory = true;
    input.style.display = 'none';
    input.addEventListener('change', () => {
      resolve([...(input.files ?? [])]);
      input.remove();
    });
    input.addEventListener('cancel', () => {
      resolve([]);
      input.remove();
    });
    document.body.append(input);
    input.click();
  });
}

function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/**
 * A path the engine can read: in Electron the file's own path; in browser mode the file streamed
 * to workspace/uploads in 1 MiB slices. `onProgress` gets the fraction sent.
 */
export async function engineFilePath(
  file: File,
  onProgress?: (fraction: number) => void,
  signal?: AbortSignal,
): Promise<string> {
  const own = window.gptStudio?.pathForFile(file) ?? '';
  if (own) {
    onProgress?.(1);
    return own;
  }
  const { uploadId } = await api.invoke('uploads.begin', { name: file.name, size: file.size });
  try {
    for (let offset = 0; offset < file.size; offset += CHUNK) {
      signal?.throwIfAborted();
      const bytes = new Uint8Array(await file.slice(offset, offset + CHUNK).arrayBuffer());
      await api.invoke('uploads.chunk', { uploadId, offset, data: toBase64(bytes) });
      onProgress?.(Math.min(1, (offset + bytes.length) / Math.max(1, file.size)));
    }
    const { path } = await api.invoke('uploads.end', { uploadId });
    onProgress?.(1);
    return path;
  } catch (err) {
    await api.invoke('uploads.abort', { uploadId }).catch(() => {});
    throw err;
  }
}
