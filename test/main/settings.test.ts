import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import Conf from 'conf';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  MAX_RECENT_RUNS,
  openSettings,
  type Settings,
  type SettingsStore,
  type StoreOptions,
} from '../../src/main/settings';
import { answerSettings } from '../../src/common/settings';

let cwd: string;
beforeEach(() => {
  cwd = mkdtempSync(path.join(tmpdir(), 'gpt-studio-settings-'));
});
afterEach(() => rmSync(cwd, { recursive: true, force: true }));

// electron-store is conf plus Electron's paths: the same options, `name` → `configName`
const create = ({ name, ...o }: StoreOptions) =>
  new Conf<Settings>({ ...o, configName: name, projectName: 'gpt-studio-test' }) as SettingsStore;
const open = () =>
  openSettings({
    cwd,
    defaultWorkspace: '/home/me/GPT Studio',
    create,
    now: () => new Date('2026-01-02T03:04:05.678Z'),
  });

describe('settings', () => {
  it('starts with the defaults', () => {
    const { settings, notice } = open();
    expect(notice).toBeNull();
    expect(settings.all()).toEqual({
      workspace: '/home/me/GPT Studio',
      backend: 'auto',
      theme: 'system',
      language: 'system',
      valPercent: 10,
      recentRuns: [],
    });
  });

  it("answers the renderer's settings.* requests from the same store, with the shared schema", async () => {
    const { settings } = open();
    const holder = settings.uiHolder();
    expect(holder.get()).toEqual({ theme: 'system', language: 'system', valPercent: 10 });
    const set = await answerSettings(holder, 'settings.set', { language: 'zh-CN', valPercent: 1 });
    expect(set).toEqual({
      type: 'result',
      result: { theme: 'system', language: 'zh-CN', valPercent: 1 },
    });
    // what browser mode refuses, main refuses, naming the setting; nothing is written
    for (const [params, field] of [
      [{ valPercent: 51 }, /^settings\.set: valPercent: /],
      [{ language: 'fr' }, /^settings\.set: language: /],
      [{ workspace: '/elsewhere' }, /unknown setting\(s\) workspace/],
    ] as const) {
      const r = await answerSettings(holder, 'settings.set', params);
      expect(r.type).toBe('error');
      if (r.type === 'error') expect(r.error.message).toMatch(field);
    }
    const again = open().settings;
    expect(again.get('language')).toBe('zh-CN');
    expect(again.get('valPercent')).toBe(1);
    expect(again.get('workspace')).toBe('/home/me/GPT Studio');
  });

  it('an older file without the newer settings gets their defaults', () => {
    writeFileSync(
      path.join(cwd, 'settings.json'),
      JSON.stringify({ workspace: '/w', theme: 'dark', language: 'en', backend: 'auto' }),
    );
    const { settings, notice } = open();
    expect(notice).toBeNull();
    expect(settings.ui).toEqual({ theme: 'dark', language: 'en', valPercent: 10 });
  });

  it('keeps valid values across opens', () => {
    const a = open().settings;
    expect(a.set('theme', 'dark')).toBeNull();
    expect(a.set('language', 'zh-CN')).toBeNull();
    expect(a.set('backend', 'wasm')).toBeNull();
    expect(a.set('workspace', '/data/ws')).toBeNull();
    const b = open().settings;
    expect(b.get('theme')).toBe('dark');
    expect(b.get('language')).toBe('zh-CN');
    expect(b.get('backend')).toBe('wasm');
    expect(b.get('workspace')).toBe('/data/ws');
  });

  it('refuses bad values, naming the setting, and keeps the old value', () => {
    const { settings } = open();
    const bad = (k: keyof Settings, v: unknown) => settings.set(k, v as never);
    expect(bad('theme', 'purple')).toMatch(/^theme: /);
    expect(bad('language', 'fr')).toMatch(/^language: /);
    expect(bad('backend', 'cuda')).toMatch(/^backend: /);
    expect(bad('workspace', '')).toMatch(/^workspace: /);
    expect(bad('recentRuns', [1, 2])).toMatch(/^recentRuns: /);
    expect(bad('valPercent', 80)).toMatch(/^valPercent: /);
    expect(bad('nope' as keyof Settings, 1)).toMatch(/unknown setting/);
    expect(settings.get('theme')).toBe('system');
    expect(settings.get('workspace')).toBe('/home/me/GPT Studio');
  });

  it('keeps recent runs unique, newest first, bounded', () => {
    const { settings } = open();
    for (let i = 0; i < MAX_RECENT_RUNS + 3; i++) expect(settings.addRecentRun(`r${i}`)).toBeNull();
    settings.addRecentRun('r5');
    const runs = settings.get('recentRuns');
    expect(runs).toHaveLength(MAX_RECENT_RUNS);
    expect(runs[0]).toBe('r5');
    expect(new Set(runs).size).toBe(runs.length);
  });

  for (const [what, content] of [
    ['not JSON', '{"theme": "dark",'],
    ['a value the schema refuses', JSON.stringify({ theme: 'purple', workspace: '/x' })],
  ] as const) {
    it(`backs up and resets a corrupt file (${what}) with a notice`, () => {
      const file = path.join(cwd, 'settings.json');
      writeFileSync(file, content);
      const { settings, notice } = open();
      expect(notice).toContain('settings.json.corrupt-2026-01-02T03-04-05-678Z');
      expect(notice).toMatch(/reset/);
      const backup = path.join(cwd, 'settings.json.corrupt-2026-01-02T03-04-05-678Z');
      expect(readFileSync(backup, 'utf8')).toBe(content);
      expect(settings.get('theme')).toBe('system');
      expect(settings.set('theme', 'light')).toBeNull();
      expect(JSON.parse(readFileSync(file, 'utf8')).theme).toBe('light');
      expect(readdirSync(cwd).sort()).toEqual([
        'settings.json',
        'settings.json.corrupt-2026-01-02T03-04-05-678Z',
      ]);
    });
  }

  it('does not invent a backup when there is no file', () => {
    open();
    expect(existsSync(path.join(cwd, 'settings.json'))).toBe(true);
    expect(readdirSync(cwd)).toEqual(['settings.json']);
  });
});
