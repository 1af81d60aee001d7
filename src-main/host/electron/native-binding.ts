/**
 * better-sqlite3 under Electron. One `npm install` builds better-sqlite3 for Node's ABI
 * (tests, CLI, serve). Electron has its own ABI, so scripts/electron-native.mjs builds a
 * second copy of the binding into build/electron-native/ (packaged as an extra resource).
 * This returns the path the catalog should pass as better-sqlite3's `nativeBinding` when
 * running inside Electron, and undefined under plain Node (use the normal binding).
 */
import fs from 'node:fs';
import path from 'node:path';

export const ELECTRON_NATIVE_DIR = path.join('build', 'electron-native');
export const BINDING_FILE = 'better_sqlite3.node';

export function electronNativeBinding(): string | undefined {
  if (!process.versions.electron) return undefined;
  const resourcesPath = (process as NodeJS.Process & { resourcesPath?: string }).resourcesPath;
  const candidates = [
    // Packaged app: electron-builder copies build/electron-native to resources/electron-native.
    resourcesPath ? path.join(resourcesPath, 'electron-native', BINDING_FILE) : null,
    // Development (`npm start`): dist/electron-main.cjs → ../build/electron-native.
    path.join(__dirname, '..', ELECTRON_NATIVE_DIR, BINDING_FILE),
    path.join(process.cwd(), ELECTRON_NATIVE_DIR, BINDING_FILE),
  ];
  return candidates.find((p): p is string => p !== null && fs.existsSync(p));
}
