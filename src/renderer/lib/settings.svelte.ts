/**
 * The app's settings as the renderer sees them (language, theme, validation share): read with
 * `settings.get` each time the connection opens and written with `settings.set`, so they live
 * with the app (Electron's settings file, or browser mode's workspace) rather than in one
 * browser's storage. Until they are read, the defaults apply (the browser's language).
 */
import { UI_DEFAULTS, type UiSettings, type UiSettingsPatch } from '../../common/settings';
import { applyLanguage } from './i18n';
import { connection, api } from './state.svelte';
import { applyTheme } from './theme';

export const settings = $state<UiSettings>({ ...UI_DEFAULTS });
/** Why the last change could not be saved ('' when it was). */
export const settingsStatus = $state({ error: '' });

function apply(): void {
  applyLanguage(settings.language);
  applyTheme(settings.theme);
}

export async function loadSettings(): Promise<void> {
  try {
    Object.assign(settings, await api.invoke('settings.get', {}));
    apply();
  } catch {
    // not connected: read again when the connection opens
  }
}

/** Applies a change at once and saves it. */
export async function saveSettings(patch: UiSettingsPatch): Promise<void> {
  Object.assign(settings, patch);
  apply();
  try {
    Object.assign(settings, await api.invoke('settings.set', patch));
    settingsStatus.error = '';
  } catch (err) {
    settingsStatus.error = (err as Error).message;
  }
}

export function startSettings(): void {
  apply();
  connection.onState((s) => {
    if (s === 'open') void loadSettings();
  });
}
