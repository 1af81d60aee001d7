/**
 * The slice of Electron's API the host uses, typed here because the `electron` package (and
 * its types) is an optional dependency that cannot be installed on every machine that
 * type-checks and tests this code. `electron()` loads the real module at run time.
 */
export interface IpcMainInvokeEvent {
  sender: WebContents;
  senderFrame: { url: string } | null;
}
export interface WebContents {
  id: number;
  send(channel: string, ...args: unknown[]): void;
  isDestroyed(): boolean;
  on(event: 'destroyed', cb: () => void): void;
  on(event: 'will-navigate' | 'will-redirect', cb: (e: { preventDefault(): void; url?: string }, url: string) => void): void;
  on(event: 'will-attach-webview', cb: (e: { preventDefault(): void }) => void): void;
  setWindowOpenHandler(h: (d: { url: string }) => { action: 'deny' | 'allow' }): void;
}
export interface BrowserWindow {
  webContents: WebContents;
  loadURL(url: string): Promise<void>;
  show(): void;
  hide(): void;
  focus(): void;
  isDestroyed(): boolean;
  on(event: 'close', cb: (e: { preventDefault(): void }) => void): void;
  on(event: 'closed' | 'ready-to-show', cb: () => void): void;
  once(event: 'ready-to-show', cb: () => void): void;
}
export interface ElectronMain {
  app: {
    whenReady(): Promise<void>;
    getPath(name: 'userData'): string;
    on(event: string, cb: (...args: any[]) => void): void;
    quit(): void;
    exit(code?: number): void;
    requestSingleInstanceLock(): boolean;
    name: string;
  };
  BrowserWindow: new (opts: Record<string, unknown>) => BrowserWindow;
  ipcMain: { handle(channel: string, h: (e: IpcMainInvokeEvent, ...args: unknown[]) => unknown): void };
  protocol: {
    registerSchemesAsPrivileged(schemes: Array<{ scheme: string; privileges: Record<string, boolean> }>): void;
    handle(scheme: string, h: (req: Request) => Response | Promise<Response>): void;
  };
  session: {
    defaultSession: {
      webRequest: { onHeadersReceived(cb: (d: { url: string; responseHeaders?: Record<string, string[]> }, done: (r: { responseHeaders?: Record<string, string[]> }) => void) => void): void };
      setPermissionRequestHandler(h: (wc: unknown, permission: string, cb: (ok: boolean) => void) => void): void;
    };
  };
  Tray: new (image: unknown) => { setToolTip(s: string): void; setContextMenu(m: unknown): void; on(e: 'click', cb: () => void): void; destroy(): void };
  Menu: { buildFromTemplate(items: Array<Record<string, unknown>>): unknown };
  Notification: (new (opts: { title: string; body: string }) => { show(): void }) & { isSupported(): boolean };
  nativeImage: { createFromDataURL(url: string): unknown };
  dialog: { showErrorBox(title: string, content: string): void };
}
export interface ElectronRenderer {
  contextBridge: { exposeInMainWorld(key: string, api: unknown): void };
  ipcRenderer: {
    invoke(channel: string, ...args: unknown[]): Promise<unknown>;
    on(channel: string, listener: (e: unknown, ...args: any[]) => void): void;
    removeListener(channel: string, listener: (e: unknown, ...args: any[]) => void): void;
  };
}

export const IPC_INVOKE = 'holdfast:invoke';
export const IPC_EVENT = 'holdfast:event';
/** The renderer is served from this privileged custom scheme, never file:// (see main.ts). */
export const APP_SCHEME = 'app';
export const APP_HOST = 'holdfast';
export const APP_ORIGIN = `${APP_SCHEME}://${APP_HOST}`;
