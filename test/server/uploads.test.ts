import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiEvent, ReplyMessage } from '../../src/common/api';
import type { DatasetManifest, LibraryTable } from '../../src/common/datasets';
import { EngineHost } from '../../src/server/host';
import { Uploads } from '../../src/server/uploads';

let dir: string;
let host: EngineHost;
const replies = new Map<number, ReplyMessage>();
const events: ApiEvent[] = [];
let next = 1;

async function call(name: string, params: unknown): Promise<unknown> {
  const id = next++;
  await host.handle({ id, type: 'invoke', name, params });
  const r = replies.get(id);
  if (!r || r.type === 'event') throw new Error('no reply');
  if (r.type === 'error') throw Object.assign(new Error(r.error.message), r.error);
  return r.result;
}

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'uploads-'));
  host = new EngineHost({
    workspace: dir,
    backend: 'cpu',
    send: (m) => {
      if ('id' in m) replies.set(m.id as number, m);
      else if (m.type === 'event') events.push(m.event);
    },
  });
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('uploads (browser mode hands the engine a file in chunks)', () => {
  it('streams chunks in order to workspace/uploads and returns the path', async () => {
    const bytes = Buffer.from('héllo, wörld\n'.repeat(1000));
    const { uploadId } = (await call('uploads.begin', {
      name: 'corpus.txt',
      size: bytes.length,
    })) as {
      uploadId: string;
    };
    const half = 5000;
    await call('uploads.chunk', {
      uploadId,
      offset: 0,
      data: bytes.subarray(0, half).toString('base64'),
    });
    await expect(call('uploads.end', { uploadId })).rejects.toThrow(
      `upload corpus.txt: received ${half} of ${bytes.length} bytes`,
    );
    await expect(call('uploads.chunk', { uploadId, offset: 0, data: 'AAAA' })).rejects.toThrow(
      `params.offset: expected ${half} (chunks go in order), got 0`,
    );
    await call('uploads.chunk', {
      uploadId,
      offset: half,
      data: bytes.subarray(half).toString('base64'),
    });
    const { path: p } = (await call('uploads.end', { uploadId })) as { path: string };
    // the folder carries the host's pid, so a later host can tell a dead one's leftovers
    expect(p).toBe(path.join(dir, 'uploads', `${process.pid}-${uploadId}`, 'corpus.txt'));
    expect(await fs.readFile(p)).toEqual(bytes);
    await expect(call('uploads.end', { uploadId })).rejects.toThrow(/no open upload/);
  });

  it('refuses names with folders, and more bytes than announced; abort removes the file', async () => {
    await expect(call('uploads.begin', { name: '../evil.txt', size: 1 })).rejects.toThrow(
      /params.name: must be a file name/,
    );
    const { uploadId } = (await call('uploads.begin', { name: 'x.csv', size: 2 })) as {
      uploadId: string;
    };
    await expect(call('uploads.chunk', { uploadId, offset: 0, data: 'AAAAAA==' })).rejects.toThrow(
      'more bytes than the 2 announced',
    );
    await call('uploads.abort', { uploadId });
    await expect(
      fs.access(path.join(dir, 'uploads', `${process.pid}-${uploadId}`)),
    ).rejects.toThrow();
  });

  it('caps open uploads in number and declared bytes, and frees a slot on abort', async () => {
    const capped = new Uploads(path.join(dir, 'capped'), { maxOpen: 2, maxOpenBytes: 1000 });
    const a = await capped.begin('a.txt', 400);
    await capped.begin('b.txt', 400);
    await expect(capped.begin('c.txt', 1)).rejects.toThrow(
      /upload c.txt: 2 uploads are open already \(at most 2\)/,
    );
    await capped.abort(a.uploadId);
    await expect(capped.begin('d.txt', 700)).rejects.toThrow(
      /upload d.txt: 700.*past the .* allowed at once/,
    );
    await expect(capped.begin('e.txt', 600)).resolves.toHaveProperty('uploadId');
    expect(capped.openCount).toBe(2);
    await capped.closeAll();
    expect(capped.openCount).toBe(0);
    expect(await fs.readdir(path.join(dir, 'capped'))).toEqual([]);
  });

  it('refuses a declared size that the disk cannot hold', async () => {
    const u = new Uploads(path.join(dir, 'disk'));
    await expect(u.begin('huge.bin', 2 ** 52)).rejects.toThrow(
      /upload huge.bin: .*(does not fit in the .* free|past the .* allowed)/,
    );
  });

  it('release removes only the uploads this host handed out, never a path it is given', async () => {
    const u = new Uploads(path.join(dir, 'rel', 'uploads'));
    const victim = path.join(dir, 'rel', 'keep', 'file.txt');
    await fs.mkdir(path.dirname(victim), { recursive: true });
    await fs.writeFile(victim, 'mine');
    // a path that *looks* like an upload (under uploads/, via ..) is not one
    await u.release(path.join(dir, 'rel', 'uploads', '..', 'keep', 'file.txt'));
    await u.release(victim);
    expect(await fs.readFile(victim, 'utf8')).toBe('mine');
    const { uploadId } = await u.begin('x.txt', 1);
    await u.chunk(uploadId, 0, Buffer.from('x').toString('base64'));
    const { path: p } = await u.end(uploadId);
    expect(u.isUpload(p)).toBe(true);
    await u.release(p);
    await expect(fs.access(path.dirname(p))).rejects.toThrow();
    expect(u.isUpload(p)).toBe(false);
  });

  it("the host's shutdown closes and removes its unfinished uploads", async () => {
    const ws = path.join(dir, 'shutdown');
    const out: ReplyMessage[] = [];
    const other = new EngineHost({ workspace: ws, backend: 'cpu', send: (m) => out.push(m) });
    await other.handle({
      id: 1,
      type: 'invoke',
      name: 'uploads.begin',
      params: { name: 'a.txt', size: 5 },
    });
    expect(out.find((m) => 'id' in m && m.id === 1)).toMatchObject({ type: 'result' });
    expect(await fs.readdir(path.join(ws, 'uploads'))).toHaveLength(1);
    await other.shutdown();
    expect(await fs.readdir(path.join(ws, 'uploads'))).toEqual([]);
  });

  it('keeps the file names: the upload (made safe), and the table copies in the library', async () => {
    const upload = async (name: string, text: string) => {
      const bytes = Buffer.from(text);
      const { uploadId } = (await call('uploads.begin', { name, size: bytes.length })) as {
        uploadId: string;
      };
      await call('uploads.chunk', { uploadId, offset: 0, data: bytes.toString('base64') });
      return ((await call('uploads.end', { uploadId })) as { path: string }).path;
    };
    const poems = await upload('唐诗 三百首.txt', '床前明月光\n');
    expect(path.basename(poems)).toBe('唐诗 三百首.txt');
    expect(path.basename(await upload('notes: draft?.txt', 'x\n'))).toBe('notes_ draft_.txt');
    // two tables of the same name (from two folders) and a text file, imported as one dataset
    const a = await upload('reviews.csv', 'text,label\ngood film,pos\n');
    const b = await upload('reviews.csv', 'text,label\nbad film,neg\n');
    const { jobId } = (await call('datasets.import', {
      paths: [a, b, poems],
      names: ['2023/reviews.csv', '2024/reviews.csv', '唐诗 三百首.txt'],
      name: 'Reviews',
      field: 'text',
    })) as { jobId: string };
    await expect
      .poll(() => events.find((e) => e.type === 'job.done' && e.jobId === jobId), {
        timeout: 10_000,
      })
      .toBeTruthy();
    const done = events.find((e) => e.type === 'job.done' && e.jobId === jobId)!;
    const m = (done as { result: { dataset: DatasetManifest } }).result.dataset;
    expect(m.files.map((f) => [f.name, f.stored])).toEqual([
      ['2023/reviews.csv', 'sources/reviews.csv'],
      ['2024/reviews.csv', 'sources/reviews (2).csv'],
      ['唐诗 三百首.txt', undefined],
    ]);
    const folder = path.join(dir, 'datasets', m.id);
    expect(await fs.readFile(path.join(folder, 'sources', 'reviews (2).csv'), 'utf8')).toBe(
      'text,label\nbad film,neg\n',
    );
    // the uploads themselves are gone once imported; the library's copies stay
    await expect(fs.access(a)).rejects.toThrow();
    const tables = (await call('datasets.tables', {})) as LibraryTable[];
    expect(tables.filter((t) => t.dataset === m.id)).toEqual([
      expect.objectContaining({
        datasetName: 'Reviews',
        name: 'reviews.csv',
        format: 'csv',
        path: path.join(folder, 'sources', 'reviews.csv'),
      }),
      expect.objectContaining({
        name: 'reviews.csv',
        path: path.join(folder, 'sources', 'reviews (2).csv'),
      }),
    ]);
  });

  it('app.info names the bundled resources folder', async () => {
    const info = (await call('app.info', {})) as { resources: string };
    await expect(
      fs.access(path.join(info.resources, 'samples', 'austen.txt')),
    ).resolves.toBeUndefined();
  });
});
