/**
 * `pull` against a local mock Hub: the Hugging Face cache layout, resume after a cancel, hashes
 * checked, each refusal, offline, and a cache filled by someone else (Python) used as it is.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { findCachedSnapshot, repoFolderName, scanHubCache } from '../../../src/engine/hub/cache';
import {
  cachedGpt2,
  CURATED,
  safetensorsBytes,
  snapshotName,
} from '../../../src/engine/hub/catalog';
import { pullModel, type PullOptions, type PullProgress } from '../../../src/engine/hub/pull';
import { HubRefusal } from '../../../src/engine/hub/refuse';
import { readSourceInfo } from '../../../src/engine/checkpoint/source';
import { loadGpt2Weights } from '../../../src/engine/checkpoint/gpt2';
import { removeDir, tempDir } from '../helpers';
import { commitOf, MockHub, repoOf, tinyGpt2Files } from './mockHub';

let hub: MockHub;
let files: Map<string, Buffer>;
let cacheDir: string;
let root: string;

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  files = await tinyGpt2Files();
  const llama = new Map(files);
  llama.set(
    'config.json',
    Buffer.from(JSON.stringify({ model_type: 'llama', architectures: ['LlamaForCausalLM'] })),
  );
  const binOnly = new Map(files);
  binOnly.delete('model.safetensors');
  binOnly.set('pytorch_model.bin', Buffer.from('not really a pickle'));
  hub = new MockHub(
    new Map(
      [
        repoOf('tiny', files),
        repoOf('org/tiny-private', files, { private: true }),
        repoOf('org/tiny-gated', files, { gated: true }),
        repoOf('org/llama', llama),
        repoOf('org/bin-only', binOnly),
      ].map((r) => [r.id, r]),
    ),
  );
  await hub.start();
  root = await tempDir('gpt-studio-hub-');
});
afterAll(async () => {
  await hub.close();
  await removeDir(root);
});
beforeEach(async () => {
  cacheDir = await fs.mkdtemp(path.join(root, 'cache-'));
  hub.requests.length = 0;
  hub.corrupt.clear();
  hub.slow = null;
});

const pull = (o: Partial<PullOptions> & { repo: string }) =>
  pullModel({ endpoint: hub.url, cacheDir, ...o });

/** An address nothing listens on. */
async function closedPort(): Promise<string> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return `http://127.0.0.1:${port}`;
}

async function refusal(p: Promise<unknown>): Promise<HubRefusal> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HubRefusal);
  return err as HubRefusal;
}

describe('pull', () => {
  it('pulls a GPT-2 into the Hugging Face cache layout that the engine loads', async () => {
    const events: PullProgress[] = [];
    const r = await pull({ repo: 'tiny', onProgress: (e) => events.push(e) });
    const commit = commitOf('tiny');
    const repoDir = path.join(cacheDir, 'models--tiny');
    expect(r).toMatchObject({ commit, revision: 'main', cached: false });
    expect(r.dir).toBe(path.join(repoDir, 'snapshots', commit));
    expect(await fs.readFile(path.join(repoDir, 'refs', 'main'), 'utf8')).toBe(commit);
    // README.md is not a model file: not fetched
    expect(r.files).toEqual(['config.json', 'merges.txt', 'model.safetensors', 'vocab.json']);
    const weights = files.get('model.safetensors')!;
    // the blob is named by its sha256; the snapshot entry is a relative symlink to it
    const link = path.join(r.dir, 'model.safetensors');
    expect(await fs.readlink(link)).toBe(path.join('..', '..', 'blobs', sha256(weights)));
    expect(sha256(await fs.readFile(link))).toBe(sha256(weights));
    expect(r.downloadedBytes).toBe([...r.files].reduce((s, f) => s + files.get(f)!.length, 0));
    // the folder is a model the engine reads
    const info = await readSourceInfo(r.dir);
    expect(info.config.nLayer).toBe(2);
    const { params } = await loadGpt2Weights(link, info.config);
    expect(params.get('wte.weight')!.length).toBe(info.config.vocabSize * info.config.nEmbd);
    // progress: resolve, then bytes up to the total, then done
    expect(events[0]!.phase).toBe('resolve');
    const last = events.at(-1)!;
    expect(last).toMatchObject({ phase: 'done', fraction: 1 });
    const downloads = events.filter((e) => e.phase === 'download');
    expect(downloads.at(-1)!.bytes).toBe(downloads.at(-1)!.totalBytes);
    expect(downloads.every((e) => e.bytesPerSecond >= 0)).toBe(true);

    // a second pull downloads nothing
    hub.requests.length = 0;
    const again = await pull({ repo: 'tiny' });
    expect(again).toMatchObject({ cached: true, downloadedBytes: 0, dir: r.dir });
    expect(hub.requests.filter((q) => q.url.includes('/resolve/'))).toEqual([]);
  });

  it('resumes a download cancelled halfway with an HTTP Range, and checks the whole', async () => {
    hub.slow = { chunk: 512, delayMs: 10 };
    const size = files.get('model.safetensors')!.length;
    const controller = new AbortController();
    let atCancel = 0;
    const first = pull({
      repo: 'tiny',
      signal: controller.signal,
      onProgress: (e) => {
        if (e.file === 'model.safetensors' && e.bytes > 0 && !controller.signal.aborted) {
          const part = e.bytes - (e.totalBytes - size);
          if (part >= size / 2) {
            atCancel = part;
            controller.abort();
          }
        }
      },
    });
    await expect(first).rejects.toThrow();
    expect(atCancel).toBeGreaterThan(0);
    const blobs = path.join(cacheDir, 'models--tiny', 'blobs');
    const partial = (await fs.readdir(blobs)).find((f) => f.endsWith('.incomplete'))!;
    expect(partial).toBe(`${sha256(files.get('model.safetensors')!)}.incomplete`);
    const kept = (await fs.stat(path.join(blobs, partial))).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(size);

    hub.slow = null;
    hub.requests.length = 0;
    const r = await pull({ repo: 'tiny' });
    const ranged = hub.requests.filter((q) => q.range);
    expect(ranged.map((q) => q.range)).toContain(`bytes=${kept}-`);
    expect(r.downloadedBytes).toBe(size - kept);
    expect(sha256(await fs.readFile(path.join(r.dir, 'model.safetensors')))).toBe(
      sha256(files.get('model.safetensors')!),
    );
    expect((await fs.readdir(blobs)).some((f) => f.endsWith('.incomplete'))).toBe(false);
  });

  it('detects a corrupted file by its sha256 and keeps nothing of it', async () => {
    hub.corrupt.add('tiny/model.safetensors');
    const err = await refusal(pull({ repo: 'tiny' }));
    expect(err.code).toBe('corrupt');
    expect(err.message).toContain('tiny/model.safetensors is corrupted: its sha256 is');
    expect(err.message).toContain(sha256(files.get('model.safetensors')!));
    const blobs = await fs.readdir(path.join(cacheDir, 'models--tiny', 'blobs'));
    expect(blobs.some((f) => f.startsWith(sha256(files.get('model.safetensors')!)))).toBe(false);
    expect(await findCachedSnapshot(cacheDir, 'tiny', 'main')).toBeNull();
  });

  it('refuses a private repo without a token (401), and pulls it with one', async () => {
    const err = await refusal(pull({ repo: 'org/tiny-private' }));
    expect(err.code).toBe('needs-token');
    expect(err.message).toMatch(/private or gated.*401\/403.*HF_TOKEN \(or pass --token\)/);
    const ok = await pull({ repo: 'org/tiny-private', token: hub.token });
    expect(ok.files).toContain('model.safetensors');
    expect(hub.requests.filter((q) => q.url.includes('/resolve/')).every((q) => q.auth)).toBe(true);
  });

  it('refuses a gated repo without a token, and with a token it may not use', async () => {
    const gated = await refusal(pull({ repo: 'org/tiny-gated' }));
    expect(gated.code).toBe('needs-token');
    expect(gated.message).toContain('org/tiny-gated is gated');
    const wrong = await refusal(pull({ repo: 'org/tiny-gated', token: 'hf_wrong' }));
    expect(wrong.code).toBe('token-refused');
    expect(wrong.message).toContain('refused the token (403)');
    const bad = await refusal(pull({ repo: 'org/tiny-gated', token: 'nope' }));
    expect(bad.message).toContain('must start with hf_');
  });

  it('refuses a missing repo (404) and a missing revision', async () => {
    const missing = await refusal(pull({ repo: 'org/nothing-here' }));
    expect(missing.code).toBe('not-found');
    expect(missing.message).toContain(`org/nothing-here: no such model repo on ${hub.url} (404)`);
    const rev = await refusal(pull({ repo: 'tiny', revision: 'v9' }));
    expect(rev.code).toBe('revision-not-found');
    expect(rev.message).toContain('tiny has no revision "v9"');
    const badId = await refusal(pull({ repo: '../etc' }));
    expect(badId.code).toBe('bad-input');
  });

  it('refuses a repo that is not GPT-2, naming its model_type, before downloading', async () => {
    const err = await refusal(pull({ repo: 'org/llama' }));
    expect(err.code).toBe('not-gpt2');
    expect(err.message).toContain('model_type "llama"');
    expect(hub.requests.filter((q) => q.url.includes('/resolve/'))).toEqual([]);
  });

  it('refuses a repo with only pytorch_model.bin and points to a safetensors revision', async () => {
    const err = await refusal(pull({ repo: 'org/bin-only' }));
    expect(err.code).toBe('bin-only');
    expect(err.message).toContain('unpickling can run arbitrary code');
    expect(err.message).toContain('--revision refs/pr/1');
  });

  it('offline: uses a cached snapshot, else lists what is cached', async () => {
    await pull({ repo: 'tiny' });
    const nowhere = await closedPort();
    const r = await pull({ repo: 'tiny', endpoint: nowhere });
    expect(r.cached).toBe(true);
    expect(r.notes[0]).toMatch(/^offline \(ECONNREFUSED\): using the cached snapshot/);
    const err = await refusal(pull({ repo: 'org/tiny-private', endpoint: nowhere }));
    expect(err.code).toBe('offline');
    expect(err.message).toBe(
      `cannot reach ${nowhere} (ECONNREFUSED): offline. Cached models you can use without the network: tiny (main)`,
    );
    const flagged = await pull({ repo: 'tiny', offline: true });
    expect(flagged.notes[0]).toContain('HF_HUB_OFFLINE is set');
  });

  it("uses a cache Python's transformers filled, without downloading", async () => {
    // huggingface_hub's layout, written by hand: blobs by hash, relative links, refs/main
    const commit = commitOf('tiny');
    const repoDir = path.join(cacheDir, repoFolderName('tiny'));
    const snap = path.join(repoDir, 'snapshots', commit);
    await fs.mkdir(path.join(repoDir, 'blobs'), { recursive: true });
    await fs.mkdir(snap, { recursive: true });
    await fs.mkdir(path.join(repoDir, 'refs'), { recursive: true });
    for (const name of ['config.json', 'model.safetensors', 'vocab.json', 'merges.txt']) {
      const b = files.get(name)!;
      const blob = sha256(b);
      await fs.writeFile(path.join(repoDir, 'blobs', blob), b);
      await fs.symlink(path.join('..', '..', 'blobs', blob), path.join(snap, name));
    }
    await fs.writeFile(path.join(repoDir, 'refs', 'main'), commit);

    const found = await cachedGpt2(cacheDir);
    expect(found.map((s) => [snapshotName(s), s.commit])).toEqual([['tiny', commit]]);
    expect((await scanHubCache(cacheDir))[0]!.refs).toEqual(['main']);
    const r = await pull({ repo: 'tiny' });
    expect(r).toMatchObject({ cached: true, downloadedBytes: 0, dir: snap });
    expect(hub.requests.filter((q) => q.url.includes('/resolve/'))).toEqual([]);
  });
});

describe('the curated list', () => {
  it("sizes each model's safetensors as the Hub's files are (gpt2: 548,105,171 bytes)", () => {
    const gpt2 = CURATED.find((c) => c.repo === 'gpt2')!;
    expect(Math.abs(safetensorsBytes(gpt2.shape) - 548_105_171)).toBeLessThan(100_000);
    const xl = CURATED.find((c) => c.repo === 'gpt2-xl')!;
    expect(Math.abs(safetensorsBytes(xl.shape) - 6_431_829_964)).toBeLessThan(1_000_000);
    expect(CURATED.map((c) => c.repo)).toEqual([
      'distilgpt2',
      'gpt2',
      'gpt2-medium',
      'gpt2-large',
      'gpt2-xl',
    ]);
  });
});
