import { describe, expect, it } from 'vitest';
import { hostArgs } from '../../src/server/host';
import { parseServeArgs } from '../../src/server/server';

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
    expect(hostArgs(['--workspace', '/a'], {})).toEqual({ workspace: '/a', backend: 'auto' });
    expect(hostArgs([], { GPT_STUDIO_WORKSPACE: '/b', GPT_STUDIO_BACKEND: 'wasm' })).toEqual({
      workspace: '/b',
      backend: 'wasm',
    });
    expect(hostArgs([], {}).workspace).toBe('./workspace');
  });
});
