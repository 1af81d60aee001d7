// Builds the Node side (CLI, serve, NBD, Electron main + preload) with esbuild and the
// renderer with Vite. Native modules stay external: they load from node_modules at run time.
import { build } from 'esbuild';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const external = ['better-sqlite3', 'zstd-napi', 'holdfast-fs', 'electron'];
const entries = [
  ['src-main/host/cli/main.ts', 'dist/cli.cjs'],
  ['src-main/host/electron/main.ts', 'dist/electron-main.cjs'],
  ['src-main/host/electron/preload.ts', 'dist/preload.cjs'],
  ['test/crash/crash-child.ts', 'dist/test/crash-child.cjs'],
  ['bench/engine-write-bench.ts', 'dist/bench/engine-write-bench.cjs'],
  ['bench/nbd/serve-file.ts', 'dist/bench/nbd-serve-file.cjs'],
  ['bench/vault/vault-lib.ts', 'dist/bench/vault-lib.cjs'],
  ['bench/ui/serve-load.ts', 'dist/bench/ui-serve-load.cjs'],
];
// Each output is written beside its place and renamed over it: tests spawn these bundles
// (bin/holdfast.cjs loads dist/cli.cjs) while another test file's beforeAll may rebuild them,
// and a reader must see the old file or the new one, never a half-written one.
for (const [src, out] of entries) {
  if (!existsSync(path.join(root, src))) continue;
  const result = await build({
    entryPoints: [path.join(root, src)],
    outfile: path.join(root, out),
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    sourcemap: 'linked',
    external,
    logLevel: 'warning',
    write: false,
  });
  for (const file of result.outputFiles) {
    mkdirSync(path.dirname(file.path), { recursive: true });
    const tmp = `${file.path}.tmp-${process.pid}`;
    writeFileSync(tmp, file.contents);
    renameSync(tmp, file.path);
  }
}
if (existsSync(path.join(root, 'src-renderer/index.html')) && !process.argv.includes('--no-renderer')) {
  const { build: viteBuild } = await import('vite');
  await viteBuild({ root: path.join(root, 'src-renderer'), configFile: path.join(root, 'vite.config.mts'), logLevel: 'warn' });
}
