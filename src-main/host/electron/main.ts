/**
 * The Electron main process: owns the engine for the desktop app and maps the contract onto
 * IPC. Security (Electron's checklist, DESIGN.md §6):
 * - the renderer is served from the privileged custom scheme app://holdfast/ (not file://,
 *   which would grant the page the whole file system's origin), with a strict CSP header;
 * - windows run with contextIsolation, sandbox, no nodeIntegration, webSecurity;
 * - every IPC call is checked: sender frame URL must be on app://holdfast and the op must be a
 *   contract op; input is validated by the shared router before the engine sees it;
 * - window.open is denied, navigation away from app://holdfast is prevented, <webview> is
 *   refused, permission requests (camera, notifications from the page, …) are denied.
 * The engine runs here with the control socket (so `holdfast` commands work while the app
 * runs) and NBD. The app keeps running in the tray when its window closes; Quit ends it.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Backup, EventPayload } from '../../../src-shared/contract';
import { HoldfastError, toErrorPayload } from '../../../src-shared/errors';
import { NbdServer } from '../../nbd/server';
import { ControlServer } from '../control/server';
import { createCoalescer } from '../event-coalescer';
import { tuneGcForServing } from '../gc-tuning';
import { openLocalEngine, type LocalEngine } from '../local-engine';
import { createRouter } from '../router';
import { StaticFiles } from '../serve/static-files';
import { APP_HOST, APP_ORIGIN, APP_SCHEME, IPC_EVENT, IPC_INVOKE, type BrowserWindow, type ElectronMain, type IpcMainInvokeEvent } from './electron-types';
import { CSP, isAppUrl } from './policy';
import { TRAY_ICON_DATA_URL } from './tray-icon';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const electron = require('electron') as ElectronMain;
const { app, BrowserWindow: Window, ipcMain, protocol, session, Tray, Menu, Notification, nativeImage, dialog } = electron;

const NBD_TCP_PORT = 10809;
const RENDERER_DIR = path.join(__dirname, 'renderer'); // dist/electron-main.cjs → dist/renderer
const PRELOAD = path.join(__dirname, 'preload.cjs');

function dataDirectory(): string {
  const flag = process.argv.find((a) => a.startsWith('--data='));
  if (flag) return path.resolve(flag.slice('--data='.length));
  if (process.env.HOLDFAST_DATA) return path.resolve(process.env.HOLDFAST_DATA);
  return path.join(app.getPath('userData'), 'holdfast');
}

// Must run before 'ready': app:// behaves like https (secure context, fetch, relative URLs).
protocol.registerSchemesAsPrivileged([{ scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true, corsEnabled: true } }]);

let engine: LocalEngine | null = null;
let control: ControlServer | null = null;
let nbd: NbdServer | null = null;
let win: BrowserWindow | null = null;
let tray: InstanceType<ElectronMain['Tray']> | null = null;
let quitting = false;

function serveRenderer(): void {
  const files = new StaticFiles(RENDERER_DIR);
  protocol.handle(APP_SCHEME, (req) => {
    const url = new URL(req.url);
    const headers = { 'Content-Security-Policy': CSP, 'X-Content-Type-Options': 'nosniff' };
    if (url.host !== APP_HOST) return new Response('Not found', { status: 404, headers });
    const found = files.lookup(url.pathname);
    if (found.status !== 200) {
      const text = files.available ? 'Not found' : 'The Holdfast UI is not built: run `npm run build`.';
      return new Response(text, { status: found.status === 404 && !files.available ? 503 : found.status, headers: { ...headers, 'Content-Type': 'text/plain; charset=utf-8' } });
    }
    return new Response(fs.readFileSync(found.file), { status: 200, headers: { ...headers, 'Content-Type': found.type } });
  });
  // Belt and braces: any other response the renderer loads gets the same CSP.
  session.defaultSession.webRequest.onHeadersReceived((details, done) => {
    done({ responseHeaders: { ...(details.responseHeaders ?? {}), 'Content-Security-Policy': [CSP] } });
  });
  session.defaultSession.setPermissionRequestHandler((_wc, _permission, cb) => cb(false));
}

function wireIpc(eng: LocalEngine): void {
  const router = createRouter(eng.api);
  ipcMain.handle(IPC_INVOKE, async (event: IpcMainInvokeEvent, op: unknown, input: unknown) => {
    if (!isAppUrl(event.senderFrame?.url) || !win || event.sender !== win.webContents) {
      return { ok: false, error: new HoldfastError('FORBIDDEN', 'This page may not call the Holdfast engine.').toPayload() };
    }
    return router.call(typeof op === 'string' ? op : '', input);
  });
}

function forwardEvents(eng: LocalEngine, w: BrowserWindow): void {
  const wc = w.webContents;
  const coalescer = createCoalescer((event, payload) => {
    if (!wc.isDestroyed()) wc.send(IPC_EVENT, { event, payload });
  });
  const sub = eng.events.onAny((name, payload) => coalescer.push(name, payload));
  wc.on('destroyed', () => {
    sub.dispose();
    coalescer.dispose();
  });
}

function createWindow(eng: LocalEngine): BrowserWindow {
  const w = new Window({
    width: 1280,
    height: 800,
    minWidth: 960,
    minHeight: 640,
    show: false,
    title: 'Holdfast',
    webPreferences: {
      preload: PRELOAD,
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
      spellcheck: false,
    },
  });
  w.webContents.setWindowOpenHandler(() => ({ action: 'deny' }));
  w.webContents.on('will-navigate', (e, url) => {
    if (!isAppUrl(url)) e.preventDefault();
  });
  w.webContents.on('will-redirect', (e, url) => {
    if (!isAppUrl(url)) e.preventDefault();
  });
  w.webContents.on('will-attach-webview', (e) => e.preventDefault());
  w.once('ready-to-show', () => w.show());
  w.on('close', (e) => {
    // Closing the window keeps the engine (and scheduled backups, NBD clients) running in the tray.
    if (!quitting && tray) {
      e.preventDefault();
      w.hide();
    }
  });
  w.on('closed', () => {
    if (win === w) win = null;
  });
  forwardEvents(eng, w);
  void w.loadURL(`${APP_ORIGIN}/index.html`);
  return w;
}

function showWindow(): void {
  if (!engine) return;
  if (!win || win.isDestroyed()) win = createWindow(engine);
  win.show();
  win.focus();
}

function createTray(eng: LocalEngine): void {
  try {
    tray = new Tray(nativeImage.createFromDataURL(TRAY_ICON_DATA_URL));
  } catch {
    tray = null; // no system tray (some Linux desktops): closing the window then quits
    return;
  }
  tray.setToolTip('Holdfast');
  tray.setContextMenu(
    Menu.buildFromTemplate([
      { label: 'Open Holdfast', click: () => showWindow() },
      { type: 'separator' },
      { label: 'Quit', click: () => app.quit() },
    ]),
  );
  tray.on('click', () => showWindow());
  // Tell the user when a backup ends, even with the window hidden.
  const reported = new Set<string>();
  eng.events.onAny((name, payload) => {
    if (name === 'schedule.finished') {
      // A scheduled run that became a backup is reported by its backup.progress below; this covers runs that never did (skipped, or failed before starting).
      const f = payload as EventPayload<'schedule.finished'>;
      if (f.run.backupId !== null || f.run.status === 'completed' || !Notification.isSupported()) return;
      const title = f.run.status === 'skipped' ? `Scheduled backup of ${f.target} skipped` : `Scheduled backup of ${f.target} failed`;
      new Notification({ title, body: f.run.error ?? '' }).show();
      return;
    }
    if (name !== 'backup.progress') return;
    const b = payload as Backup;
    if (b.state === 'running' || reported.has(b.id)) return;
    reported.add(b.id);
    if (!Notification.isSupported()) return;
    const title = b.state === 'completed' ? `Backup of ${b.volume} finished` : b.state === 'aborted' ? `Backup of ${b.volume} cancelled` : `Backup of ${b.volume} failed`;
    const body = b.state === 'completed' ? `Snapshot ${b.snapshotId ?? ''} is in ${b.vault}.` : (b.error ?? '');
    new Notification({ title, body }).show();
  });
}

async function start(): Promise<void> {
  serveRenderer();
  const dataDir = dataDirectory();
  tuneGcForServing();
  engine = await openLocalEngine({ dataDir });
  wireIpc(engine);
  control = await ControlServer.listen(path.join(engine.dataDirPath, 'control.sock'), engine.api, engine.events);
  nbd = new NbdServer(engine.exports, { log: (m) => console.error(m) });
  const socket = path.join(engine.dataDirPath, 'nbd.sock');
  let tcp: string | null = null;
  await nbd.listenUnix(socket);
  try {
    tcp = `127.0.0.1:${(await nbd.listenTcp(Number(process.env.HOLDFAST_NBD_PORT ?? NBD_TCP_PORT), '127.0.0.1')).port}`;
  } catch (e) {
    // Another NBD server (qemu-nbd, a second Holdfast) has the port; the Unix socket still works.
    console.error(`holdfast: NBD TCP listener not started: ${(e as Error).message}`);
  }
  engine.setNbdAddress({ socket, tcp });
  createTray(engine);
  win = createWindow(engine);
  // Scheduled backups run while the app runs (also with the window closed, in the tray); missed ones catch up now.
  engine.startScheduler();
}

async function shutdown(): Promise<void> {
  const steps: Array<() => Promise<void> | void> = [() => tray?.destroy(), () => nbd?.close(), () => control?.close(), () => engine?.close()];
  for (const s of steps) {
    try {
      await s();
    } catch (e) {
      console.error(`holdfast: while closing: ${(e as Error).message}`);
    }
  }
}

if (!app.requestSingleInstanceLock()) {
  // The data directory has one owner; a second launch just focuses the first window.
  app.quit();
} else {
  app.on('second-instance', () => showWindow());
  app.on('activate', () => showWindow());
  app.on('window-all-closed', () => {
    if (!tray) app.quit();
  });
  let closed = false;
  app.on('before-quit', (e: { preventDefault(): void }) => {
    quitting = true;
    if (closed) return;
    e.preventDefault();
    void shutdown().finally(() => {
      closed = true;
      app.exit(0);
    });
  });
  app
    .whenReady()
    .then(start)
    .catch((e) => {
      const p = toErrorPayload(e);
      dialog.showErrorBox('Holdfast could not start', `${p.message} (${p.code})`);
      app.exit(1);
    });
}
