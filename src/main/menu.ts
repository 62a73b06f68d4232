/**
 * The application menu as a template (plain data, so it is tested without Electron): app (macOS),
 * File, Edit, View (theme, language) and Help. Actions are injected.
 */
import type { MenuItemConstructorOptions } from 'electron';
import { LANGUAGES, THEMES, type Settings } from './settings';

export interface MenuActions {
  chooseWorkspace(): void;
  setTheme(theme: Settings['theme']): void;
  setLanguage(language: Settings['language']): void;
  /** Opens an allow-listed link in the user's browser. */
  openLink(url: string): void;
}

const THEME_LABELS: Record<Settings['theme'], string> = {
  system: 'Follow System',
  light: 'Light',
  dark: 'Dark',
};
const LANGUAGE_LABELS: Record<Settings['language'], string> = {
  system: 'Follow System',
  en: 'English',
  'zh-CN': '简体中文',
};

export const HELP_URL = 'https://github.com/karpathy/nanoGPT';

export function menuTemplate(opts: {
  isMac: boolean;
  isDev: boolean;
  appName: string;
  settings: Pick<Settings, 'theme' | 'language'>;
  actions: MenuActions;
}): MenuItemConstructorOptions[] {
  const { actions } = opts;
  const menus: MenuItemConstructorOptions[] = [];
  if (opts.isMac) {
    menus.push({
      label: opts.appName,
      submenu: [
        { role: 'about' },
        { type: 'separator' },
        { role: 'services' },
        { type: 'separator' },
        { role: 'hide' },
        { role: 'hideOthers' },
        { role: 'unhide' },
        { type: 'separator' },
        { role: 'quit' },
      ],
    });
  }
  menus.push({
    label: 'File',
    submenu: [
      { label: 'Choose Workspace…', click: () => actions.chooseWorkspace() },
      { type: 'separator' },
      opts.isMac ? { role: 'close' } : { role: 'quit' },
    ],
  });
  menus.push({ role: 'editMenu' });
  menus.push({
    label: 'View',
    submenu: [
      ...(opts.isDev
        ? ([
            { role: 'reload' },
            { role: 'toggleDevTools' },
            { type: 'separator' },
          ] as MenuItemConstructorOptions[])
        : []),
      { role: 'resetZoom' },
      { role: 'zoomIn' },
      { role: 'zoomOut' },
      { type: 'separator' },
      {
        label: 'Theme',
        submenu: THEMES.map((t) => ({
          label: THEME_LABELS[t],
          type: 'radio' as const,
          checked: opts.settings.theme === t,
          click: () => actions.setTheme(t),
        })),
      },
      {
        label: 'Language',
        submenu: LANGUAGES.map((l) => ({
          label: LANGUAGE_LABELS[l],
          type: 'radio' as const,
          checked: opts.settings.language === l,
          click: () => actions.setLanguage(l),
        })),
      },
      { type: 'separator' },
      { role: 'togglefullscreen' },
    ],
  });
  menus.push({
    role: 'help',
    submenu: [{ label: 'Learn More', click: () => actions.openLink(HELP_URL) }],
  });
  return menus;
}
