import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  choosePort,
  chooseToken,
  ENDPOINT_FILE,
  listen,
  readEndpoint,
  saveEndpoint,
} from '../../src/server/endpoint';
import { hostArgs } from '../../src/server/host';
import { exposureWarning, parseServeArgs } from '../../src/server/server';
import { SETTINGS_FILE, WorkspaceSettings } from '../../src/server/settings';

describe('serve flags', () => {
  it('binds loopback on a random port unless told otherwise', () => {
    const o = parseServeArgs([]);
    expect(o.host).toBeUndefined();
    expect(o.port).toBeUndefined();
    expect(o.workspace).toBeTruthy();
    expect(parseServeArgs(['--host', '0.0.0.0', '--port=8080', '--workspace', '/w'])).toMatchObject(
      { host: '0.0.0.0', port: 8080, workspace: '/w' },
    );
  });

  it('--new-token asks for a new token; it takes no value', () => {
    expect(parseServeArgs(['--new-token']).newToken).toBe(true);
    expect(parseServeArgs([]).newToken).toBeUndefined();
    expect(() => parseServeArgs(['--new-token=yes'])).toThrow(/--new-token takes no value/);
  });

  it('names the bad flag', () => {
    expect(() => parseServeArgs(['--port', 'x'])).toThrow(/--port must be an integer/);
    expect(() => parseServeArgs(['--host'])).toThrow(/--host needs a value/);
    expect(() => parseServeArgs(['--bogus'])).toThrow(/unknown option --bogus/);
  });

  it('the host takes its workspace from a flag or the environment', () => {
    const allowList = { mode: 'allow-list', allow: [] };
    expect(hostArgs(['--workspace', '/a'], {})).toEqual({
      workspace: '/a',
      backend: 'auto',
      paths: allowList,
    });
    expect(hostArgs([], { GPT_STUDIO_WORKSPACE: '/b', GPT_STUDIO_BACKEND: 'wasm' })).toEqual({
      workspace: '/b',
      backend: 'wasm',
      paths: allowList,
    });
    expect(hostArgs([], {}).workspace).toBe('./workspace');
  });

  it('paths: an allow-list by default (the workspace and each --allow-path), unrestricted on request', () => {
    expect(hostArgs(['--allow-path', '/x', '--allow-path', '/y'], {}).paths).toEqual({
      mode: 'allow-list',
      allow: ['/x', '/y'],
    });
    expect(hostArgs(['--paths', 'unrestricted'], {}).paths).toEqual({ mode: 'unrestricted' });
    expect(parseServeArgs(['--allow-path', 'rel', '--allow-path=/abs']).allowPaths).toEqual([
      path.resolve('rel'),
      '/abs',
    ]);
  });

  it('bound beyond loopback, the server warns that the token travels in clear text', () => {
    expect(exposureWarning(undefined)).toBeNull();
    expect(exposureWarning('127.0.0.1')).toBeNull();
    expect(exposureWarning('::1')).toBeNull();
    expect(exposureWarning('0.0.0.0')).toMatch(/token travel over plain HTTP.*SSH tunnel/s);
  });
});

describe('the port and token kept in the workspace', () => {
  let dir: string;
  const logs: string[] = [];
  const log = (m: string) => logs.push(m);
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gpt-studio-endpoint-'));
    logs.length = 0;
  });
  afterEach(() => fs.rm(dir, { recursive: true, force: true }));

  it('saves {port, token} readable by its owner only, and reads them back', async () => {
    expect(await readEndpoint(dir, log)).toBeNull();
    await saveEndpoint(dir, { port: 8123, token: 'ab'.repeat(32) });
    const file = path.join(dir, ENDPOINT_FILE);
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
    expect(await readEndpoint(dir, log)).toEqual({ port: 8123, token: 'ab'.repeat(32) });
    // atomic: no temp file is left beside it
    expect(await fs.readdir(dir)).toEqual([ENDPOINT_FILE]);
    expect(logs).toEqual([]);
  });

  it('a saved token and port are reused; --new-token and --port win; a bad file is named and ignored', async () => {
    const saved = { port: 8123, token: 'cd'.repeat(32) };
    expect(chooseToken({}, saved)).toBe(saved.token);
    const fresh = chooseToken({ newToken: true }, saved);
    expect(fresh).toMatch(/^[0-9a-f]{64}$/);
    expect(fresh).not.toBe(saved.token);
    expect(chooseToken({}, null)).toMatch(/^[0-9a-f]{64}$/);
    expect(chooseToken({ token: 't' }, saved)).toBe('t');
    expect(choosePort({}, saved)).toEqual({ port: 8123, fromSaved: true });
    expect(choosePort({ port: 9000 }, saved)).toEqual({ port: 9000, fromSaved: false });
    expect(choosePort({ port: 0 }, saved)).toEqual({ port: 0, fromSaved: false });
    expect(choosePort({}, null)).toEqual({ port: 0, fromSaved: false });

    const file = path.join(dir, ENDPOINT_FILE);
    for (const content of ['{"port": 8123,', JSON.stringify({ port: 'x', token: 'y' })]) {
      await fs.writeFile(file, content);
      logs.length = 0;
      expect(await readEndpoint(dir, log)).toBeNull();
      expect(logs).toHaveLength(1);
      expect(logs[0]).toContain(file);
      expect(logs[0]).toMatch(/a new port and token are used/);
    }
  });

  it('when the saved port is taken, serves on a free one and says so; a taken --port is an error', async () => {
    const squatter = http.createServer();
    await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', r));
    const taken = (squatter.address() as AddressInfo).port;
    const server = http.createServer();
    try {
      await expect(
        listen(server, '127.0.0.1', { port: taken, fromSaved: false }, log),
      ).rejects.toThrow(/EADDRINUSE/);
      const port = await listen(server, '127.0.0.1', { port: taken, fromSaved: true }, log);
      expect(port).not.toBe(taken);
      expect(port).toBeGreaterThan(0);
      expect(logs.join('\n')).toMatch(
        new RegExp(`port ${taken}.*is taken.*serving on port ${port}`),
      );
    } finally {
      server.close();
      squatter.close();
    }
  });
});

describe("browser mode's settings in the workspace", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gpt-studio-settings-'));
  });
  afterEach(() => fs.rm(dir, { recursive: true, force: true }));

  it('starts from the defaults and keeps changes across opens, each write whole', async () => {
    const a = (await WorkspaceSettings.open(dir)).settings;
    expect(a.get()).toEqual({ theme: 'system', language: 'system', valPercent: 10 });
    // two changes at once both land
    await Promise.all([a.set({ language: 'zh-CN' }), a.set({ valPercent: 1 })]);
    const { settings: b, notice } = await WorkspaceSettings.open(dir);
    expect(notice).toBeNull();
    expect(b.get()).toEqual({ theme: 'system', language: 'zh-CN', valPercent: 1 });
    expect(await fs.readdir(dir)).toEqual([SETTINGS_FILE]);
  });

  for (const [what, content, why] of [
    ['not JSON', '{"theme": "dark",', /not JSON/],
    ['a value the schema refuses', JSON.stringify({ theme: 'purple' }), /theme: /],
  ] as const) {
    it(`sets a corrupt file (${what}) aside and uses the defaults, with a notice`, async () => {
      const file = path.join(dir, SETTINGS_FILE);
      await fs.writeFile(file, content);
      const { settings, notice } = await WorkspaceSettings.open(
        dir,
        () => new Date('2026-01-02T03:04:05.678Z'),
      );
      const backup = 'settings.json.corrupt-2026-01-02T03-04-05-678Z';
      expect(notice).toContain(file);
      expect(notice).toContain(backup);
      expect(notice).toMatch(why);
      expect(await fs.readFile(path.join(dir, backup), 'utf8')).toBe(content);
      expect(settings.get().theme).toBe('system');
    });
  }
});
