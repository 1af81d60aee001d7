// `npm run bench`: runs every benchmark (each measures Holdfast against a peer in the same
// run and writes bench/results/<name>.json), then prints one markdown table per benchmark.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const only = process.argv.slice(2);
const benches = [
  ['engine-write', ['--expose-gc', 'dist/bench/engine-write-bench.cjs']],
  ['nbd', ['bench/nbd/nbd-bench.mjs']],
  ['nbd-sparse', ['bench/nbd/sparse-copy-bench.mjs']],
  ['nbd-discard', ['bench/nbd/discard-bench.mjs']],
  ['vault', ['bench/vault/vault-bench.mjs']],
  ['ui', ['bench/ui/ui-bench.mjs']],
];
let failed = 0;
for (const [name, args] of benches) {
  if (only.length && !only.includes(name)) continue;
  const script = args[args.length - 1];
  if (!existsSync(path.join(root, script))) {
    console.log(`\n## ${name}: not present (${script})`);
    continue;
  }
  console.log(`\n## ${name}`);
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
