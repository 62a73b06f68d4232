import type { MenuItemConstructorOptions } from 'electron';
import { describe, expect, it, vi } from 'vitest';
import { HELP_URL, menuTemplate } from '../../src/main/menu';
import { isAllowedExternal } from '../../src/main/security';

const actions = {
  chooseWorkspace: vi.fn(),
  setTheme: vi.fn(),
  setLanguage: vi.fn(),
  openLink: vi.fn(),
};
const sub = (m: MenuItemConstructorOptions | undefined) =>
  (m?.submenu ?? []) as MenuItemConstructorOptions[];

describe('application menu', () => {
  for (const isMac of [false, true]) {
    it(`has app/file, edit, view and help menus (${isMac ? 'macOS' : 'Linux/Windows'})`, () => {
      const t = menuTemplate({
        isMac,
        isDev: false,
        appName: 'GPT Studio',
        settings: { theme: 'dark', language: 'zh-CN' },
        actions,
      });
      const labels = t.map((m) => m.label ?? m.role);
      expect(labels).toEqual([
        ...(isMac ? ['GPT Studio'] : []),
        'File',
        'editMenu',
        'View',
        'help',
      ]);
      const view = sub(t.find((m) => m.label === 'View'));
      // no reload or devtools outside development
      expect(view.some((i) => i.role === 'toggleDevTools' || i.role === 'reload')).toBe(false);
      const theme = sub(view.find((i) => i.label === 'Theme'));
      expect(theme.filter((i) => i.checked).map((i) => i.label)).toEqual(['Dark']);
      const lang = sub(view.find((i) => i.label === 'Language'));
      expect(lang.filter((i) => i.checked).map((i) => i.label)).toEqual(['简体中文']);
      theme[1]!.click!(undefined as never, undefined, undefined as never);
      expect(actions.setTheme).toHaveBeenLastCalledWith('light');
      sub(t.at(-1))[0]!.click!(undefined as never, undefined, undefined as never);
      expect(actions.openLink).toHaveBeenLastCalledWith(HELP_URL);
      expect(isAllowedExternal(HELP_URL)).toBe(true);
    });
  }

  it('offers reload and devtools in development', () => {
    const t = menuTemplate({
      isMac: false,
      isDev: true,
      appName: 'x',
      settings: { theme: 'system', language: 'system' },
      actions,
    });
    const view = sub(t.find((m) => m.label === 'View'));
    expect(view.map((i) => i.role)).toContain('toggleDevTools');
  });
});
