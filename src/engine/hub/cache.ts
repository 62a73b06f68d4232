/**
 * The Hugging Face cache, laid out as huggingface_hub (Python's transformers) lays it out, so
 * both share downloads: `$HF_HOME/hub/models--org--name/` holds `blobs/<etag>` (one file per
 * content hash), `snapshots/<commit>/<file>` (relative symlinks to the blobs) and
 * `refs/<revision>` (the commit a branch or tag pointed at when it was fetched).
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import * as path from 'node:path';
import { writeFileAtomic } from '../util/atomic';

export type Env = Record<string, string | undefined>;

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

/** `$HF_HOME` (default `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`). */
export function hfHome(env: Env = process.env): string {
  if (env.HF_HOME) return path.resolve(env.HF_HOME);
  const xdg = env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(xdg, 'huggingface');
}

/** The hub cache: `$HF_HUB_CACHE`, else `$HF_HOME/hub`. */
export function hubCacheDir(env: Env = process.env): string {
  return env.HF_HUB_CACHE ? path.resolve(env.HF_HUB_CACHE) : path.join(hfHome(env), 'hub');
}

/** `$HF_ENDPOINT` without its trailing slash, else the Hub. */
export function hubEndpoint(env: Env = process.env): string {
  return (env.HF_ENDPOINT || DEFAULT_ENDPOINT).replace(/\/+$/, '');
}

/** `$HF_TOKEN` (or the older `$HUGGING_FACE_HUB_TOKEN`), else the token `hf auth login` saved. */
export async function hubToken(env: Env = process.env): Promise<string | undefined> {
  const fromEnv = env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN;
  if (fromEnv) return fromEnv.trim();
  const file = env.HF_TOKEN_PATH || path.join(hfHome(env), 'token');
  const saved = await fs.readFile(file, 'utf8').catch(() => '');
  return saved.trim() || undefined;
}

/** Whether `$HF_HUB_OFFLINE` asks for no network at all. */
export function hubOffline(env: Env = process.env): boolean {
  return /^(1|true|yes|on)$/i.test(env.HF_HUB_OFFLINE ?? '');
}

const REPO_ID = /^(?:[A-Za-z0-9][A-Za-z0-9_.-]*\/)?[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Why a repo id is not one the Hub accepts, or null when it is. */
export function repoIdProblem(id: string): string | null {
  if (!REPO_ID.test(id) || id.includes('--') || id.includes('..') || id.length > 96) {
    return `"${id}" is not a model repo id (expected a name like gpt2 or org/name: letters, digits, '-', '_', '.', one '/')`;
  }
  return null;
}

export const isCommitHash = (s: string) => /^[0-9a-f]{40}$/.test(s);

/** Why a revision cannot be a branch, tag or commit name, or null. */
export function revisionProblem(rev: string): string | null {
  if (
    rev.length === 0 ||
    rev.length > 200 ||
    rev.split('/').some((part) => part === '' || part === '.' || part === '..') ||
    /[\\\0\s~^:?*[]/.test(rev)
  ) {
    return `"${rev}" is not a revision (a branch, tag, commit or refs/pr/N)`;
  }
  return null;
}

/** `models--org--name`, the repo's folder in the cache. */
export const repoFolderName = (repoId: string) => `models--${repoId.split('/').join('--')}`;

export const repoDir = (cacheDir: string, repoId: string) =>
  path.join(cacheDir, repoFolderName(repoId));

export const snapshotDir = (cacheDir: string, repoId: string, commit: string) =>
  path.join(repoDir(cacheDir, repoId), 'snapshots', commit);

export const blobPath = (cacheDir: string, repoId: string, etag: string) =>
  path.join(repoDir(cacheDir, repoId), 'blobs', etag);

/** The commit `revision` pointed at when it was last fetched (a commit names itself). */
export async function readRef(
  cacheDir: string,
  repoId: string,
  revision: string,
): Promise<string | null> {
  if (isCommitHash(revision)) return revision;
  const file = path.join(repoDir(cacheDir, repoId), 'refs', ...revision.split('/'));
  const text = await fs.readFile(file, 'utf8').catch(() => null);
  const commit = text?.trim() ?? '';
  return isCommitHash(commit) ? commit : null;
}

export async function writeRef(
  cacheDir: string,
  repoId: string,
  revision: string,
  commit: string,
): Promise<void> {
  if (isCommitHash(revision)) return;
  const file = path.join(repoDir(cacheDir, repoId), 'refs', ...revision.split('/'));
  await writeFileAtomic(file, commit);
}

/**
 * Points `snapshots/<commit>/<file>` at `blobs/<etag>` with a relative symlink, as
 * huggingface_hub does; where symlinks are not allowed (Windows without developer mode) the
 * blob is copied instead.
 */
export async function linkSnapshotFile(
  cacheDir: string,
  repoId: string,
  commit: string,
  file: string,
  etag: string,
): Promise<string> {
  const target = path.join(snapshotDir(cacheDir, repoId, commit), ...file.split('/'));
  const blob = blobPath(cacheDir, repoId, etag);
  await fs.mkdir(path.dirname(target), { recursive: true });
  await fs.rm(target, { force: true });
  try {
    await fs.symlink(path.relative(path.dirname(target), blob), target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
    await fs.copyFile(blob, target);
  }
  return target;
}

/** A model snapshot in the cache. */
export interface CachedSnapshot {
  repoId: string;
  commit: string;
  /** The snapshot folder: a model folder the engine loads as it is. */
  dir: string;
  /** The refs (branches, tags, refs/pr/N) that point at it. */
  refs: string[];
  /** Its files (relative), each present (a dangling link is left out). */
  files: string[];
  /** Their bytes, the blobs' sizes. */
  bytes: number;
  /** config.json, when it parses. */
  config: Record<string, unknown> | null;
  /** When the snapshot was last written. */
  updatedAt: string;
}

async function listTree(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await listTree(path.join(dir, e.name), rel)));
    else out.push(rel);
  }
  return out;
}

/** The refs of a repo folder, as revision → commit. */
async function readRefs(dir: string): Promise<Map<string, string>> {
  const refs = new Map<string, string>();
  for (const name of await listTree(path.join(dir, 'refs'))) {
    const commit = (await fs.readFile(path.join(dir, 'refs', name), 'utf8').catch(() => '')).trim();
    if (isCommitHash(commit)) refs.set(name, commit);
  }
  return refs;
}

const readJson = (file: string) =>
  fs
    .readFile(file, 'utf8')
    .then((t) => JSON.parse(t) as unknown)
    .then((j) =>
      j && typeof j === 'object' && !Array.isArray(j) ? (j as Record<string, unknown>) : null,
    )
    .catch(() => null);

async function describeSnapshot(
  dir: string,
  repoId: string,
  commit: string,
  refs: string[],
): Promise<CachedSnapshot> {
  const files: string[] = [];
  let bytes = 0;
  let updated = 0;
  for (const rel of await listTree(dir)) {
    const st = await fs.stat(path.join(dir, rel)).catch(() => null);
    if (!st?.isFile()) continue;
    files.push(rel);
    bytes += st.size;
    const link = await fs.lstat(path.join(dir, rel));
    updated = Math.max(updated, link.mtimeMs);
  }
  return {
    repoId,
    commit,
    dir,
    refs,
    files: files.sort(),
    bytes,
    config: await readJson(path.join(dir, 'config.json')),
    updatedAt: new Date(updated || Date.now()).toISOString(),
  };
}

/** Every model snapshot in the cache (Python's downloads included), repos in name order. */
export async function scanHubCache(cacheDir: string): Promise<CachedSnapshot[]> {
  const out: CachedSnapshot[] = [];
  const repos = await fs.readdir(cacheDir).catch(() => [] as string[]);
  for (const folder of repos.sort()) {
    if (!folder.startsWith('models--')) continue;
    const repoId = folder.slice('models--'.length).split('--').join('/');
    const dir = path.join(cacheDir, folder);
    const refs = await readRefs(dir);
    const commits = await fs.readdir(path.join(dir, 'snapshots')).catch(() => [] as string[]);
    for (const commit of commits.filter(isCommitHash)) {
      const pointing = [...refs].filter(([, c]) => c === commit).map(([r]) => r);
      out.push(
        await describeSnapshot(path.join(dir, 'snapshots', commit), repoId, commit, pointing),
      );
    }
  }
  return out;
}

/** A snapshot the engine can load: config.json, model.safetensors and a tokenizer. */
export function isUsableSnapshot(s: Pick<CachedSnapshot, 'files'>): boolean {
  const has = (f: string) => s.files.includes(f);
  return (
    has('config.json') &&
    has('model.safetensors') &&
    (has('tokenizer.json') || (has('vocab.json') && has('merges.txt')))
  );
}

/** The cached snapshot of `repoId` at `revision`, when it is there and usable. */
export async function findCachedSnapshot(
  cacheDir: string,
  repoId: string,
  revision: string,
): Promise<CachedSnapshot | null> {
  const commit = await readRef(cacheDir, repoId, revision);
  if (!commit) return null;
  const dir = snapshotDir(cacheDir, repoId, commit);
  const refs = await readRefs(repoDir(cacheDir, repoId));
  const s = await describeSnapshot(
    dir,
    repoId,
    commit,
    [...refs].filter(([, c]) => c === commit).map(([r]) => r),
  );
  return isUsableSnapshot(s) ? s : null;
}
