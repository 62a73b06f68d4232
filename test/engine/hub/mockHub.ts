/**
 * A local stand-in for the Hugging Face Hub on 127.0.0.1, answering what @huggingface/hub and
 * our download call: model info (`api/models/<id>/revision/<rev>`), paths-info
 * (`api/models/<id>/paths-info/<rev>`) and `<id>/resolve/<rev>/<file>` (GET and HEAD; LFS files
 * redirect to a CDN path, with ETag, X-Linked-Etag, X-Linked-Size and Range). Repos can be
 * private, gated, missing a revision; files can be served corrupted or slowly.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import type { GPTConfig } from '../../../src/engine/model/config';
import { paramShapes } from '../../../src/engine/model/params';
import { writeSafetensors, type Tensor } from '../../../src/engine/checkpoint/safetensors';
import { randomParams, tinyCheckpointConfig } from '../helpers';
import { bpeTok, openAiConfig } from '../checkpoint/fixtures';

export interface MockRepo {
  id: string;
  /** revision → commit; `main` at least. */
  refs: Record<string, string>;
  /** commit → its files. */
  commits: Record<string, Map<string, Buffer>>;
  private?: boolean;
  gated?: boolean;
}

export interface SeenRequest {
  method: string;
  url: string;
  range?: string;
  auth?: string;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const gitSha1 = (b: Buffer) =>
  createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
/** Files stored with LFS on the Hub (everything big, and all weights). */
const isLfs = (name: string, b: Buffer) =>
  name.endsWith('.safetensors') || name.endsWith('.bin') || b.length > 10_000;
export const commitOf = (seed: string) => createHash('sha1').update(seed).digest('hex');

/** A tiny GPT-2 in the Hub's layout: config.json, model.safetensors (with mask buffers), tokenizer. */
export async function tinyGpt2Files(
  opts: { cfg?: Partial<GPTConfig>; seed?: number; tokenizerJson?: boolean } = {},
): Promise<Map<string, Buffer>> {
  const tok = await bpeTok(280);
  const cfg = tinyCheckpointConfig({ vocabSize: tok.vocabSize, ...opts.cfg });
  const tmp = await fs.mkdtemp(path.join((await import('node:os')).tmpdir(), 'mock-hub-'));
  try {
    await tok.save(tmp);
    const params = randomParams(cfg, opts.seed ?? 5);
    const tensors = new Map<string, Tensor>();
    for (const [name, shape] of paramShapes(cfg)) {
      tensors.set(name, { dtype: 'F32', shape, data: params.get(name)! });
    }
    const T = cfg.blockSize;
    const mask = new Float32Array(T * T);
    for (let i = 0; i < T; i++) for (let j = 0; j <= i; j++) mask[i * T + j] = 1;
    for (let i = 0; i < cfg.nLayer; i++) {
      tensors.set(`h.${i}.attn.bias`, { dtype: 'F32', shape: [1, 1, T, T], data: mask });
    }
    await writeSafetensors(path.join(tmp, 'model.safetensors'), tensors, { format: 'pt' });
    const files = new Map<string, Buffer>();
    files.set('config.json', Buffer.from(JSON.stringify(openAiConfig(cfg), null, 2)));
    files.set('model.safetensors', await fs.readFile(path.join(tmp, 'model.safetensors')));
    files.set('vocab.json', await fs.readFile(path.join(tmp, 'vocab.json')));
    files.set('merges.txt', await fs.readFile(path.join(tmp, 'merges.txt')));
    if (opts.tokenizerJson)
      files.set('tokenizer.json', await fs.readFile(path.join(tmp, 'tokenizer.json')));
    files.set('README.md', Buffer.from('---\nlicense: mit\n---\n# tiny gpt2\n'));
    return files;
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

export function repoOf(
  id: string,
  files: Map<string, Buffer>,
  extra: Partial<MockRepo> = {},
): MockRepo {
  const commit = commitOf(id);
  return { id, refs: { main: commit }, commits: { [commit]: files }, ...extra };
}

export class MockHub {
  readonly requests: SeenRequest[] = [];
  /** Files (repo/file) served with one byte flipped. */
  readonly corrupt = new Set<string>();
  /** Serve bodies in chunks of this many bytes with a pause between (to cancel halfway). */
  slow: { chunk: number; delayMs: number } | null = null;
  private server: http.Server | null = null;
  url = '';

  constructor(
    readonly repos: Map<string, MockRepo>,
    /** The token that may read private and gated repos. */
    readonly token = 'hf_mocktoken',
  ) {}

  async start(): Promise<string> {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        res.statusCode = 500;
        res.end(String(err));
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  private json(res: http.ServerResponse, status: number, body: unknown, errorCode?: string) {
    res.writeHead(status, {
      'Content-Type': 'application/json',
      ...(errorCode ? { 'X-Error-Code': errorCode } : {}),
    });
    res.end(JSON.stringify(body));
  }

  /** 401/403 for a repo the caller may not read, else null. */
  private denied(repo: MockRepo, auth: string | undefined, res: http.ServerResponse): boolean {
    if (!repo.private && !repo.gated) return false;
    if (auth === `Bearer ${this.token}`) return false;
    if (repo.gated && auth) {
      this.json(res, 403, { error: 'Access to this repo is restricted' }, 'GatedRepo');
    } else if (repo.gated) {
      this.json(res, 401, { error: 'Access to this repo is restricted' }, 'GatedRepo');
    } else {
      this.json(res, 401, { error: 'Repository Not Found' }, 'RepoNotFound');
    }
    return true;
  }

  private find(id: string, res: http.ServerResponse): MockRepo | null {
    const repo = this.repos.get(id);
    if (!repo) this.json(res, 404, { error: 'Repository Not Found' }, 'RepoNotFound');
    return repo ?? null;
  }

  private commit(repo: MockRepo, rev: string, res: http.ServerResponse): string | null {
    const commit = repo.commits[rev] ? rev : repo.refs[rev];
    if (!commit) this.json(res, 404, { error: `Invalid rev id: ${rev}` }, 'RevisionNotFound');
    return commit ?? null;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse) {
    const auth = req.headers.authorization;
    const url = new URL(req.url!, 'http://x');
    this.requests.push({
      method: req.method!,
      url: url.pathname,
      ...(req.headers.range ? { range: req.headers.range } : {}),
      ...(auth ? { auth } : {}),
    });
    let m = /^\/api\/models\/(.+)\/revision\/([^/]+)$/.exec(url.pathname);
    if (m) return this.modelInfo(decodeURIComponent(m[1]!), decodeURIComponent(m[2]!), auth, res);
    m = /^\/api\/models\/(.+)\/paths-info\/([^/]+)$/.exec(url.pathname);
    if (m && req.method === 'POST') {
      let body = '';
      for await (const chunk of req) body += String(chunk);
      const paths = (JSON.parse(body) as { paths: string[] }).paths;
      return this.pathsInfo(decodeURIComponent(m[1]!), decodeURIComponent(m[2]!), paths, auth, res);
    }
    m = /^\/cdn\/([0-9a-f]{64})$/.exec(url.pathname);
    if (m) return this.cdn(m[1]!, url.searchParams.get('f') ?? '', req, res);
    m = /^\/(.+?)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (m) {
      return this.resolve(
        decodeURIComponent(m[1]!),
        decodeURIComponent(m[2]!),
        decodeURIComponent(m[3]!),
        req,
        res,
      );
    }
    this.json(res, 404, { error: 'not found' });
  }

  private modelInfo(id: string, rev: string, auth: string | undefined, res: http.ServerResponse) {
    const repo = this.find(id, res);
    if (!repo || (repo.private && this.denied(repo, auth, res))) return;
    const commit = this.commit(repo, rev, res);
    if (!commit) return;
    const files = repo.commits[commit]!;
    const config = files.has('config.json')
      ? (JSON.parse(files.get('config.json')!.toString()) as Record<string, unknown>)
      : undefined;
    this.json(res, 200, {
      _id: commitOf(`id-${id}`).slice(0, 24),
      id,
      private: !!repo.private,
      gated: repo.gated ? 'manual' : false,
      sha: commit,
      pipeline_tag: 'text-generation',
      downloads: 0,
      likes: 0,
      lastModified: '2026-01-01T00:00:00.000Z',
      ...(config
        ? { config: { model_type: config.model_type, architectures: config.architectures } }
        : {}),
      siblings: [...files.keys()].map((rfilename) => ({ rfilename })),
    });
  }

  private pathsInfo(
    id: string,
    rev: string,
    paths: string[],
    auth: string | undefined,
    res: http.ServerResponse,
  ) {
    const repo = this.find(id, res);
    if (!repo || (repo.private && this.denied(repo, auth, res))) return;
    const commit = this.commit(repo, rev, res);
    if (!commit) return;
    const files = repo.commits[commit]!;
    this.json(
      res,
      200,
      paths
        .filter((p) => files.has(p))
        .map((p) => {
          const b = files.get(p)!;
          return {
            type: 'file',
            path: p,
            size: b.length,
            oid: gitSha1(b),
            ...(isLfs(p, b) ? { lfs: { oid: sha256(b), size: b.length, pointerSize: 134 } } : {}),
          };
        }),
    );
  }

  private resolve(
    id: string,
    rev: string,
    file: string,
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ) {
    const repo = this.find(id, res);
    if (!repo || this.denied(repo, req.headers.authorization, res)) return;
    const commit = this.commit(repo, rev, res);
    if (!commit) return;
    const b = repo.commits[commit]!.get(file);
    if (!b) return this.json(res, 404, { error: 'Entry not found' }, 'EntryNotFound');
    if (isLfs(file, b)) {
      const sha = sha256(b);
      res.writeHead(302, {
        Location: `/cdn/${sha}?f=${encodeURIComponent(`${id}/${file}`)}`,
        ETag: `"${sha}"`,
        'X-Linked-Etag': `"${sha}"`,
        'X-Linked-Size': String(b.length),
        'X-Repo-Commit': commit,
      });
      return res.end();
    }
    return this.send(b, `${id}/${file}`, `"${gitSha1(b)}"`, req, res, { 'X-Repo-Commit': commit });
  }

  private cdn(sha: string, name: string, req: http.IncomingMessage, res: http.ServerResponse) {
    for (const repo of this.repos.values()) {
      for (const files of Object.values(repo.commits)) {
        for (const b of files.values()) {
          if (sha256(b) === sha) return this.send(b, name, `"${sha}"`, req, res, {});
        }
      }
    }
    this.json(res, 404, { error: 'no such object' });
  }

  /** A body with Range support; corrupted or slowed when asked. */
  private async send(
    whole: Buffer,
    name: string,
    etag: string,
    req: http.IncomingMessage,
    res: http.ServerResponse,
    headers: Record<string, string>,
  ) {
    let b = whole;
    if (this.corrupt.has(name)) {
      b = Buffer.from(whole);
      b[b.length >> 1] = b[b.length >> 1]! ^ 0xff;
    }
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    let start = 0;
    let end = b.length - 1;
    let status = 200;
    if (range) {
      start = Number(range[1]);
      end = range[2] ? Math.min(Number(range[2]), end) : end;
      if (start > end) {
        res.writeHead(416, { 'Content-Range': `bytes */${b.length}` });
        return res.end();
      }
      status = 206;
    }
    const body = b.subarray(start, end + 1);
    res.writeHead(status, {
      ...headers,
      ETag: etag,
      'Accept-Ranges': 'bytes',
      'Content-Length': String(body.length),
      ...(status === 206 ? { 'Content-Range': `bytes ${start}-${end}/${b.length}` } : {}),
    });
    if (req.method === 'HEAD') return res.end();
    if (!this.slow) return res.end(body);
    for (let i = 0; i < body.length && !res.destroyed; i += this.slow.chunk) {
      res.write(body.subarray(i, i + this.slow.chunk));
      await new Promise((r) => setTimeout(r, this.slow!.delayMs));
    }
    res.end();
  }
}
