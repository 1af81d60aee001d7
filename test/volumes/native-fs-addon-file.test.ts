/**
 * The packaged desktop app ships the holdfast-fs addon as a file of its own
 * (resources/electron-native/holdfast_fs.node, copied by scripts/electron-native.mjs) instead of
 * relying on electron-builder to follow node_modules/holdfast-fs, a symlink into packages/.
 * An engine opened with `nativeFsAddon` loads that file, and punches holes through it; a named
 * file that is missing falls back to the package. Each case gets a fresh module (the loaded
 * binding is kept for the life of a process).
 */
import { beforeEach, describe, expect, it, vi } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { useTempDirs } from '../engine/helpers';

const mk = useTempDirs();
const BUILT = path.resolve(__dirname, '..', '..', 'packages', 'holdfast-fs', 'build', 'Release', 'holdfast_fs.node');

type NativeFsModule = typeof import('../../src-main/engine/env/native-fs');
type EngineModule = typeof import('../../src-main/engine/engine');

function notBuilt(): string | null {
  if (process.platform !== 'linux') return 'the addon is Linux-only';
  return fs.existsSync(BUILT) ? null : 'the holdfast-fs addon is not built here (no C compiler at npm install)';
}

describe('the holdfast-fs addon as a file of its own', () => {
  beforeEach(() => {
    vi.resetModules();
  });

  it('an engine opened with nativeFsAddon loads that file and punches holes with it', async () => {
    const why = notBuilt();
    if (why) return console.log(`skipping: ${why}`);
    const shipped = path.join(mk(), 'electron-native', 'holdfast_fs.node');
    fs.mkdirSync(path.dirname(shipped));
    fs.copyFileSync(BUILT, shipped);
    const { Engine } = (await import('../../src-main/engine/engine')) as EngineModule;
    const { nativeFs } = (await import('../../src-main/engine/env/native-fs')) as NativeFsModule;
    const engine = await Engine.open({ dataDir: mk(), nativeFsAddon: shipped });
    try {
      const n = nativeFs();
      expect(n?.from).toBe(shipped);
      const p = path.join(mk(), 'f.img');
      fs.writeFileSync(p, Buffer.alloc(8 << 20, 0x5a));
      const fd = fs.openSync(p, 'r+');
      try {
        fs.fdatasyncSync(fd);
        expect(await n!.zero(fd, 'punch', 1 << 20, 4 << 20)).toBe(0);
        expect(await n!.dataRanges(fd, 0, 8 << 20)).toEqual([
          [0, 1 << 20],
          [5 << 20, 3 << 20],
        ]);
      } finally {
        fs.closeSync(fd);
      }
      expect(fs.statSync(p).blocks * 512).toBe(4 << 20);
    } finally {
      await engine.close();
    }
  });

  it('a named file that is not there falls back to the holdfast-fs package', async () => {
    const why = notBuilt();
    if (why) return console.log(`skipping: ${why}`);
    const { nativeFs, useNativeFsAddon } = (await import('../../src-main/engine/env/native-fs')) as NativeFsModule;
    useNativeFsAddon(path.join(mk(), 'missing', 'holdfast_fs.node'));
    expect(nativeFs()?.from).toBe('holdfast-fs');
  });

  it('is named only before the first use: later calls change nothing', async () => {
    const why = notBuilt();
    if (why) return console.log(`skipping: ${why}`);
    const { nativeFs, useNativeFsAddon } = (await import('../../src-main/engine/env/native-fs')) as NativeFsModule;
    expect(nativeFs()?.from).toBe('holdfast-fs');
    const shipped = path.join(mk(), 'holdfast_fs.node');
    fs.copyFileSync(BUILT, shipped);
    useNativeFsAddon(shipped);
    expect(nativeFs()?.from).toBe('holdfast-fs');
  });
});
