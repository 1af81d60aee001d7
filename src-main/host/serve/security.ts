/**
 * The serve host's gatekeeping, in one place so every route applies the same rules:
 * - Host must name our loopback listener (127.0.0.1:PORT or localhost:PORT): a page on
 *   another site that rebinds its DNS name to 127.0.0.1 still sends its own Host and is refused.
 * - Origin, when the browser sends one, must be our own origin: other sites' pages are refused.
 * - The token (32 random bytes, base64url) is compared in constant time over SHA-256 digests,
 *   so neither its length nor a prefix leaks through timing.
 */
import crypto from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

export function newToken(): string {
  return crypto.randomBytes(32).toString('base64url');
}

export function tokenMatches(expected: string, given: string | null | undefined): boolean {
  if (typeof given !== 'string' || given.length === 0 || given.length > 512) return false;
  const a = crypto.createHash('sha256').update(expected).digest();
  const b = crypto.createHash('sha256').update(given).digest();
  return crypto.timingSafeEqual(a, b);
}

export function bearerToken(headers: IncomingHttpHeaders): string | null {
  const h = headers.authorization;
  if (typeof h !== 'string') return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m ? m[1]! : null;
}

export class OriginPolicy {
  readonly hosts: ReadonlySet<string>;
  readonly origins: ReadonlySet<string>;

  constructor(readonly port: number) {
    this.hosts = new Set([`127.0.0.1:${port}`, `localhost:${port}`]);
    this.origins = new Set([`http://127.0.0.1:${port}`, `http://localhost:${port}`]);
  }

  hostAllowed(headers: IncomingHttpHeaders): boolean {
    const host = headers.host;
    return typeof host === 'string' && this.hosts.has(host.toLowerCase());
  }

  /** Absent Origin is allowed (same-origin GETs, non-browser clients); a present one must be ours. */
  originAllowed(headers: IncomingHttpHeaders): boolean {
    const origin = headers.origin;
    if (origin === undefined) return true;
    return typeof origin === 'string' && this.origins.has(origin.toLowerCase());
  }

  /** The page's Content-Security-Policy: everything from our origin only, nothing inline. */
  contentSecurityPolicy(): string {
    const ws = [...this.hosts].map((h) => `ws://${h}`).join(' ');
    return [
      "default-src 'self'",
      "script-src 'self'",
      "style-src 'self'",
      "img-src 'self' data:",
      "font-src 'self'",
      `connect-src 'self' ${ws}`,
      "object-src 'none'",
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
    ].join('; ');
  }
}
