#!/usr/bin/env node
// Copying a mostly empty volume out over NBD: a sparse raw image (a VM disk as people keep them:
// 4 GiB, 256 MiB of data in 32 pieces spread over it) served by Holdfast (`holdfast
// nbd`, the image adopted 1:1 as a volume), qemu-nbd and `nbdkit file`, read by the same clients
// in the same run: nbdcopy to null: and qemu-img convert to a raw file (both skip what block
// status reports as zeroes), qemu-img map (block status alone), and nbdcopy again over a volume
// copied before, and nbdcopy --no-extents (every byte read, no block status). Holdfast starts
// afresh for each measurement (nothing remembered of the volume; warmed up on another one, so
// its code runs compiled as in a long-running engine), except that the "copied before" row's
// first copy runs on the same engine, unmeasured. qemu-nbd and nbdkit ask the
// filesystem for holes (lseek SEEK_DATA/SEEK_HOLE); Holdfast scans (src-main/engine/volumes/
// zero-scan.ts). Servers rotate order each round; each figure is the best (shortest) of the
// rounds, and the ratio is the peer's time ÷ Holdfast's (≥ 1.0: Holdfast as fast or faster).
// The copies are checked against the image (qemu-img compare).
//
//   npm run build && node bench/nbd/sparse-copy-bench.mjs
//   env: SPARSE_BENCH_SIZE_MIB (default 4096), SPARSE_BENCH_DATA_MIB (default 256),
//        SPARSE_BENCH_ROUNDS (default 3)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { attempt, best, ratio, rotated, secs, sh, stopProcess, timed, waitForSocket } from './proc.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const sizeMiB = Number(process.env.SPARSE_BENCH_SIZE_MIB ?? 4096);
const dataMiB = Number(process.env.SPARSE_BENCH_DATA_MIB ?? 256);
const rounds = Number(process.env.SPARSE_BENCH_ROUNDS ?? 3);
const PIECES = 32;
const cli = path.join(root, 'dist/cli.cjs');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'holdfast-sparse-bench-'));
const img = path.join(dir, 'disk.img');
fs.closeSync(fs.openSync(img, 'w'));
fs.truncateSync(img, sizeMiB * 2 ** 20);
const pieceMiB = dataMiB / PIECES;
const strideMiB = sizeMiB / PIECES;
console.error(`Preparing a ${sizeMiB} MiB sparse image with ${dataMiB} MiB of data in ${dir} ...`);
for (let i = 0; i < PIECES; i++) {
  const at = i * strideMiB + Math.floor(strideMiB / 3);
  await sh('dd', ['if=/dev/urandom', `of=${img}`, 'bs=1M', `seek=${at}`, `count=${pieceMiB}`, 'conv=notrunc,fsync', 'status=none']);
}
const allocatedMiB = (fs.statSync(img).blocks * 512) / 2 ** 20;

const env = { ...process.env, HOLDFAST_DATA: path.join(dir, 'holdfast-data') };
await sh(process.execPath, [cli, 'volume', 'adopt', img, '--name', 'disk'], { env });
// A second, small sparse volume the engine warms up on before each measurement: its code runs
// compiled, as in a long-running engine, while it knows nothing yet of the measured volume.
const warmImg = path.join(dir, 'warm.img');
fs.closeSync(fs.openSync(warmImg, 'w'));
fs.truncateSync(warmImg, 256 * 2 ** 20);
await sh('dd', ['if=/dev/urandom', `of=${warmImg}`, 'bs=1M', 'seek=100', 'count=16', 'conv=notrunc', 'status=none']);
await sh(process.execPath, [cli, 'volume', 'adopt', warmImg, '--name', 'warm'], { env });
const servers = {
  holdfast: { socket: path.join(dir, 'holdfast-data', 'nbd.sock'), cmd: process.execPath, args: [cli, 'nbd', '--nbd-port', '0'], env, exportName: 'disk' },
  'qemu-nbd': { socket: path.join(dir, 'qemu.sock'), cmd: 'qemu-nbd', args: ['-f', 'raw', '-k', path.join(dir, 'qemu.sock'), '-t', '-e', '16', '--cache=writeback', '--aio=threads', img], exportName: '' },
  'nbdkit-file': { socket: path.join(dir, 'nbdkit.sock'), cmd: 'nbdkit', args: ['-f', '-U', path.join(dir, 'nbdkit.sock'), 'file', img], exportName: '' },
};
const procs = [];
const uri = (name) => `nbd+unix:///${servers[name].exportName}?socket=${servers[name].socket}`;

const copyOut = path.join(dir, 'copy.img');
const nbdcopy = (n) => sh('nbdcopy', [uri(n), 'null:']);
const rows = [
  { id: 'nbdcopy to null:', run: (n) => timed(() => nbdcopy(n)) },
  {
    id: 'qemu-img convert to a raw file',
    run: async (n) => {
      fs.rmSync(copyOut, { force: true });
      const s = await timed(() => sh('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', uri(n), copyOut]));
      await sh('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', img, copyOut]);
      return s;
    },
  },
  { id: 'qemu-img map', run: (n) => timed(() => sh('qemu-img', ['map', '-f', 'raw', '--output=json', uri(n)])) },
  // Every byte read (no block status): the servers send what they know to be zeroes as holes.
  { id: 'nbdcopy --no-extents to null:', run: (n) => timed(() => sh('nbdcopy', ['--no-extents', uri(n), 'null:'])) },
  // Holdfast remembers the zero cells a scan found until they are written; the peers ask the
  // filesystem every time. Each server copies once unmeasured, then the copy is timed.
  { id: 'nbdcopy to null:, copied before', run: async (n) => (await nbdcopy(n), timed(() => nbdcopy(n))) },
];

/** Holdfast starts afresh for every measurement (nothing remembered from the one before). */
async function startHoldfast() {
  const s = servers.holdfast;
  fs.rmSync(s.socket, { force: true });
  const p = spawn(s.cmd, s.args, { stdio: ['ignore', 'ignore', 'inherit'], env: s.env });
  await waitForSocket(s.socket, p);
  const warm = `nbd+unix:///warm?socket=${s.socket}`;
  for (let i = 0; i < 3; i++) {
    await sh('nbdcopy', [warm, 'null:']);
    await sh('nbdcopy', ['--no-extents', warm, 'null:']);
    await sh('qemu-img', ['map', '-f', 'raw', '--output=json', warm]);
  }
  return p;
}

const results = {};
try {
  for (const [name, s] of Object.entries(servers)) {
    if (name === 'holdfast') continue;
    const p = spawn(s.cmd, s.args, { stdio: ['ignore', 'ignore', 'inherit'] });
    procs.push(p);
    await waitForSocket(s.socket, p);
    console.error(`started ${name}`);
  }
  for (let round = 1; round <= rounds; round++) {
    for (const row of rows) {
      for (const name of rotated(Object.keys(servers), round + rows.indexOf(row))) {
        const hf = name === 'holdfast' ? await startHoldfast() : null;
        let s;
        try {
          s = await attempt(`round ${round} ${row.id} ${name}`, () => row.run(name)); // null: shown as "failed"
        } finally {
          if (hf) await stopProcess(hf);
        }
        ((results[row.id] ??= {})[name] ??= []).push(s);
        if (s !== null) console.error(`round ${round} ${row.id} ${name}: ${s.toFixed(3)} s`);
      }
    }
  }
} finally {
  for (const p of procs) p.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  fs.rmSync(dir, { recursive: true, force: true });
}

const table = [];
const out = { env: { date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, sizeMiB, dataMiB, allocatedMiB: Math.round(allocatedMiB), rounds }, results: {} };
for (const row of rows) {
  const r = results[row.id];
  const h = best(r.holdfast);
  const q = best(r['qemu-nbd']);
  const k = best(r['nbdkit-file']);
  out.results[row.id] = {
    seconds: { holdfast: r.holdfast, 'qemu-nbd': r['qemu-nbd'], 'nbdkit-file': r['nbdkit-file'] },
    best: { holdfast: h, 'qemu-nbd': q, 'nbdkit-file': k },
    ratioVsQemu: q !== null && h !== null ? q / h : null,
    ratioVsNbdkit: k !== null && h !== null ? k / h : null,
  };
  table.push(`| ${row.id} | ${secs(h)} | ${secs(q)} | ${secs(k)} | ${ratio(q, h)} | ${ratio(k, h)} |`);
}
fs.mkdirSync(path.join(root, 'bench/results'), { recursive: true });
fs.writeFileSync(path.join(root, 'bench/results/nbd-sparse.json'), JSON.stringify(out, null, 2) + '\n');
console.log(`Sparse ${sizeMiB} MiB image, ${dataMiB} MiB data (${Math.round(allocatedMiB)} MiB allocated), best of ${rounds} rounds; ratio = peer time ÷ Holdfast time`);
console.log('| row | Holdfast | qemu-nbd | nbdkit file | vs qemu-nbd | vs nbdkit |');
console.log('|---|---|---|---|---|---|');
for (const l of table) console.log(l);
