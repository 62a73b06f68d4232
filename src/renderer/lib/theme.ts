/**
 * Light and dark themes follow the OS (prefers-color-scheme) unless one is picked in Settings (the
 * `theme` setting: ./settings.svelte.ts).
 */
import { THEMES, type UiSettings } from '../../common/settings';

export { THEMES };
export type Theme = UiSettings['theme'];

export function applyTheme(t: Theme): void {
  if (t === 'system') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = t;
}
