/**
 * Every UI string goes through svelte-i18n, from the catalogs in ../i18n. The language follows the
 * browser's (the OS's) unless the user picked one in Settings (the `language` setting, kept with
 * the other settings by the app: ./settings.svelte.ts).
 */
import { addMessages, init, locale } from 'svelte-i18n';
import type { UiSettings } from '../../common/settings';

type LocaleDictionary = Parameters<typeof addMessages>[1];

/**
 * The catalogs: `i18n/<locale>.json` for the shell, and `i18n/<feature>.<locale>.json` for each
 * feature's pages (datasets, finetune, console, checkpoints); svelte-i18n merges them per locale.
 */
const catalogs = import.meta.glob<LocaleDictionary>('../i18n/*.json', {
  eager: true,
  import: 'default',
});

/** The catalogs of one locale, keyed by file name. */
export function catalogsFor(l: string): Array<LocaleDictionary> {
  return Object.entries(catalogs)
    .filter(([file]) => {
      const base = file
        .split('/')
        .pop()!
        .replace(/\.json$/, '');
      return base === l || base.endsWith(`.${l}`);
    })
    .map(([, messages]) => messages);
}

export const LOCALES = ['en', 'zh-CN'] as const;
export type Locale = (typeof LOCALES)[number];

/** The catalog for a language tag: any Chinese → zh-CN, everything else → English. */
export function matchLocale(tag: string | null | undefined): Locale {
  return tag && /^zh\b/i.test(tag) ? 'zh-CN' : 'en';
}

/** The browser's (the OS's) language. */
export function systemLocale(): Locale {
  return matchLocale(navigator.languages?.[0] ?? navigator.language);
}

/** The catalog a `language` setting picks ('system': the browser's). */
export function localeFor(language: UiSettings['language']): Locale {
  return language === 'system' ? systemLocale() : language;
}

/** Starts in the browser's language; the settings, once read, may change it (applyLanguage). */
export function setupI18n(): Locale {
  for (const l of LOCALES) for (const messages of catalogsFor(l)) addMessages(l, messages);
  const initial = systemLocale();
  void init({ fallbackLocale: 'en', initialLocale: initial });
  document.documentElement.lang = initial;
  return initial;
}

export function applyLanguage(language: UiSettings['language']): void {
  const l = localeFor(language);
  void locale.set(l);
  document.documentElement.lang = l;
}
