/**
 * `pull`: a GPT-2 model from the Hugging Face Hub (or a mirror: HF_ENDPOINT) into the shared
 * Hugging Face cache, as a snapshot folder the engine loads as it is. The official client
 * (@huggingface/hub) answers what the repo is (modelInfo: commit, config, files) and what each
 * file is (pathsInfo: size, and the LFS sha256 or git sha1 that names its blob, as the client's
 * own downloadFileToCacheDir does); the download itself is ours (./download.ts) because that
 * helper neither resumes, reports progress nor checks hashes.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { HubApiError, modelInfo, pathsInfo } from '@huggingface/hub';
import { fromHfConfigJson } from '../checkpoint/gpt2';
import {
  blobPath,
  findCachedSnapshot,
  isCommitHash,
  isUsableSnapshot,
  linkSnapshotFile,
  repoIdProblem,
  revisionProblem,
  scanHubCache,
  snapshotDir,
  writeRef,
} from './cache';
import { downloadBlob, DownloadHttpError, etagHash } from './download';
import * as refuse from './refuse';
import { HubRefusal } from './refuse';

export interface PullOptions {
  /** A repo id: gpt2, org/name. */
  repo: string;
  /** A branch, tag, commit or refs/pr/N (default main). */
  revision?: string;
  /** The Hub's address (default: $HF_ENDPOINT, else https://huggingface.co); the caller resolves it. */
  endpoint: string;
  /** An access token (hf_…), for gated and private repos. */
  token?: string;
  /** The hub cache folder ($HF_HOME/hub). */
  cacheDir: string;
  /** Use only what is cached ($HF_HUB_OFFLINE). */
  offline?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: PullProgress) => void;
  fetch?: typeof fetch;
}

export interface PullProgress {
  phase: 'resolve' | 'download' | 'done';
  /** The file being downloaded. */
  file?: string;
  /** Bytes of the files to download that are on disk (resumed parts included). */
  bytes: number;
  totalBytes: number;
  /** Download speed over this pull (resumed bytes not counted). */
  bytesPerSecond: number;
  /** Seconds left at that speed, null before there is a speed. */
  etaSeconds: number | null;
  fraction: number;
  message: string;
}

export interface PullResult {
  repo: string;
  revision: string;
  commit: string;
  /** The snapshot folder: the model's folder from now on. */
  dir: string;
  files: string[];
  /** The snapshot's bytes. */
  bytes: number;
  /** Bytes this pull fetched (0 when everything was cached). */
  downloadedBytes: number;
  /** Nothing had to be downloaded. */
  cached: boolean;
  notes: string[];
}

/** The files of a GPT-2 repo that the engine (or transformers) uses; the rest are not fetched. */
const WANTED = [
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'vocab.json',
  'merges.txt',
  'model.safetensors',
];

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
]);

/** Why a fetch could not reach the server (no network, refused, unknown host), or null. */
export function networkFailure(err: unknown): string | null {
  if (!(err instanceof TypeError) || err.message !== 'fetch failed') return null;
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code ?? '';
  if (code && !NETWORK_CODES.has(code)) return null;
  return code || cause?.message || 'the connection failed';
}

/** The Hub's answers, as a refusal that says what to do. */
function hubRefusal(
  err: unknown,
  o: { repo: string; revision: string; endpoint: string; token?: string; errorCode: string | null },
): unknown {
  if (!(err instanceof HubApiError)) return err;
  const s = err.statusCode;
  if (o.errorCode === 'RevisionNotFound') return refuse.revisionNotFound(o.repo, o.revision);
  if (o.errorCode === 'GatedRepo' && !o.token) return refuse.needsToken(o.repo, 'gated');
  if (s === 401 || s === 403) {
    return o.token
      ? refuse.tokenRefused(o.repo, s)
      : refuse.needsToken(o.repo, o.errorCode === 'GatedRepo' ? 'gated' : 'private-or-missing');
  }
  if (s === 404) return refuse.notFound(o.repo, o.endpoint);
  return new HubRefusal(
    'hub-error',
    `${o.repo}: the Hub at ${o.endpoint} answered ${s}: ${err.message}`,
  );
}

/** A download's 401/403 said as the metadata's would be; anything else as it is. */
function downloadRefusal(err: unknown, o: { repo: string; token?: string }): unknown {
  if (!(err instanceof DownloadHttpError) || (err.status !== 401 && err.status !== 403)) return err;
  return o.token ? refuse.tokenRefused(o.repo, err.status) : refuse.needsToken(o.repo, 'gated');
}

function checkInput(o: PullOptions, revision: string) {
  const bad = repoIdProblem(o.repo) ?? revisionProblem(revision);
  if (bad) throw new HubRefusal('bad-input', bad);
  if (o.token !== undefined && !o.token.startsWith('hf_')) {
    throw new HubRefusal(
      'bad-input',
      'the access token must start with hf_ (a user access token from https://huggingface.co/settings/tokens)',
    );
  }
  let url: URL | null = null;
  try {
    url = new URL(o.endpoint);
  } catch {
    url = null;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new HubRefusal('bad-input', `endpoint "${o.endpoint}" is not an http(s) address`);
  }
}

/** What the repo's metadata says before anything is downloaded: refusals come first. */
function checkRepo(
  repo: string,
  revision: string,
  info: { config?: unknown; filePaths?: string[] },
): string[] {
  const modelType = (info.config as { model_type?: unknown } | undefined)?.model_type;
  if (modelType !== undefined && modelType !== 'gpt2') throw refuse.notGpt2(repo, modelType);
  const files = info.filePaths ?? [];
  const has = (f: string) => files.includes(f);
  if (!has('model.safetensors')) {
    if (has('model.safetensors.index.json')) throw refuse.sharded(repo, revision);
    if (has('pytorch_model.bin')) throw refuse.binOnly(repo, revision);
    throw refuse.noWeights(repo, revision, files);
  }
  if (!has('config.json')) throw refuse.noWeights(repo, revision, files);
  if (!has('tokenizer.json') && !(has('vocab.json') && has('merges.txt'))) {
    throw refuse.noTokenizer(repo, revision);
  }
  return WANTED.filter(has);
}

/** The config.json just fetched: GPT-2, in a shape the engine runs. */
async function checkConfig(repo: string, file: string) {
  const json = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>;
  if (json.model_type !== 'gpt2') throw refuse.notGpt2(repo, json.model_type);
  fromHfConfigJson(json, `${repo}/config.json`);
}

interface Planned {
  file: string;
  size: number;
  etag: string;
  url: string;
}

/** Counts bytes and reports progress at most every 100 ms. */
function progressMeter(totalBytes: number, onProgress?: (p: PullProgress) => void) {
  const started = Date.now();
  let bytes = 0;
  let fetched = 0;
  let last = 0;
  const report = (file: string | undefined, force: boolean) => {
    const now = Date.now();
    if (!onProgress || (!force && now - last < 100)) return;
    last = now;
    const seconds = (now - started) / 1000;
    const speed = seconds > 0 ? fetched / seconds : 0;
    onProgress({
      phase: 'download',
      ...(file ? { file } : {}),
      bytes,
      totalBytes,
      bytesPerSecond: speed,
      etaSeconds: speed > 0 ? (totalBytes - bytes) / speed : null,
      fraction: totalBytes > 0 ? bytes / totalBytes : 1,
      message: file ? `downloading ${file}` : 'downloading',
    });
  };
  return {
    /** A resumed part (counted, not fetched now) or fresh bytes. */
    add(n: number, file: string, resumed: boolean) {
      bytes += n;
      if (!resumed) fetched += n;
      report(file, false);
    },
    flush: (file?: string) => report(file, true),
    get fetched() {
      return fetched;
    },
  };
}

async function snapshotResult(
  o: { repo: string; revision: string; commit: string; cacheDir: string },
  downloadedBytes: number,
  notes: string[],
): Promise<PullResult> {
  const s = await findCachedSnapshot(o.cacheDir, o.repo, o.commit);
  if (!s)
    throw new Error(`${snapshotDir(o.cacheDir, o.repo, o.commit)}: the snapshot is incomplete`);
  return {
    repo: o.repo,
    revision: o.revision,
    commit: o.commit,
    dir: s.dir,
    files: s.files,
    bytes: s.bytes,
    downloadedBytes,
    cached: downloadedBytes === 0,
    notes,
  };
}

/** Without the network: the cached snapshot, or a refusal that lists what is cached. */
async function fromCache(o: PullOptions, revision: string, cause: string): Promise<PullResult> {
  const s = await findCachedSnapshot(o.cacheDir, o.repo, revision);
  if (!s) {
    const usable = (await scanHubCache(o.cacheDir)).filter(isUsableSnapshot);
    throw refuse.offline(o.endpoint, cause, usable);
  }
  const note = `offline (${cause}): using the cached snapshot ${s.commit.slice(0, 10)} of ${o.repo}`;
  return snapshotResult({ ...o, revision, commit: s.commit }, 0, [note]);
}

/** The client's calls, with the signal, the token and the Hub's X-Error-Code kept for messages. */
function hubClient(o: PullOptions, revision: string) {
  const seen = { errorCode: null as string | null };
  const baseFetch = o.fetch ?? fetch;
  const hubFetch: typeof fetch = async (input, init) => {
    const res = await baseFetch(input, { ...init, ...(o.signal ? { signal: o.signal } : {}) });
    seen.errorCode = res.headers.get('x-error-code');
    return res;
  };
  return {
    common: { hubUrl: o.endpoint, fetch: hubFetch, ...(o.token ? { accessToken: o.token } : {}) },
    /** A client error as the refusal it means (an abort stays an abort). */
    refusal(err: unknown): unknown {
      o.signal?.throwIfAborted();
      return hubRefusal(err, { ...o, revision, ...seen });
    },
  };
}

type Client = ReturnType<typeof hubClient>;

/** The commit `revision` is at and the files to fetch, after every refusal the metadata allows. */
async function resolveRepo(
  o: PullOptions,
  revision: string,
  client: Client,
): Promise<{ commit: string; wanted: string[] } | { offline: string }> {
  let info;
  try {
    info = await modelInfo({
      ...client.common,
      name: o.repo,
      revision,
      additionalFields: ['sha', 'config', 'filePaths'],
    });
  } catch (err) {
    o.signal?.throwIfAborted();
    const offline = networkFailure(err);
    if (offline) return { offline };
    throw client.refusal(err);
  }
  if (info.gated && !o.token) throw refuse.needsToken(o.repo, 'gated');
  const wanted = checkRepo(o.repo, revision, info);
  if (!isCommitHash(info.sha)) {
    throw new HubRefusal('hub-error', `${o.repo}: the Hub gave no commit for ${revision}`);
  }
  return { commit: info.sha, wanted };
}

/** The wanted files the snapshot lacks, each with its size, hash and address. */
async function planDownloads(
  o: PullOptions,
  commit: string,
  wanted: string[],
  client: Client,
): Promise<Planned[]> {
  const snapshot = snapshotDir(o.cacheDir, o.repo, commit);
  const missing: string[] = [];
  for (const f of wanted) {
    if (!(await fs.stat(path.join(snapshot, f)).catch(() => null))?.isFile()) missing.push(f);
  }
  if (missing.length === 0) return [];
  let infos;
  try {
    infos = await pathsInfo({
      ...client.common,
      repo: { type: 'model', name: o.repo },
      paths: missing,
      revision: commit,
    });
  } catch (err) {
    throw client.refusal(err);
  }
  return missing.map((file) => {
    const d = infos.find((i) => i.path === file);
    const etag = d?.lfs?.oid ?? d?.oid;
    // the hash names the blob's file: nothing but a hash may
    if (!d || !etag || !etagHash(etag)) {
      throw new HubRefusal(
        'hub-error',
        `${o.repo}: the Hub gave no sha256 or git hash for ${file} at ${commit}`,
      );
    }
    const quoted = file.split('/').map(encodeURIComponent).join('/');
    const url = `${o.endpoint}/${o.repo}/resolve/${commit}/${quoted}`;
    return { file, size: d.lfs?.size ?? d.size, etag, url };
  });
}

/** Downloads (or finds) each planned blob and links it into the snapshot; the bytes fetched. */
async function fetchFiles(o: PullOptions, commit: string, plan: Planned[]): Promise<number> {
  const meter = progressMeter(
    plan.reduce((s, p) => s + p.size, 0),
    o.onProgress,
  );
  const headers: Record<string, string> = o.token ? { Authorization: `Bearer ${o.token}` } : {};
  for (const p of plan) {
    o.signal?.throwIfAborted();
    const blob = blobPath(o.cacheDir, o.repo, p.etag);
    const whole = await fs.stat(blob).catch(() => null);
    if (whole?.size === p.size) {
      meter.add(p.size, p.file, true);
    } else {
      let first = true;
      await downloadBlob({
        url: p.url,
        headers,
        dest: blob,
        size: p.size,
        etag: p.etag,
        name: `${o.repo}/${p.file}`,
        ...(o.fetch ? { fetch: o.fetch } : {}),
        ...(o.signal ? { signal: o.signal } : {}),
        onBytes: (n) => {
          meter.add(n, p.file, first || n < 0);
          first = false;
        },
      }).catch((err: unknown) => {
        throw downloadRefusal(err, o);
      });
    }
    const linked = await linkSnapshotFile(o.cacheDir, o.repo, commit, p.file, p.etag);
    // the config is the first file: a model the engine cannot run stops before its weights
    if (p.file === 'config.json') await checkConfig(o.repo, linked);
    meter.flush(p.file);
  }
  return meter.fetched;
}

export async function pullModel(o: PullOptions): Promise<PullResult> {
  const revision = o.revision ?? 'main';
  checkInput(o, revision);
  if (o.offline) return fromCache(o, revision, 'HF_HUB_OFFLINE is set');
  o.onProgress?.({
    phase: 'resolve',
    bytes: 0,
    totalBytes: 0,
    bytesPerSecond: 0,
    etaSeconds: null,
    fraction: 0,
    message: `asking ${o.endpoint} about ${o.repo}@${revision}`,
  });
  const client = hubClient(o, revision);
  const repo = await resolveRepo(o, revision, client);
  if ('offline' in repo) return fromCache(o, revision, repo.offline);
  const plan = await planDownloads(o, repo.commit, repo.wanted, client);
  const fetched = await fetchFiles(o, repo.commit, plan);
  if (!plan.some((p) => p.file === 'config.json')) {
    await checkConfig(
      o.repo,
      path.join(snapshotDir(o.cacheDir, o.repo, repo.commit), 'config.json'),
    );
  }
  await writeRef(o.cacheDir, o.repo, revision, repo.commit);
  const result = await snapshotResult({ ...o, revision, commit: repo.commit }, fetched, []);
  o.onProgress?.({
    phase: 'done',
    bytes: result.bytes,
    totalBytes: result.bytes,
    bytesPerSecond: 0,
    etaSeconds: 0,
    fraction: 1,
    message: result.cached ? `${o.repo} is already cached` : `pulled ${o.repo} to ${result.dir}`,
  });
  return result;
}
