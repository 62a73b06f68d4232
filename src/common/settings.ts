/**
 * The app's settings, one schema for both modes. Electron's main keeps them with electron-store in
 * the user's app data (src/main/settings.ts); browser mode keeps the renderer's part in
 * `<workspace>/settings.json` (src/server/settings.ts). The renderer reads and writes its part
 * (`UiSettings`) through `settings.get` / `settings.set`, which the engine host's parent (main or
 * the server) answers itself: settings are never engine work. Pure: no Node APIs.
 */
import { z } from 'zod';
import { apiError, empty, req, type ApiError } from './schema';

export const THEMES = ['system', 'light', 'dark'] as const;
export const LANGUAGES = ['system', 'en', 'zh-CN'] as const;
export const BACKENDS = ['auto', 'webgpu', 'node-gpu', 'node', 'wasm', 'cpu'] as const;
export const MAX_RECENT_RUNS = 10;
/** The validation share's range, in percent (0 = no validation). */
export const VAL_PERCENT = { min: 0, max: 50 } as const;

/** What the renderer reads and writes. */
const uiShape = {
  theme: z.enum(THEMES),
  language: z.enum(LANGUAGES),
  /** The share of a corpus held out for validation, in percent: the Data page's and the wizard's. */
  valPercent: z.number().min(VAL_PERCENT.min).max(VAL_PERCENT.max),
};

export const uiSettingsSchema = z.object(uiShape);
export type UiSettings = z.infer<typeof uiSettingsSchema>;
/** `settings.set`'s params: any of the renderer's settings, nothing else. */
export const uiSettingsPatchSchema = z.object(uiShape).partial().strict();
export type UiSettingsPatch = z.infer<typeof uiSettingsPatchSchema>;

export const UI_DEFAULTS: Readonly<UiSettings> = {
  theme: 'system',
  language: 'system',
  valPercent: 10,
};

/** Everything Electron's main keeps: the renderer's settings and its own. */
export const settingsSchema = z.object({
  ...uiShape,
  /** Folder holding runs/ and datasets. */
  workspace: z.string().min(1),
  backend: z.enum(BACKENDS),
  /** Run ids, most recent first. */
  recentRuns: z.array(z.string().min(1).max(100)).max(MAX_RECENT_RUNS),
});
export type Settings = z.infer<typeof settingsSchema>;

export function defaultSettings(workspace: string): Settings {
  return { ...UI_DEFAULTS, workspace, backend: 'auto', recentRuns: [] };
}

/** The renderer's part of a whole settings object. */
export function uiPart(s: UiSettings): UiSettings {
  return { theme: s.theme, language: s.language, valPercent: s.valPercent };
}

/** Why settings were refused: the setting first, then what is wrong ("theme: Invalid option…"). */
export function describeSettingsIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((i) =>
      i.code === 'unrecognized_keys'
        ? `unknown setting(s) ${i.keys.join(', ')}`
        : `${i.path.map(String).join('.') || 'settings'}: ${i.message}`,
    )
    .join('; ');
}

/** What the user is told when a settings file could not be read and was set aside. */
export function corruptSettingsNotice(why: string, backupName: string): string {
  return `The settings file was unreadable (${why}); it was saved as ${backupName} and the settings were reset to their defaults.`;
}

export const settingsRequests = {
  /** The renderer's settings (language, theme, validation share). */
  'settings.get': req<typeof empty, UiSettings>(empty),
  /** Changes some of them and saves them; the result is all of them. */
  'settings.set': req<typeof uiSettingsPatchSchema, UiSettings>(uiSettingsPatchSchema),
};

export type SettingsRequestName = keyof typeof settingsRequests;

export function isSettingsRequest(name: string): name is SettingsRequestName {
  return Object.prototype.hasOwnProperty.call(settingsRequests, name);
}

/** Where a parent keeps the renderer's settings (electron-store, or the workspace's file). */
export interface SettingsHolder {
  get(): UiSettings;
  /** Saves the patch (already validated); throws with a message naming the file on failure. */
  set(patch: UiSettingsPatch): Promise<UiSettings> | UiSettings;
}

/** Answers a validated `settings.*` request from `holder`, as a reply without its id. */
export async function answerSettings(
  holder: SettingsHolder,
  name: SettingsRequestName,
  params: unknown,
): Promise<{ type: 'result'; result: UiSettings } | { type: 'error'; error: ApiError }> {
  try {
    if (name === 'settings.get') return { type: 'result', result: holder.get() };
    const patch = uiSettingsPatchSchema.safeParse(params ?? {});
    if (!patch.success) {
      const why = describeSettingsIssues(patch.error);
      return { type: 'error', error: apiError('bad-request', `settings.set: ${why}`) };
    }
    return { type: 'result', result: await holder.set(patch.data) };
  } catch (err) {
    return { type: 'error', error: apiError('internal', (err as Error).message) };
  }
}
