/**
 * The window's security settings (Electron's checklist), as plain data and pure functions so they
 * are unit-tested: webPreferences, the Content-Security-Policy, the external-link allow-list, the
 * permission policy and the app:// protocol's file mapping.
 */
import * as path from 'node:path';

/** The packaged renderer is served from this privileged, standard, secure scheme. */
export const APP_SCHEME = 'app';
export const APP_HOST = 'gpt-studio';
export const APP_ORIGIN = `${APP_SCHEME}://${APP_HOST}`;

/**
 * The CSP sent with every response of the renderer (a session header). No remote content: scripts,
 * styles, images, fonts and connections come from the app itself. `style-src 'unsafe-inline'`
 * is for Svelte's transitions (inline style attributes); scripts are never inline, never eval'd.
 * In development the dev server's WebSocket (hot reload) is allowed too.
 */
export function contentSecurityPolicy(devUrl?: string): string {
  const connect = ["'self'"];
  if (devUrl) {
    const u = new URL(devUrl);
    connect.push(`ws://${u.host}`);
  }
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "font-src 'self'",
    `connect-src ${connect.join(' ')}`,
    "worker-src 'self'",
    "manifest-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-src 'none'",
    "frame-ancestors 'none'",
    "object-src 'none'",
  ].join('; ');
}

/** Where external links may go (opened in the user's browser, never in the app). */
export const EXTERNAL_HOSTS = ['github.com', 'huggingface.co', 'arxiv.org'] as const;

export function isAllowedExternal(url: string): boolean {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  if (u.protocol !== 'https:' || u.username !== '' || u.password !== '') return false;
  return EXTERNAL_HOSTS.some((h) => u.hostname === h || u.hostname.endsWith(`.${h}`));
}

/** Permissions the app's own page may use; everything else (camera, geolocation…) is denied. */
const ALLOWED_PERMISSIONS = new Set(['clipboard-sanitized-write']);

export function permissionAllowed(
  permission: string,
  requestingUrl: string,
  isAppUrl: (u: string) => boolean,
): boolean {
  return ALLOWED_PERMISSIONS.has(permission) && isAppUrl(requestingUrl);
}

/**
 * The file an app:// URL names under the built renderer `root`, or null when it is not this
 * app's host or escapes the folder. `/` is index.html.
 */
export function resolveAppFile(root: string, url: string): string | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return null;
  }
  if (u.protocol !== `${APP_SCHEME}:` || u.host !== APP_HOST) return null;
  let rel: string;
  try {
    rel = decodeURIComponent(u.pathname);
  } catch {
    return null;
  }
  if (rel.includes('\0')) return null;
  if (rel === '/' || rel === '') rel = '/index.html';
  const base = path.resolve(root);
  const file = path.resolve(base, '.' + path.posix.normalize(rel));
  return file.startsWith(base + path.sep) ? file : null;
}
