/**
 * The app's settings: a JSON file (electron-store in the app; `conf`, its base, in tests) checked
 * against the one settings schema (src/common/settings.ts, which browser mode uses too). A corrupt
 * file — not JSON, or values the schema refuses — is backed up as
 * `settings.json.corrupt-<timestamp>` and reset to the defaults, with a notice: never a crash.
 * Free of Electron: the store is made by an injected factory.
 */
import { existsSync, renameSync } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import {
  corruptSettingsNotice,
  defaultSettings,
  describeSettingsIssues,
  MAX_RECENT_RUNS,
  settingsSchema,
  uiPart,
  type Settings,
  type SettingsHolder,
  type UiSettings,
  type UiSettingsPatch,
} from '../common/settings';

export {
  BACKENDS,
  defaultSettings,
  LANGUAGES,
  MAX_RECENT_RUNS,
  THEMES,
  type Settings,
} from '../common/settings';

export const SETTINGS_NAME = 'settings';

/** The same schema as JSON Schema per key, as electron-store/conf take it. */
export const settingsJsonSchema = z.toJSONSchema(settingsSchema).properties as Record<
  keyof Settings,
  Record<string, unknown>
>;

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
  schema: typeof settingsJsonSchema;
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
    schema: settingsJsonSchema,
    defaults: defaultSettings(opts.defaultWorkspace),
    clearInvalidConfig: false,
  };
  try {
    const store = opts.create(storeOptions);
    // reads and validates the whole file now, not at the first get
    const checked = settingsSchema.safeParse(store.store);
    if (!checked.success) throw new Error(describeSettingsIssues(checked.error));
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
      notice: corruptSettingsNotice(why ?? 'unknown error', path.basename(backup)),
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
    if (!Object.prototype.hasOwnProperty.call(settingsSchema.shape, key)) {
      return `unknown setting ${key}`;
    }
    const checked = settingsSchema.shape[key].safeParse(value);
    if (!checked.success) return `${key}: ${checked.error.issues[0]?.message ?? 'refused'}`;
    try {
      this.store.set(key, value);
      return null;
    } catch (err) {
      return `${key}: ${(err as Error).message}`;
    }
  }

  /** The renderer's settings (`settings.get`). */
  get ui(): UiSettings {
    return uiPart(this.all());
  }

  /** `settings.set`: the patch is validated already; a refusal throws with its message. */
  setUi(patch: UiSettingsPatch): UiSettings {
    for (const [key, value] of Object.entries(patch) as Array<[keyof UiSettings, never]>) {
      const err = this.set(key, value);
      if (err) throw new Error(`could not save the settings to ${this.store.path}: ${err}`);
    }
    return this.ui;
  }

  /** What answers the renderer's `settings.*` requests. */
  uiHolder(): SettingsHolder {
    return { get: () => this.ui, set: (patch) => this.setUi(patch) };
  }

  /** Puts a run first in the recent list (no duplicates, at most MAX_RECENT_RUNS). */
  addRecentRun(id: string): string | null {
    const runs = [id, ...this.get('recentRuns').filter((r) => r !== id)].slice(0, MAX_RECENT_RUNS);
    return this.set('recentRuns', runs);
  }
}
