/**
 * The built renderer in a real browser: builds src-renderer with the real vite config into a
 * temp dir, serves it from a tiny HTTP server whose /api and /events speak the serve wire
 * protocol (src-shared/bridge.ts) backed by the FakeEngine, opens it in Debian's Chromium with
 * the token in the URL, and saves a screenshot of every screen to test/artifacts/.
 * The real end-to-end against `holdfast serve` lives elsewhere; this proves the build, the
 * HTTP+WebSocket transport and the layout at 1280×800 in light and dark.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeBlockMap } from '../../src-shared/block-map';
import type { EventName, EventPayload, OpName } from '../../src-shared/contract';
import { HoldfastError, toErrorPayload } from '../../src-shared/errors';
import { FakeEngine, idleHold } from './fake-engine';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const artifacts = path.join(root, 'test/artifacts');
const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'tok-' + Math.random().toString(36).slice(2);
const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.map': 'application/json' };

let outDir = '';
let server: http.Server;
let base = '';
const engine = new FakeEngine();
const sockets = new Set<Socket>();
const authHeaders: string[] = [];
const wsUrls: string[] = [];

function wsFrame(text: string): Buffer {
  const data = Buffer.from(text);
  const n = data.length;
  const head = n < 126 ? Buffer.from([0x81, n]) : n < 65536 ? Buffer.from([0x81, 126, n >> 8, n & 255]) : Buffer.concat([Buffer.from([0x81, 127]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b; })()]);
  return Buffer.concat([head, data]);
}

function broadcast<N extends EventName>(event: N, payload: EventPayload<N>) {
  const frame = wsFrame(JSON.stringify({ event, payload }));
  for (const s of sockets) s.write(frame);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  outDir = mkdtempSync(path.join(os.tmpdir(), 'holdfast-ui-'));
  const { build } = await import('vite');
  await build({ configFile: path.join(root, 'vite.config.mts'), logLevel: 'error', build: { outDir, emptyOutDir: true, sourcemap: false } });
  mkdirSync(artifacts, { recursive: true });

  server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'POST' && url.pathname.startsWith('/api/')) {
      authHeaders.push(req.headers.authorization ?? '');
      if (req.headers.authorization !== `Bearer ${TOKEN}`) return void res.writeHead(401).end();
      let body = '';
      for await (const c of req) body += c;
      const op = url.pathname.slice(5) as OpName;
      try {
        const fn = engine.api()[op] as (i: unknown) => Promise<unknown>;
        const result = await fn(JSON.parse(body || '{}'));
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, result }));
      } catch (e) {
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: false, error: toErrorPayload(e) }));
      }
      return;
    }
    const file = path.join(outDir, url.pathname === '/' ? 'index.html' : path.normalize(url.pathname));
    if (!file.startsWith(outDir) || !existsSync(file)) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
  });
  server.on('upgrade', (req, socket: Socket) => {
    wsUrls.push(req.url ?? '');
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/events' || url.searchParams.get('token') !== TOKEN) return void socket.end('HTTP/1.1 401 Unauthorized\r\n\r\n');
    const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    sockets.add(socket);
    socket.on('data', () => {}); // client frames (pings/close) are ignored
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => sockets.delete(socket));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}, 120_000);

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => server?.close(r));
  if (outDir) rmSync(outDir, { recursive: true, force: true });
});

describe.skipIf(!existsSync(CHROMIUM))('built UI in Chromium', () => {
  it('renders every screen over the HTTP+WebSocket transport, with live hold-queue events', async () => {
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], headless: true });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(e.message));
      await page.goto(`${base}/?token=${TOKEN}#/drives`);
      await page.getByText('Samsung SSD 980 PRO').waitFor();
      expect(page.url()).not.toContain('token=');
      expect(authHeaders.every((h) => h === `Bearer ${TOKEN}`)).toBe(true);

      const shot = async (name: string) => page.screenshot({ path: path.join(artifacts, `renderer-${name}.png`) });
      await shot('drives');

      const screens = [
        ['volumes', 'Volumes', 'nbd://127.0.0.1:10809/vm-disk'],
        ['snapshots', 'Snapshots & restore', 'Metadata-consistent'],
        ['schedules', 'Schedules', 'New schedule'],
        ['settings', 'Settings', '/home/u/.local/share/holdfast'],
      ] as const;
      for (const [hash, heading, shows] of screens) {
        await page.getByRole('link', { name: heading }).click();
        await page.getByRole('heading', { level: 1, name: heading }).waitFor();
        await page.getByText(shows, { exact: true }).first().waitFor();
        await shot(hash);
      }

      await page.getByRole('link', { name: 'Volumes' }).click();
      await page.getByLabel('Name', { exact: true }).fill('-scratch');
      await page.getByLabel('Size', { exact: true }).fill('3000');
      await page.getByRole('button', { name: 'Create volume' }).click();
      await page.getByText(/multiple of 4 KiB/).waitFor();
      await shot('volumes-validation');

      // A backup starts; the engine streams hold-queue and progress events for ~4 s.
      await page.getByRole('link', { name: 'Backup' }).click();
      await page.getByLabel('Volume', { exact: true }).selectOption('vm-disk');
      await page.getByRole('button', { name: 'Start backup' }).click();
      await page.getByText('Backing up').waitFor();
      await page.getByRole('link', { name: 'Hold queue' }).click();
      await page.getByTestId('held-count-vm-disk').waitFor();
      expect(wsUrls.some((u) => u === `/events?token=${TOKEN}`)).toBe(true);

      const b = engine.backups[0]!;
      const cells = 256;
      let queued = 0;
      let released = 0;
      for (let step = 1; step <= 120; step++) {
        queued += 40 + Math.round(30 * Math.sin(step / 7) + 30);
        if (step > 20) released = Math.min(queued, released + 55 + (step > 80 ? 60 : 0));
        const copied = Math.floor((step / 120) * cells * 0.7);
        const states = Array.from({ length: cells }, (_, i) => (i < copied ? 1 : i % 37 === 5 || (i > copied && i < copied + 3) ? 2 : 0));
        const held = queued - released;
        broadcast('holds.changed', {
          ...idleHold('vm-disk'), backupFlag: true, policy: 'range', heldCount: held, heldBytes: held * 16384, oldestHeldAgeMs: 850 + step * 9,
          queuedTotal: queued, releasedTotal: released, copiedBytes: Math.round((copied / cells) * b.bytesTotal), journalBytes: held * 16500 + 40e6, journalCapacity: 1024 ** 3,
          blockMap: { cells, cellBytes: b.bytesTotal / cells, states: encodeBlockMap(states) },
        });
        broadcast('holds.changed', { ...idleHold('photos'), journalBytes: 0 });
        broadcast('backup.progress', { ...b, bytesDone: Math.round((copied / cells) * b.bytesTotal), mbPerSec: 25 + (step % 4) / 10, etaSec: Math.max(1, 40 - step / 3), dedupRatio: 1.42, throttledToMiBPerSec: 24 });
        await sleep(33);
      }
      const lastHeld = queued - released;
      await page.waitForFunction((n) => document.querySelector('[data-testid="held-count-vm-disk"]')?.textContent === n.toLocaleString('en-US'), lastHeld);
      await page.getByRole('img', { name: 'Block map of vm-disk' }).waitFor();
      await shot('holds');

      await page.getByRole('link', { name: 'Backup' }).click();
      await page.getByText('1.42×').waitFor();
      // The throttle says when and to what rate it slows the backup.
      expect(await page.getByTestId('throttle-note').textContent()).toContain('Throttled to 24 MiB/s while volumes are being written');
      await shot('backup');

      // A folder with no vault: the engine says VAULT_MISSING and the screen offers to create one there.
      engine.failNext.set('backup.start', new HoldfastError('VAULT_MISSING', 'There is no vault in /media/usb/vault. Is the drive plugged in? Create one with `holdfast vault init /media/usb/vault`.'));
      await page.getByLabel('Volume', { exact: true }).selectOption('photos');
      await page.getByLabel('Vault folder').fill('/media/usb/vault');
      await page.getByRole('button', { name: 'Start backup' }).click();
      await page.getByRole('button', { name: 'Create vault here' }).waitFor();
      await page.getByRole('button', { name: 'Create vault here' }).scrollIntoViewIfNeeded();
      await shot('backup-vault-missing');

      await page.getByRole('link', { name: 'Snapshots & restore' }).click();
      await page.getByRole('button', { name: 'Restore snapshot 20251124T220000Z-a1b2c3' }).click();
      await page.getByRole('radio', { name: /existing volume/ }).check();
      await page.getByLabel('Volume to overwrite').selectOption('vm-disk');
      await page.getByRole('button', { name: 'Next' }).click();
      await page.getByLabel(/to confirm/).fill('vm-di');
      await shot('restore-confirm');
      expect(await page.getByRole('button', { name: 'Overwrite vm-disk' }).isDisabled()).toBe(true);

      const dark = await browser.newPage({ viewport: { width: 1280, height: 800 }, colorScheme: 'dark' });
      await dark.goto(`${base}/?token=${TOKEN}#/volumes`);
      await dark.getByText('nbd://127.0.0.1:10809/vm-disk').waitFor();
      await dark.screenshot({ path: path.join(artifacts, 'renderer-volumes-dark.png') });
      const bg = await dark.evaluate(() => getComputedStyle(document.body).backgroundColor);
      expect(bg).toBe('rgb(15, 20, 27)');
      expect(pageErrors).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 120_000);
});
