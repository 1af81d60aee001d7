// Builds better-sqlite3 for Electron's ABI into build/electron-native/, leaving the Node build
// in node_modules untouched (tests, the CLI and `holdfast serve` keep using it). The Electron
// main process passes build/electron-native/better_sqlite3.node to better-sqlite3 as its
// `nativeBinding` (src-main/host/electron/native-binding.ts); electron-builder ships it as an
// extra resource. zstd-napi is N-API and loads under both runtimes as is.
//
// Runs on the user's machine at `npm start` / `npm run dist`. Tries the project's prebuilt
// Electron binary first (prebuild-install, no compiler needed), then compiles with node-gyp
// against Electron's headers. Skips the work when the stamp says this Electron version is built.
//
// It also copies Holdfast's own Node-API addon (packages/holdfast-fs, built by `npm install`)
// next to it: Node-API needs no rebuild, and the packaged app then loads it from its resources
// (src-main/host/electron/native-binding.ts) instead of relying on electron-builder to follow
// node_modules/holdfast-fs, a symlink into packages/ that some electron-builder releases skip.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outDir = path.join(root, 'build', 'electron-native');
const outFile = path.join(outDir, 'better_sqlite3.node');
const stampFile = path.join(outDir, 'stamp.json');
const require = createRequire(import.meta.url);

function die(msg) {
  console.error(`electron-native: ${msg}`);
  process.exit(1);
}

const electronPkg = path.join(root, 'node_modules', 'electron', 'package.json');
if (!fs.existsSync(electronPkg)) {
  die('Electron is not installed (it is an optional dependency whose binary download failed or was skipped). ' + 'Install it with `npm install electron` on a machine that can reach its download server, then run this again.');
}
const electronVersion = JSON.parse(fs.readFileSync(electronPkg, 'utf8')).version;

const fsAddon = path.join(root, 'packages', 'holdfast-fs', 'build', 'Release', 'holdfast_fs.node');
fs.mkdirSync(outDir, { recursive: true });
if (fs.existsSync(fsAddon)) {
  fs.copyFileSync(fsAddon, path.join(outDir, 'holdfast_fs.node'));
  console.log(`electron-native: copied ${path.relative(root, fsAddon)} (Node-API: no rebuild).`);
} else {
  fs.rmSync(path.join(outDir, 'holdfast_fs.node'), { force: true });
  console.log('electron-native: holdfast-fs was not built (no C compiler at `npm install`?); the app will write zeroes for trims.');
}
const sqlitePkgDir = path.dirname(require.resolve('better-sqlite3/package.json', { paths: [root] }));
const sqliteVersion = JSON.parse(fs.readFileSync(path.join(sqlitePkgDir, 'package.json'), 'utf8')).version;
const arch = process.env.npm_config_arch || process.arch;
const want = { electron: electronVersion, betterSqlite3: sqliteVersion, arch, platform: process.platform };

if (fs.existsSync(outFile) && fs.existsSync(stampFile)) {
  const have = JSON.parse(fs.readFileSync(stampFile, 'utf8'));
  if (JSON.stringify(have) === JSON.stringify(want)) {
    console.log(`electron-native: better-sqlite3 ${sqliteVersion} for Electron ${electronVersion} (${arch}) is up to date.`);
    process.exit(0);
  }
}

// Work on a copy so node_modules/better-sqlite3/build (the Node ABI binary) is never replaced.
const work = path.join(outDir, 'work', 'better-sqlite3');
fs.rmSync(path.join(outDir, 'work'), { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
for (const entry of ['binding.gyp', 'package.json', 'src', 'deps', 'lib']) {
  fs.cpSync(path.join(sqlitePkgDir, entry), path.join(work, entry), { recursive: true });
}

const run = (cmd, args) => {
  console.log(`electron-native: ${path.basename(cmd)} ${args.join(' ')}`);
  return spawnSync(cmd, args, { cwd: work, stdio: 'inherit', env: { ...process.env, npm_config_runtime: 'electron', npm_config_target: electronVersion, npm_config_disturl: 'https://electronjs.org/headers' } }).status === 0;
};
const binOf = (pkg, rel) => {
  try {
    return path.join(path.dirname(require.resolve(`${pkg}/package.json`, { paths: [root] })), rel);
  } catch {
    return null;
  }
};

const built = path.join(work, 'build', 'Release', 'better_sqlite3.node');
const prebuild = binOf('prebuild-install', 'bin.js');
let ok = prebuild !== null && run(process.execPath, [prebuild, '--runtime', 'electron', '--target', electronVersion, '--arch', arch]) && fs.existsSync(built);
if (!ok) {
  const gyp = binOf('node-gyp', path.join('bin', 'node-gyp.js'));
  if (!gyp) die('node-gyp is not installed; run `npm install` first.');
  ok = run(process.execPath, [gyp, 'rebuild', '--release', `--target=${electronVersion}`, `--arch=${arch}`, '--dist-url=https://electronjs.org/headers', '--runtime=electron']) && fs.existsSync(built);
}
if (!ok) die(`could not build better-sqlite3 for Electron ${electronVersion}: see the output above (a C++ toolchain and Python are needed when no prebuilt binary fits).`);

fs.copyFileSync(built, outFile);
fs.writeFileSync(stampFile, JSON.stringify(want));
fs.rmSync(path.join(outDir, 'work'), { recursive: true, force: true });
console.log(`electron-native: wrote ${path.relative(root, outFile)} (better-sqlite3 ${sqliteVersion}, Electron ${electronVersion}, ${arch}).`);
