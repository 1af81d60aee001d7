/**
 * The Electron security pieces that run without Electron: the bundled preload (executed in a
 * VM with a recording stand-in for the `electron` module) and the app-URL / CSP policy.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { build } from 'esbuild';
import path from 'node:path';
import vm from 'node:vm';
import { OP_NAMES } from '../../src-shared/contract';
import { CSP, isAppUrl } from '../../src-main/host/electron/policy';

const root = path.resolve(__dirname, '../..');

describe('Electron preload bridge', () => {
  let exposed: Record<string, any> = {};
  const invokes: unknown[][] = [];
  const listeners = new Map<string, Set<(...a: any[]) => void>>();
  const required: string[] = [];

  beforeAll(async () => {
    // Bundle the preload exactly as scripts/build.mjs does, into memory (no race with other builds).
    const built = await build({ entryPoints: [path.join(root, 'src-main/host/electron/preload.ts')], bundle: true, platform: 'node', target: 'node20', format: 'cjs', external: ['electron'], write: false, logLevel: 'silent' });
    const code = built.outputFiles[0]!.text;
    const fakeElectron = {
      contextBridge: { exposeInMainWorld: (k: string, v: unknown) => (exposed[k] = v) },
      ipcRenderer: {
        invoke: async (...args: unknown[]) => {
          invokes.push(args);
          return { ok: true, result: 'from-main' };
        },
        on: (ch: string, l: (...a: any[]) => void) => (listeners.get(ch) ?? listeners.set(ch, new Set()).get(ch)!).add(l),
        removeListener: (ch: string, l: (...a: any[]) => void) => listeners.get(ch)?.delete(l),
      },
    };
    const module = { exports: {} };
    // A sandboxed preload can require only `electron`; record anything else it asks for.
    const req = (name: string) => {
      required.push(name);
      if (name === 'electron') return fakeElectron;
      throw new Error(`sandboxed preload cannot require ${name}`);
    };
    vm.runInNewContext(code, { require: req, module, exports: module.exports, console, Promise, Set, Map, Object, String });
  });

  it('exposes window.holdfast with invoke, onEvent and one function per contract op, and requires only electron', () => {
    expect(Object.keys(exposed)).toEqual(['holdfast']);
    const bridge = exposed.holdfast;
    expect(typeof bridge.invoke).toBe('function');
    expect(typeof bridge.onEvent).toBe('function');
    expect(Object.keys(bridge.api).sort()).toEqual([...OP_NAMES].sort());
    expect(required).toEqual(['electron']);
  });

  it('forwards contract ops over IPC and refuses anything else without touching IPC', async () => {
    const bridge = exposed.holdfast;
    expect(await bridge.invoke('volume.list', { a: 1 })).toEqual({ ok: true, result: 'from-main' });
    expect(await bridge.api['volume.create']({ name: 'x', size: 4096 })).toEqual({ ok: true, result: 'from-main' });
    const before = invokes.length;
    for (const bad of ['fs.readFile', '__proto__', 'constructor', 42, '$subscribe']) {
      const r = await bridge.invoke(bad, {});
      expect(r).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    }
    expect(invokes.length).toBe(before);
    expect(invokes[0]).toEqual(['holdfast:invoke', 'volume.list', { a: 1 }]);
    expect(invokes[1]).toEqual(['holdfast:invoke', 'volume.create', { name: 'x', size: 4096 }]);
  });

  it('delivers events without the IPC event object and unsubscribes', () => {
    const got: unknown[][] = [];
    const off = exposed.holdfast.onEvent((...args: unknown[]) => got.push(args));
    const chan = listeners.get('holdfast:event')!;
    expect(chan.size).toBe(1);
    for (const l of chan) l({ sender: 'ipc-internals' }, { event: 'volumes.changed', payload: {} });
    expect(got).toEqual([[{ event: 'volumes.changed', payload: {} }]]);
    off();
    expect(chan.size).toBe(0);
  });
});

describe('Electron app policy', () => {
  it('accepts only app://holdfast URLs as the app', () => {
    expect(isAppUrl('app://holdfast/index.html')).toBe(true);
    expect(isAppUrl('app://holdfast/')).toBe(true);
    for (const u of ['file:///index.html', 'app://evil/index.html', 'https://holdfast/', 'app://holdfast.evil.com/', 'app://user@holdfast/', 'http://127.0.0.1:3000/', '', null, undefined, 'not a url'])
      expect(isAppUrl(u as string), String(u)).toBe(false);
  });

  it('has a CSP without inline script or eval and with no framing', () => {
    expect(CSP).toContain("script-src 'self'");
    expect(CSP).not.toMatch(/unsafe-(inline|eval)/);
    expect(CSP).toContain("object-src 'none'");
    expect(CSP).toContain("frame-ancestors 'none'");
  });
});
