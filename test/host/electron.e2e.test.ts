/**
 * The desktop app end to end with Playwright's Electron driver: the window loads the renderer
 * from app://holdfast, the page has no Node, the preload bridge answers contract calls from the
 * real engine on a temp data dir, foreign calls are refused, window.open is denied, and the
 * `holdfast` CLI works beside the app through its control socket.
 * Runs only where the Electron binary (and its better-sqlite3 build) is installed; elsewhere it
 * is skipped and says why.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const root = path.resolve(__dirname, '../..');
const require_ = createRequire(import.meta.url);

function electronBinary(): { path: string } | { reason: string } {
  let exe: unknown;
  try {
    exe = require_(path.join(root, 'node_modules/electron'));
  } catch (e) {
    return { reason: `the optional dependency "electron" is not installed (${(e as Error).message.split('\n')[0]})` };
  }
  if (typeof exe !== 'string' || !fs.existsSync(exe)) return { reason: 'node_modules/electron is present but its binary was not downloaded' };
  return { path: exe };
}

const found = electronBinary();
const skipReason = 'reason' in found ? found.reason : null;
if (skipReason) console.log(`electron e2e skipped: ${skipReason}`);

let tmp: string | null = null;
afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('Electron app', () => {
  it.skipIf(skipReason !== null)('opens the renderer securely and serves the contract from the real engine', { timeout: 180_000 }, async () => {
    execFileSync(process.execPath, [path.join(root, 'scripts/build.mjs')], { cwd: root, stdio: 'inherit' });
    const native = spawnSync(process.execPath, [path.join(root, 'scripts/electron-native.mjs')], { cwd: root, stdio: 'inherit' });
    expect(native.status, 'scripts/electron-native.mjs must build better-sqlite3 for Electron').toBe(0);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hf-electron-'));
    const data = path.join(tmp, 'data');
    const { _electron } = await import('playwright-core');
    const app = await _electron.launch({
      executablePath: (found as { path: string }).path,
      args: [root, `--data=${data}`],
      env: { ...process.env, HOLDFAST_NBD_PORT: '0' } as Record<string, string>,
    });
    try {
      const page = await app.firstWindow();
      await page.waitForLoadState('domcontentloaded');
      expect(page.url()).toBe('app://holdfast/index.html');
      // No Node in the page; the bridge is there with one function per op.
      expect(await page.evaluate(() => typeof (globalThis as any).require === 'undefined' && typeof (globalThis as any).process === 'undefined')).toBe(true);
      const ops = await page.evaluate(() => Object.keys((window as any).holdfast.api).length);
      expect(ops).toBeGreaterThan(10);
      // A real contract call through preload → ipcMain → router → engine.
      const img = path.join(tmp, 'disk.img');
      const dev = await page.evaluate((p) => (window as any).holdfast.invoke('device.add', { path: p, create: true, size: 64 * 1024 * 1024 }), img);
      expect(dev).toMatchObject({ ok: true, result: { path: img } });
      const vol = await page.evaluate(() => (window as any).holdfast.api['volume.create']({ name: 'desk', size: 8 * 1024 * 1024 }));
      expect(vol).toMatchObject({ ok: true, result: { name: 'desk' } });
      const info = await page.evaluate(() => (window as any).holdfast.invoke('engine.info', {}));
      expect(info).toMatchObject({ ok: true, result: { dataDir: data } });
      const bad = await page.evaluate(() => (window as any).holdfast.invoke('volume.create', { name: 'bad name!', size: -1 }));
      expect(bad).toMatchObject({ ok: false, error: { code: 'INVALID_ARGUMENT' } });
      const foreign = await page.evaluate(() => (window as any).holdfast.invoke('fs.readFile', {}));
      expect(foreign).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
      expect(await page.evaluate(() => window.open('https://example.com') === null)).toBe(true);
      // The CLI talks to the app's engine over the control socket meanwhile.
      const cli = spawnSync(process.execPath, [path.join(root, 'bin/holdfast.cjs'), 'volume', 'list', '--json', '--data', data], { encoding: 'utf8' });
      expect(cli.status, cli.stderr).toBe(0);
      expect(JSON.parse(cli.stdout).map((v: { name: string }) => v.name)).toEqual(['desk']);
      // webPreferences as configured.
      const prefs = await app.evaluate(({ BrowserWindow }) => {
        const w = BrowserWindow.getAllWindows()[0]!;
        const p = (w.webContents as any).getLastWebPreferences?.() ?? {};
        return { contextIsolation: p.contextIsolation, sandbox: p.sandbox, nodeIntegration: p.nodeIntegration, webSecurity: p.webSecurity };
      });
      expect(prefs).toEqual({ contextIsolation: true, sandbox: true, nodeIntegration: false, webSecurity: true });
    } finally {
      await app.close();
    }
    expect(fs.existsSync(path.join(data, 'holdfast.lock'))).toBe(false);
  });
});
