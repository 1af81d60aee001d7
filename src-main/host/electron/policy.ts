/**
 * The Electron window's security policy as plain functions (testable without Electron):
 * which URLs are "our app" (navigation allowed, IPC accepted) and the page's CSP.
 */
import { APP_HOST, APP_SCHEME } from './electron-types';

export const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** True only for app://holdfast/… — not file://, not another app:// host, not look-alikes. */
export function isAppUrl(url: string | undefined | null): boolean {
  if (!url) return false;
  try {
    const u = new URL(url);
    return u.protocol === `${APP_SCHEME}:` && u.host === APP_HOST && u.username === '' && u.password === '';
  } catch {
    return false;
  }
}
