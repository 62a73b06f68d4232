/**
 * Leftovers: the temp files and folders a crash leaves behind (a half-written checkpoint, a staged
 * export, a dataset import, an upload). Every such name carries its writer's pid, so a sweep on
 * start can remove exactly those whose process is gone, and never another process's work.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs, type Dirent } from 'node:fs';
import * as path from 'node:path';
import { formatBytes } from '../../common/format';

/** `<pid>-<random hex>`: the part of a temp name that says which process owns it. */
export function ownerTag(): string {
  return `${process.pid}-${randomBytes(6).toString('hex')}`;
}

/** Names with an owner pid (group 1), and the older pid-less names (judged by age instead). */
const KINDS: Array<{ re: RegExp; what: string; dirOnly?: boolean; inUploads?: boolean }> = [
  { re: /^\.checkpoint-\d+\.(\d+)\.tmp$/, what: 'half-written checkpoint' },
  { re: /^\..+\.(\d+)-[0-9a-f]{12}\.tmp$/, what: 'half-written file' },
  { re: /^\.import-(\d+)-[0-9a-f]{12}$/, what: 'unfinished dataset import' },
  { re: /^\..+\.partial-(\d+)-[0-9a-f]{12}$/, what: 'unfinished export or model import' },
  { re: /^(\d+)-[0-9a-f-]{36}$/, what: 'unfinished upload', inUploads: true },
  // written before names carried a pid
  { re: /^\..+\.[0-9a-f]{12}\.tmp$/, what: 'half-written file' },
  { re: /^\.import-[0-9a-f]{12}$/, what: 'unfinished dataset import' },
  { re: /^\..+\.partial-[0-9a-f]{8}$/, what: 'unfinished export or model import' },
  { re: /^[0-9a-f-]{36}$/, what: 'unfinished upload', inUploads: true },
];

/** A pid-less leftover counts as abandoned once it is this old. */
export const LEGACY_LEFTOVER_AGE_MS = 60 * 60 * 1000;

export interface Leftover {
  path: string;
  what: string;
  bytes: number;
  /** The process that wrote it, when its name says. */
  pid?: number;
}

export function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, owned by someone else
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface SweepOptions {
  /** How deep below each root to look (the workspace's leftovers sit at most 3 levels down). */
  maxDepth?: number;
  isAlive?: (pid: number) => boolean;
  now?: number;
  /** Only report what would go. */
  dryRun?: boolean;
}

/** What kind of leftover `name` is, and its owner, or null for an ordinary entry. */
export function classifyLeftover(
  name: string,
  parentIsUploads: boolean,
): { what: string; pid?: number } | null {
  for (const k of KINDS) {
    if (!!k.inUploads !== parentIsUploads) continue;
    const m = k.re.exec(name);
    if (m) return m[1] !== undefined ? { what: k.what, pid: Number(m[1]) } : { what: k.what };
  }
  return null;
}

async function bytesOf(p: string): Promise<number> {
  const st = await fs.lstat(p).catch(() => null);
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  let total = 0;
  const entries = await fs.readdir(p).catch(() => [] as string[]);
  for (const e of entries) total += await bytesOf(path.join(p, e));
  return total;
}

/**
 * Removes, below each root, the leftovers whose owner process is gone (or, for names from before
 * owners were recorded, that are older than an hour). Symlinks are never followed.
 */
export async function sweepLeftovers(
  roots: readonly string[],
  opts: SweepOptions = {},
): Promise<Leftover[]> {
  const maxDepth = opts.maxDepth ?? 3;
  const alive = opts.isAlive ?? processAlive;
  const now = opts.now ?? Date.now();
  const found: Leftover[] = [];
  const visit = async (dir: string, depth: number): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    const inUploads = path.basename(dir) === 'uploads';
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isSymbolicLink()) continue;
      const kind = classifyLeftover(e.name, inUploads);
      if (kind) {
        if (kind.pid !== undefined ? alive(kind.pid) : await young(p, now)) continue;
        found.push({ path: p, bytes: await bytesOf(p), ...kind });
        if (!opts.dryRun) await fs.rm(p, { recursive: true, force: true }).catch(() => {});
        continue;
      }
      if (e.isDirectory() && depth < maxDepth) await visit(p, depth + 1);
    }
  };
  for (const root of roots) await visit(path.resolve(root), 1);
  return found;
}

async function young(p: string, now: number): Promise<boolean> {
  const st = await fs.lstat(p).catch(() => null);
  return !st || now - st.mtimeMs < LEGACY_LEFTOVER_AGE_MS;
}

/** "removed 2 leftovers (113.0 MiB) of processes that are gone: runs/a/.checkpoint-5.123.tmp (…)" */
export function describeSweep(removed: readonly Leftover[], base?: string): string {
  const total = removed.reduce((a, r) => a + r.bytes, 0);
  const list = removed
    .slice(0, 10)
    .map(
      (r) => `${base ? path.relative(base, r.path) : r.path} (${r.what}, ${formatBytes(r.bytes)})`,
    )
    .join(', ');
  const more = removed.length > 10 ? ` and ${removed.length - 10} more` : '';
  const n = removed.length;
  return `removed ${n} leftover${n === 1 ? '' : 's'} (${formatBytes(total)}) of processes that are gone: ${list}${more}`;
}
