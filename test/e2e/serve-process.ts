/**
 * A real `holdfast serve` for end-to-end tests and the UI benchmark: builds dist/ if it is
 * missing, spawns `node bin/holdfast.cjs serve --port 0 --nbd-port 0 --no-open --data DIR`,
 * and reads the UI URL from the first stdout line (DESIGN.md §6). Invariant: `stop()` sends
 * SIGTERM to the one process it started and waits for it to exit (SIGKILL after a grace period).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'];

export interface ServeProcess {
  /** The URL exactly as printed, with `?token=`. */
  url: string;
  origin: string;
  token: string;
  dataDir: string;
  nbdSocket: string;
  stderr: () => string;
  stop(): Promise<void>;
}

/** `npm test` builds first; a lone `npx vitest run test/e2e` builds here when dist/ is missing. */
export function ensureBuilt(): void {
  if (existsSync(path.join(ROOT, 'dist/cli.cjs')) && existsSync(path.join(ROOT, 'dist/renderer/index.html'))) return;
  const r = spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new Error('node scripts/build.mjs failed');
}

export async function startServe(dataDir: string, timeoutMs = 30_000): Promise<ServeProcess> {
  ensureBuilt();
  const child: ChildProcess = spawn(process.execPath, ['bin/holdfast.cjs', 'serve', '--port', '0', '--nbd-port', '0', '--no-open', '--data', dataDir], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (c) => (err += c));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const firstLine = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`holdfast serve printed no URL within ${timeoutMs} ms; stderr: ${err}`)), timeoutMs);
    child.stdout!.on('data', (c) => {
      out += c;
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(out.slice(0, nl));
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`holdfast serve exited (${code}) before printing its URL; stderr: ${err}`));
    });
  });
  const m = /^Holdfast UI: (http:\/\/127\.0\.0\.1:\d+)\/\?token=(\S+)$/.exec(firstLine);
  if (!m) {
    child.kill('SIGTERM');
    throw new Error(`unexpected first line from holdfast serve: ${JSON.stringify(firstLine)}`);
  }
  return {
    url: firstLine.slice('Holdfast UI: '.length),
    origin: m[1]!,
    token: m[2]!,
    dataDir,
    nbdSocket: path.join(dataDir, 'nbd.sock'),
    stderr: () => err,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/**
 * Calls the engine over the same HTTP API the page uses — only to set up peers or verify.
 * One connection per call (no keep-alive): a pooled socket the server closes while idle would
 * fail a call with "other side closed", and restore.start must not be retried.
 */
export function apiCall<T = unknown>(s: Pick<ServeProcess, 'origin' | 'token'>, op: string, input: unknown = {}): Promise<T> {
  const body = JSON.stringify(input);
  return new Promise<T>((resolve, reject) => {
    const req = http.request(
      `${s.origin}/api/${op}`,
      { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Bearer ${s.token}`, origin: s.origin } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (text += c));
        res.on('end', () => {
          try {
            const r = JSON.parse(text) as { ok: boolean; result?: T; error?: { code: string; message: string } };
            if (r.ok) resolve(r.result as T);
            else reject(new Error(`${op}: ${r.error?.code} ${r.error?.message}`));
          } catch {
            reject(new Error(`${op}: HTTP ${res.statusCode} ${text.slice(0, 200)}`));
          }
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export const nbdUri = (socket: string, volume: string) => `nbd+unix:///${volume}?socket=${socket}`;
