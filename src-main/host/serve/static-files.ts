/**
 * Serves the renderer build (dist/renderer) read-only. Invariants: a request can only reach
 * regular files inside the root directory — the decoded path is resolved against the root,
 * symlinks are resolved with realpath and must still lie inside it, NUL bytes and
 * undecodable escapes are refused; unknown extensions are served as
 * application/octet-stream, never sniffed. Paths without an extension fall back to
 * index.html so client-side routes survive a reload.
 */
import fs from 'node:fs';
import path from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.txt': 'text/plain; charset=utf-8',
  '.wasm': 'application/wasm',
};

export function contentType(file: string): string {
  return TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

export type StaticLookup = { status: 200; file: string; type: string; size: number } | { status: 400 | 404 };

export class StaticFiles {
  private readonly root: string | null;

  constructor(root: string) {
    this.root = fs.existsSync(root) ? fs.realpathSync(root) : null;
  }

  get available(): boolean {
    return this.root !== null;
  }

  lookup(urlPath: string): StaticLookup {
    if (!this.root) return { status: 404 };
    let decoded: string;
    try {
      decoded = decodeURIComponent(urlPath);
    } catch {
      return { status: 400 };
    }
    if (decoded.includes('\0') || decoded.includes('\\')) return { status: 400 };
    const rel = decoded.replace(/^\/+/, '');
    let candidate = path.resolve(this.root, rel);
    if (!this.inside(candidate)) return { status: 404 };
    if (rel === '' || (!fs.existsSync(candidate) && path.extname(rel) === '')) candidate = path.join(this.root, 'index.html');
    let real: string;
    try {
      real = fs.realpathSync(candidate);
    } catch {
      return { status: 404 };
    }
    if (!this.inside(real)) return { status: 404 };
    let st = fs.statSync(real);
    if (st.isDirectory()) {
      real = path.join(real, 'index.html');
      if (!fs.existsSync(real)) return { status: 404 };
      st = fs.statSync(real);
    }
    if (!st.isFile()) return { status: 404 };
    return { status: 200, file: real, type: contentType(real), size: st.size };
  }

  private inside(p: string): boolean {
    return p === this.root || p.startsWith(this.root + path.sep);
  }
}
