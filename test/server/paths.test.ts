import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostError } from '../../src/server/context';
import { isInside, PathGuard } from '../../src/server/paths';

let root: string;
let ws: string;
let res: string;
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'paths-'));
  ws = path.join(root, 'ws');
  res = path.join(root, 'resources');
  await fs.mkdir(ws);
  await fs.mkdir(res);
  await fs.writeFile(path.join(ws, 'a.txt'), 'a');
  await fs.writeFile(path.join(root, 'out.txt'), 'o');
});
afterAll(() => fs.rm(root, { recursive: true, force: true }));

const code = (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (e: unknown) => (e instanceof HostError ? e.apiError.code : String(e)),
  );

describe('the path guard', () => {
  it('compares whole path components, never string prefixes', () => {
    expect(isInside('/w/ws', '/w/ws')).toBe(true);
    expect(isInside('/w/ws', '/w/ws/a/b')).toBe(true);
    expect(isInside('/w/ws', '/w/ws-evil/a')).toBe(false);
    expect(isInside('/w/ws', '/w')).toBe(false);
    expect(isInside('/w/ws', '/w/ws/../x')).toBe(false);
    expect(isInside('/w/ws', '/w/ws/..foo')).toBe(true);
  });

  it('allow-list: the workspace and --allow-path folders; resources read-only', async () => {
    const g = new PathGuard({ mode: 'allow-list', allow: [] }, ws, res);
    expect(await g.existing('a.txt', 'f', 'file')).toBe(path.join(await fs.realpath(ws), 'a.txt'));
    expect(await code(g.existing(path.join(root, 'out.txt'), 'f'))).toBe('forbidden');
    expect(await code(g.existing(`${ws}-evil`, 'f'))).toBe('not-found');
    expect(await code(g.existing(res, 'f', 'dir'))).toBe('ok');
    expect(await code(g.destination(path.join(res, 'x'), 'f'))).toBe('forbidden');
    expect(await code(g.destination(path.join(ws, 'new', 'deeper'), 'f'))).toBe('ok');
    expect(await code(g.destination(path.join(ws, '..', 'x'), 'f'))).toBe('forbidden');
    const wider = new PathGuard({ mode: 'allow-list', allow: [root] }, ws, res);
    expect(await code(wider.existing(path.join(root, 'out.txt'), 'f'))).toBe('ok');
  });

  it('a destination through a dangling symlink is refused', async () => {
    const g = new PathGuard({ mode: 'allow-list', allow: [] }, ws, res);
    await fs.symlink(path.join(root, 'nowhere'), path.join(ws, 'dangling'));
    const r = g.destination(path.join(ws, 'dangling', 'out'), 'params.out');
    await expect(r).rejects.toThrow(/params.out: .*dangling is a symbolic link to nowhere/);
  });

  it('unrestricted (Electron) still refuses what is not a regular file or folder, by name', async () => {
    const g = new PathGuard({ mode: 'unrestricted' }, ws, res);
    expect(await code(g.existing(path.join(root, 'out.txt'), 'f', 'file'))).toBe('ok');
    await expect(g.existing('/dev/null', 'params.path', 'file')).rejects.toThrow(
      'params.path: /dev/null is a character device, not a regular file',
    );
    const fifo = path.join(root, 'fifo');
    execFileSync('mkfifo', [fifo]);
    await expect(g.existing(fifo, 'params.path')).rejects.toThrow(
      /fifo is a FIFO \(named pipe\), not a regular file or a folder/,
    );
    await fs.symlink('loop', path.join(root, 'loop'));
    await expect(g.existing(path.join(root, 'loop'), 'params.path')).rejects.toThrow(
      /loop is a symbolic link that loops/,
    );
  });
});
