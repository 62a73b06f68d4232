/**
 * A hostile client: the browser-mode token in hand, a real server on loopback, its engine host
 * forked on wasm, requests over a real WebSocket. One test per finding of the hardening review
 * (docs/security.md): each probe that once lost data, crashed or wedged the host must now be
 * refused or contained, and the host must keep answering everyone else.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { LIMITS, type ApiEvent } from '../../src/common/api';
import { startServer, type StudioServer } from '../../src/server/server';
import { Client, done } from './wsClient';

const SAMPLE_MODEL = path.resolve('resources/models/austen-tiny');
const TEXT = 'It is a truth universally acknowledged, that a single man in possession.\n';

let root: string;
let ws: string;
let outside: string;
let allowed: string;
let server: StudioServer;
let client: Client;
const logged: string[] = [];
const apiUrl = () => `ws://127.0.0.1:${server.port}/api?token=${server.token}`;

/** A pid whose process has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(String(r.stdout));
}

const failed = (e: ApiEvent | undefined) =>
  e?.type === 'job.failed' ? e.error.message : `not failed: ${JSON.stringify(e)}`;

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'gpt-studio-hostile-'));
  ws = path.join(root, 'workspace');
  outside = path.join(root, 'outside');
  allowed = path.join(root, 'allowed');
  for (const d of [ws, outside, allowed]) await fs.mkdir(d, { recursive: true });
  await fs.writeFile(path.join(outside, 'secret.txt'), TEXT);
  await fs.writeFile(path.join(allowed, 'corpus.txt'), TEXT.repeat(20));
  // what a crash left behind before this server started
  const dead = deadPid();
  await fs.mkdir(path.join(ws, 'runs', 'old', `.checkpoint-40.${dead}.tmp`), { recursive: true });
  await fs.writeFile(
    path.join(ws, 'runs', 'old', `.checkpoint-40.${dead}.tmp`, 'model.safetensors'),
    Buffer.alloc(4096),
  );
  await fs.mkdir(path.join(ws, 'datasets', `.import-${dead}-0123456789ab`), { recursive: true });
  await fs.mkdir(path.join(ws, 'uploads', `${dead}-0b5c9a1e-8f3b-4a7e-9c1d-2e3f4a5b6c7d`), {
    recursive: true,
  });
  server = await startServer({
    port: 0,
    workspace: ws,
    backend: 'wasm',
    allowPaths: [allowed],
    log: (m) => logged.push(m),
  });
  client = await Client.open(apiUrl());
});

afterAll(async () => {
  client?.ws.close();
  await server?.close();
  await fs.rm(root, { recursive: true, force: true });
});

describe('1. no request deletes or writes outside what the host created', () => {
  it('an import named through uploads/../ never removes the folder it names', async () => {
    const victim = path.join(ws, 'victim');
    await fs.mkdir(victim, { recursive: true });
    await fs.writeFile(path.join(victim, 'notes.txt'), TEXT.repeat(5));
    await fs.writeFile(path.join(victim, 'keep.txt'), 'mine');
    await fs.writeFile(path.join(victim, 'binary.dat'), Buffer.from([0, 1, 2, 0, 255, 0, 7, 0]));
    await fs.mkdir(path.join(ws, 'uploads'), { recursive: true });
    // a success and a failure: the old code removed the parent folder either way
    for (const name of ['notes.txt', 'binary.dat']) {
      const { jobId } = await client.invoke('datasets.import', {
        paths: [`${ws}/uploads/../victim/${name}`],
      });
      await client.waitFor(done(jobId));
    }
    expect((await fs.readdir(victim)).sort()).toEqual(['binary.dat', 'keep.txt', 'notes.txt']);
  });

  it('a path outside the workspace and --allow-path folders is refused, naming it and the flag', async () => {
    const secret = path.join(outside, 'secret.txt');
    const probes: Array<[string, unknown]> = [
      ['datasets.inspect', { path: secret }],
      ['datasets.import', { paths: [secret] }],
      ['finetune.columns', { file: secret }],
      ['console.dataset', { file: secret }],
      // one allowed path does not let a forbidden one through beside it
      ['datasets.import', { paths: [path.join(allowed, 'corpus.txt'), secret] }],
      ['checkpoints.import', { from: outside }],
      ['checkpoints.export', { model: SAMPLE_MODEL, out: path.join(outside, 'export') }],
      ['console.generate', { model: outside, prompt: 'x' }],
    ];
    for (const [name, params] of probes) {
      const r = await client.raw(name, params);
      expect(r.error?.code, name).toBe('forbidden');
      expect(r.error?.message, name).toMatch(/outside the folders browser mode may (read|write)/);
      expect(r.error?.message, name).toContain(outside);
      expect(r.error?.message, name).toContain('--allow-path');
    }
    await expect(fs.readdir(outside)).resolves.toEqual(['secret.txt']);
  });

  it('a symlink inside the workspace is judged by its real path', async () => {
    await fs.symlink(outside, path.join(ws, 'looks-inside'));
    const r = await client.raw('datasets.inspect', {
      path: path.join(ws, 'looks-inside/secret.txt'),
    });
    expect(r.error?.code).toBe('forbidden');
    expect(r.error?.message).toContain(path.join(outside, 'secret.txt'));
    // relative paths are the workspace's, and .. cannot climb out of it
    const up = await client.raw('datasets.inspect', { path: '../outside/secret.txt' });
    expect(up.error?.code).toBe('forbidden');
  });

  it("a folder's symbolic links are followed only where they stay inside", async () => {
    const folder = path.join(allowed, 'texts');
    await fs.mkdir(folder);
    await fs.writeFile(path.join(folder, 'own.txt'), TEXT.repeat(10));
    await fs.symlink(path.join(outside, 'secret.txt'), path.join(folder, 'leak.txt'));
    const { jobId } = await client.invoke('datasets.import', { paths: [folder] });
    const end = await client.waitFor(done(jobId));
    expect(end.type).toBe('job.done');
    const ds = (end as Extract<ApiEvent, { type: 'job.done' }>).result as {
      dataset: { files: Array<{ name: string }>; warnings: string[] };
    };
    expect(ds.dataset.files.map((f) => f.name)).toEqual([path.join('texts', 'own.txt')]);
    expect(ds.dataset.warnings.join('\n')).toMatch(
      /texts\/leak.txt: .*secret.txt is outside the folders browser mode may read.*; skipped/,
    );
  });

  it('a folder given with --allow-path may be read; the bundled resources may be read, not written', async () => {
    const r = await client.invoke('datasets.inspect', { path: path.join(allowed, 'corpus.txt') });
    expect(r.format).toBe('text');
    const info = await client.invoke('checkpoints.inspect', { model: SAMPLE_MODEL });
    expect(info.name).toBe('austen-tiny');
    const w = await client.raw('checkpoints.export', {
      model: SAMPLE_MODEL,
      out: path.join(SAMPLE_MODEL, 'inside-the-app'),
    });
    expect(w.error?.code).toBe('forbidden');
    expect(w.error?.message).toMatch(/may write/);
  });
});

describe('2. one bad frame never takes the server down', () => {
  const closeOf = (sock: WebSocket) =>
    new Promise<{ code: number; reason: string }>((resolve) =>
      sock.once('close', (code, reason) => resolve({ code, reason: String(reason) })),
    );

  it('an oversize message closes that connection alone (1009), with a reason', async () => {
    const bad = await Client.open(apiUrl());
    bad.ws.on('error', () => {});
    const closed = closeOf(bad.ws);
    bad.ws.send('x'.repeat(LIMITS.messageBytes + 1));
    expect(await closed).toEqual({
      code: 1009,
      reason: 'message too large: at most 16.0 MiB per message',
    });
    const info = await client.invoke('app.info', {});
    expect(info.pid).toBe(server.hostPid());
  });

  it('a text frame with invalid UTF-8 closes that connection alone (1007)', async () => {
    const pid = server.hostPid();
    const bad = await Client.open(apiUrl());
    bad.ws.on('error', () => {});
    const closed = closeOf(bad.ws);
    bad.ws.send(Buffer.from([0x7b, 0xc3, 0x28, 0x7d]), { binary: false });
    const c = await closed;
    expect(c.code).toBe(1007);
    expect(c.reason).toMatch(/UTF-8/i);
    expect((await client.invoke('app.info', {})).pid).toBe(pid);
    expect(logged.some((m) => /client connection was closed/.test(m))).toBe(true);
  });

  it('requests past their documented size get a clear error naming the field and limit', async () => {
    const prompt = 'a'.repeat(LIMITS.promptChars + 1);
    const r = await client.raw('console.generate', { model: SAMPLE_MODEL, prompt });
    expect(r.error?.code).toBe('bad-request');
    expect(r.error?.message).toMatch(/params\.prompt: a prompt is at most 100,000 characters/);
    const s = await client.raw('console.logprobs', {
      model: SAMPLE_MODEL,
      text: 'b'.repeat(LIMITS.scoreChars + 1),
    });
    expect(s.error?.message).toMatch(/params\.text: a text to score is at most 1,000,000/);
  });
});

describe('3. loading a model leaks nothing', () => {
  it('40 scoring requests on the sample model leave the engine holding what it held after the first', async () => {
    const text =
      'It is a truth universally acknowledged, that a single man in possession of a fortune';
    await client.invoke('console.logprobs', { model: SAMPLE_MODEL, text });
    const before = (await client.invoke('app.info', {})).memory;
    for (let i = 0; i < 40; i++) {
      await client.invoke(i % 2 ? 'console.logprobs' : 'console.score', {
        model: SAMPLE_MODEL,
        ...(i % 2 ? { text } : { context: text, candidates: [' wife', ' house'] }),
      } as never);
    }
    const after = (await client.invoke('app.info', {})).memory;
    // the model stays loaded once (the console's cache); only a causal mask per new length is added
    expect(after.tensors - before.tensors).toBeLessThanOrEqual(2);
    expect(after.bytes - before.bytes).toBeLessThan(1 << 20);
  });
});

describe('4. no request can wedge the host', () => {
  it('FIFOs and devices given as paths are refused by name, at once', async () => {
    if (process.platform === 'win32') return;
    const fifo = path.join(ws, 'pipe.txt');
    execFileSync('mkfifo', [fifo]);
    const t0 = Date.now();
    for (const [name, params] of [
      ['datasets.inspect', { path: fifo }],
      ['datasets.import', { paths: [fifo] }],
      ['finetune.columns', { file: fifo }],
    ] as const) {
      const r = await client.raw(name, params);
      expect(r.error?.message, name).toMatch(
        /pipe\.txt is a FIFO \(named pipe\), not a regular file/,
      );
    }
    expect(Date.now() - t0).toBeLessThan(5000);
    // a link to a device is judged by what it points to
    await fs.symlink('/dev/zero', path.join(allowed, 'zeros.txt'));
    const z = await client.raw('datasets.inspect', { path: path.join(allowed, 'zeros.txt') });
    expect(z.error?.code).toBe('forbidden');
  });

  it('a long scoring request is a job: cancelled by its id, with other requests answered meanwhile', async () => {
    const text = 'It is a truth universally acknowledged. '.repeat(20_000);
    const earlier = new Set(client.events.map((x) => ('jobId' in x.event ? x.event.jobId : '')));
    const reply = client.raw('console.logprobs', { model: SAMPLE_MODEL, text });
    const started = await client.waitFor(
      (e) => e.type === 'job.started' && e.kind === 'score' && !earlier.has(e.jobId),
    );
    const jobId = (started as { jobId: string }).jobId;
    // answered while the scoring runs (once it did, the host answered no one until it ended)
    const info = await client.invoke('app.info', {});
    expect(info.pid).toBe(server.hostPid());
    const ended = (t: string) => t === 'job.done' || t === 'job.failed';
    expect(client.jobEvents(jobId).some((x) => ended(x.event.type))).toBe(false);
    await client.invoke('jobs.cancel', { jobId });
    expect((await reply).error?.code).toBe('cancelled');
  });

  it('open uploads are capped, and a client that goes away has its uploads closed and removed', async () => {
    const other = await Client.open(apiUrl());
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) {
      ids.push((await other.invoke('uploads.begin', { name: `f${i}.txt`, size: 10 })).uploadId);
    }
    const ninth = await other.raw('uploads.begin', { name: 'f9.txt', size: 10 });
    expect(ninth.error?.code).toBe('busy');
    expect(ninth.error?.message).toMatch(/8 uploads are open already \(at most 8\)/);
    const huge = await client.raw('uploads.begin', { name: 'huge.txt', size: 2 ** 50 });
    expect(huge.error?.code).toMatch(/too-large|busy/);
    const mine = (name: string) => name.startsWith(`${server.hostPid()}-`);
    expect((await fs.readdir(path.join(ws, 'uploads'))).filter(mine)).toHaveLength(8);
    other.ws.close();
    for (let t = 0; t < 100; t++) {
      if ((await fs.readdir(path.join(ws, 'uploads'))).filter(mine).length === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect((await fs.readdir(path.join(ws, 'uploads'))).filter(mine)).toEqual([]);
    // the slots are free again
    const again = await client.invoke('uploads.begin', { name: 'again.txt', size: 1 });
    await client.invoke('uploads.abort', again);
  });
});

describe('5. parsers are linear and bounded', () => {
  const importFails = async (file: string, extra: Record<string, unknown> = {}) => {
    const { jobId } = await client.invoke('datasets.import', { paths: [file], ...extra });
    return failed(await client.waitFor(done(jobId), 60_000));
  };

  it('a CSV with an unclosed quote stops at the field cap, naming the file and the line', async () => {
    const file = path.join(ws, 'unclosed.csv');
    await fs.writeFile(file, 'text,label\nfine,1\n"' + 'a'.repeat(17 * 2 ** 20));
    const t0 = Date.now();
    expect(await importFails(file, { field: 'text' })).toMatch(
      /unclosed\.csv: line 3: a quoted field runs past 16 MiB \(an unclosed quote\?\)/,
    );
    expect(Date.now() - t0).toBeLessThan(30_000);
  });

  it('a single 17 MiB JSONL line and JSON nested 5000 deep are refused by name', async () => {
    const line = path.join(ws, 'oneline.jsonl');
    await fs.writeFile(line, JSON.stringify({ text: 'w '.repeat(9 * 2 ** 20) }) + '\n');
    expect(await importFails(line, { field: 'text' })).toMatch(
      /oneline\.jsonl: line 1 is longer than 16 MiB/,
    );
    const deep = path.join(ws, 'deep.json');
    await fs.writeFile(deep, '['.repeat(5000) + ']'.repeat(5000));
    expect(await importFails(deep, { field: 'text' })).toMatch(
      /deep\.json: .*nested deeper than 1000 levels/,
    );
    expect((await client.invoke('app.info', {})).pid).toBe(server.hostPid());
  });
});

describe('6. checkpoint readers check before they allocate', () => {
  const copyOfSample = async (name: string) => {
    const dir = path.join(ws, name);
    await fs.cp(SAMPLE_MODEL, dir, { recursive: true });
    return dir;
  };
  const importFails = async (from: string) => {
    const { jobId } = await client.invoke('checkpoints.import', { from });
    return failed(await client.waitFor(done(jobId), 60_000));
  };

  it('config.json with n_layer 1e9 is refused at once, naming the file and the field', async () => {
    const dir = await copyOfSample('huge-config');
    const cfg = JSON.parse(await fs.readFile(path.join(dir, 'config.json'), 'utf8'));
    await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, n_layer: 1e9 }));
    const t0 = Date.now();
    expect(await importFails(dir)).toMatch(/config\.json: n_layer 1000000000 gives .* parameters/);
    expect(Date.now() - t0).toBeLessThan(10_000); // was 23 s and 2.4 GB before failing
  });

  it('a 3 GiB safetensors file with a bad header is refused without reading it', async () => {
    const dir = await copyOfSample('bad-header');
    const file = path.join(dir, 'model.safetensors');
    await fs.writeFile(file, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0]));
    await fs.truncate(file, 3 * 2 ** 30); // sparse: no disk used
    const t0 = Date.now();
    expect(await importFails(dir)).toMatch(/model\.safetensors: header length \d+ is larger than/);
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});

describe('7. memory checks match what runs', () => {
  it('12 x 640 at batch 1 fits the wasm heap; 48 layers of it is refused with advice', async () => {
    const ask = (nLayer: number) =>
      client.invoke('models.estimate', {
        vocabSize: 2048,
        preset: 'tiny',
        model: { nLayer, nEmbd: 640 },
        batchSize: 1,
      });
    const wide = await ask(12);
    expect(wide.fits).toBe(true);
    // the bench's memory-12x640 trains it for real: its wasm heap reached 1,228 MiB
    expect(wide.memory.totalBytes).toBeGreaterThan(1228 * 2 ** 20);
    const deep = await ask(48);
    expect(deep.fits).toBe(false);
    expect(deep.advice).toMatch(/smaller preset|fewer layers|narrower/);
  });
});

describe('8. nothing is left behind', () => {
  it('on start, what dead processes left in the workspace is removed, and the server says so', async () => {
    const runs = await fs.readdir(path.join(ws, 'runs', 'old'));
    expect(runs).toEqual([]);
    const datasets = await fs.readdir(path.join(ws, 'datasets')).catch(() => []);
    expect(datasets.filter((n) => n.startsWith('.import-'))).toEqual([]);
    const line = logged.find((m) => m.includes('leftover'));
    expect(line).toMatch(/removed 3 leftovers \(.*\) of processes that are gone/);
    expect(line).toContain('half-written checkpoint');
  });

  it('a crash fails a non-training job without promising a checkpoint', async () => {
    const big = path.join(ws, 'big.txt');
    await fs.writeFile(big, TEXT.repeat(400_000));
    const { jobId } = await client.invoke('datasets.import', { paths: [big] });
    await client.waitFor((e) => e.type === 'job.started' && e.jobId === jobId);
    process.kill(server.hostPid()!, 'SIGKILL');
    const msg = failed(await client.waitFor(done(jobId)));
    expect(msg).toMatch(/crashed while this dataset.import job ran/);
    expect(msg).not.toMatch(/checkpoint/);
    // the restarted host answers, and sweeps what the killed one left
    for (let t = 0; t < 100 && !(await client.raw('app.info', {})).result; t++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const left = await fs.readdir(path.join(ws, 'datasets'));
    expect(left.filter((n) => n.startsWith('.import-'))).toEqual([]);
  });
});
