import { describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { hostArgs } from '../../src/server/host';
import { exposureWarning, parseServeArgs } from '../../src/server/server';

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
