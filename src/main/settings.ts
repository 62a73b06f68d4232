/**
 * The app's settings: a JSON file (electron-store in the app; `conf`, its base, in tests) with a
 * schema. A corrupt file — not JSON, or values the schema refuses — is backed up as
 * `settings.json.corrupt-<timestamp>` and reset to the defaults, with a notice: never a crash.
 * Free of Electron: the store is made by an injected factory.
 */
import { existsSync, renameSync } from 'node:fs';
import * as path from 'node:path';

export const THEMES = ['system', 'light', 'dark'] as const;
export const LANGUAGES = ['system', 'en', 'zh-CN'] as const;
export const BACKENDS = ['auto', 'webgpu', 'node-gpu', 'node', 'wasm', 'cpu'] as const;
export const MAX_RECENT_RUNS = 10;

export interface Settings {
  /** Folder holding runs/ and datasets. */
  workspace: string;
  backend: (typeof BACKENDS)[number];
  theme: (typeof THEMES)[number];
  language: (typeof LANGUAGES)[number];
  /** Run ids, most recent first. */
  recentRuns: string[];
}

export const SETTINGS_NAME = 'settings';

/** JSON Schema per key, as electron-store/conf take it. */
export const settingsSchema = {
  workspace: { type: 'string', minLength: 1 },
  backend: { type: 'string', enum: [...BACKENDS] },
  theme: { type: 'string', enum: [...THEMES] },
  language: { type: 'string', enum: [...LANGUAGES] },
  recentRuns: {
    type: 'array',
    items: { type: 'string', minLength: 1, maxLength: 100 },
    maxItems: MAX_RECENT_RUNS,
  },
} as const;

export function defaultSettings(workspace: string): Settings {
  return { workspace, backend: 'auto', theme: 'system', language: 'system', recentRuns: [] };
}

/** The part of electron-store / conf used here. */
export interface SettingsStore {
  get<K extends keyof Settings>(key: K): Settings[K];
  set<K extends keyof Settings>(key: K, value: Settings[K]): void;
  readonly store: Settings;
  readonly path: string;
}

/** The options main passes to `new Store(...)` (electron-store) or `new Conf(...)` (tests). */
export interface StoreOptions {
  name: string;
  cwd: string;
  schema: typeof settingsSchema;
  defaults: Settings;
  clearInvalidConfig: false;
}

export interface OpenedSettings {
  settings: AppSettings;
  /** Set when the file was corrupt: what happened, for the user. */
  notice: string | null;
}

/** Opens the settings in `cwd`, backing up and resetting a corrupt file. */
export function openSettings(opts: {
  cwd: string;
  defaultWorkspace: string;
  create: (o: StoreOptions) => SettingsStore;
  now?: () => Date;
}): OpenedSettings {
  const storeOptions: StoreOptions = {
    name: SETTINGS_NAME,
    cwd: opts.cwd,
    schema: settingsSchema,
    defaults: defaultSettings(opts.defaultWorkspace),
    clearInvalidConfig: false,
  };
  try {
    const store = opts.create(storeOptions);
    void store.store; // reads and validates the whole file now, not at the first get
    return { settings: new AppSettings(store), notice: null };
  } catch (err) {
    const file = path.join(opts.cwd, `${SETTINGS_NAME}.json`);
    if (!existsSync(file)) throw err;
    const stamp = (opts.now?.() ?? new Date()).toISOString().replace(/[:.]/g, '-');
    const backup = `${file}.corrupt-${stamp}`;
    renameSync(file, backup);
    const store = opts.create(storeOptions);
    const why = (err as Error).message.split('\n')[0];
    return {
      settings: new AppSettings(store),
      notice: `The settings file was unreadable (${why}); it was saved as ${path.basename(backup)} and the settings were reset to their defaults.`,
    };
  }
}

/** Typed access; a value the schema refuses is reported, not thrown. */
export class AppSettings {
  constructor(readonly store: SettingsStore) {}

  get<K extends keyof Settings>(key: K): Settings[K] {
    return this.store.get(key);
  }

  all(): Settings {
    return { ...this.store.store };
  }

  /** Sets one value; returns an error message naming the setting when the value is refused. */
  set<K extends keyof Settings>(key: K, value: Settings[K]): string | null {
    if (!Object.prototype.hasOwnProperty.call(settingsSchema, key)) return `unknown setting ${key}`;
    try {
      this.store.set(key, value);
      return null;
    } catch (err) {
      return `${key}: ${(err as Error).message}`;
    }
  }

  /** Puts a run first in the recent list (no duplicates, at most MAX_RECENT_RUNS). */
  addRecentRun(id: string): string | null {
    const runs = [id, ...this.get('recentRuns').filter((r) => r !== id)].slice(0, MAX_RECENT_RUNS);
    return this.set('recentRuns', runs);
  }
}
