/**
 * Native bindings under Electron. better-sqlite3: One `npm install` builds better-sqlite3 for Node's ABI
 * (tests, CLI, serve). Electron has its own ABI, so scripts/electron-native.mjs builds a
 * second copy of the binding into build/electron-native/ (packaged as an extra resource).
 * This returns the path the catalog should pass as better-sqlite3's `nativeBinding` when
 * running inside Electron, and undefined under plain Node (use the normal binding). The
 * holdfast-fs addon (Node-API, one build for both runtimes) is copied there too, so the packaged
 * app does not depend on electron-builder following node_modules/holdfast-fs, a symlink.
 */
import fs from 'node:fs';
import path from 'node:path';

export const ELECTRON_NATIVE_DIR = path.join('build', 'electron-native');
export const BINDING_FILE = 'better_sqlite3.node';
export const FS_ADDON_FILE = 'holdfast_fs.node';

export function electronNativeBinding(): string | undefined {
  return electronNativeFile(BINDING_FILE);
}

/** The holdfast-fs addon shipped beside it; undefined under plain Node (require finds the package). */
export function electronFsAddon(): string | undefined {
  return electronNativeFile(FS_ADDON_FILE);
}

function electronNativeFile(file: string): string | undefined {
  if (!process.versions.electron) return undefined;
  const resourcesPath = (process as NodeJS.Process & { resourcesPath?: string }).resourcesPath;
  const candidates = [
    // Packaged app: electron-builder copies build/electron-native to resources/electron-native.
    resourcesPath ? path.join(resourcesPath, 'electron-native', file) : null,
    // Development (`npm start`): dist/electron-main.cjs → ../build/electron-native.
    path.join(__dirname, '..', ELECTRON_NATIVE_DIR, file),
    path.join(process.cwd(), ELECTRON_NATIVE_DIR, file),
  ];
  return candidates.find((p): p is string => p !== null && fs.existsSync(p));
}
