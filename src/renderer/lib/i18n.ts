/**
 * Every UI string goes through svelte-i18n, from the catalogs in ../i18n. The language follows the
 * browser's (the OS's) unless the user picked one in Settings (kept in localStorage for now).
 */
import { addMessages, init, locale } from 'svelte-i18n';

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
const STORAGE_KEY = 'gpt-studio.locale';

/** The catalog for a language tag: any Chinese → zh-CN, everything else → English. */
export function matchLocale(tag: string | null | undefined): Locale {
  return tag && /^zh\b/i.test(tag) ? 'zh-CN' : 'en';
}

function stored(): Locale | null {
  try {
    const v = localStorage.getItem(STORAGE_KEY);
    return v && (LOCALES as readonly string[]).includes(v) ? (v as Locale) : null;
  } catch {
    return null;
  }
}

export function setupI18n(): Locale {
  for (const l of LOCALES) for (const messages of catalogsFor(l)) addMessages(l, messages);
  const initial = stored() ?? matchLocale(navigator.languages?.[0] ?? navigator.language);
  void init({ fallbackLocale: 'en', initialLocale: initial });
  document.documentElement.lang = initial;
  return initial;
}

export function setLocale(l: Locale): void {
  void locale.set(l);
  document.documentElement.lang = l;
  try {
    localStorage.setItem(STORAGE_KEY, l);
  } catch {
    // storage unavailable: the choice lasts for this session
  }
}
