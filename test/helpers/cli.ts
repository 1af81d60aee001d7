/**
 * The CLI as tests spawn it: `node bin/holdfast.cjs` from the built bundle, in a temp working
 * folder, with HOLDFAST_DATA cleared so only the test's own data directory is ever touched.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import path from 'node:path';

export const root = path.resolve(__dirname, '../..');
export const bin = path.join(root, 'bin/holdfast.cjs');

/** Builds the CLI bundles (not the renderer); for a beforeAll. */
export function buildCli(): void {
  execFileSync(process.execPath, [path.join(root, 'scripts/build.mjs'), '--no-renderer'], { cwd: root, stdio: 'inherit' });
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `holdfast ARGS` in cwd and waits for it. */
export function runCli(args: string[], cwd: string, timeoutMs = 60_000): CliResult {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd, encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, HOLDFAST_DATA: '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
