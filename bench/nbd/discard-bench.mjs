#!/usr/bin/env node
// Giving space back over NBD: a fully written raw image (1 GiB of random bytes, written back to
// disk) served by Holdfast (`holdfast nbd`, the image adopted 1:1 as a volume), `qemu-nbd
// --discard=unmap` and `nbdkit file`, the same clients in the same run:
//   - qemu-io `discard 0 1G` (what `blkdiscard`, `fstrim` and `mkfs` send),
//   - mkfs.ext4 on the volume through nbdfuse (a reformat: discard everything, write metadata),
//   - nbdcopy of a sparse image (64 MiB of data in 16 pieces) over the used volume: the data
//     written, the holes sent as write-zeroes (a VM disk restored or re-imaged in place).
// Each measurement starts its server afresh on a freshly filled image (Holdfast warmed up on
// another volume first); rounds rotate the order.
// Reported: the best (shortest) time of the rounds, the image's allocated MiB afterwards
// (`stat` blocks), and the ratio peer time ÷ Holdfast time (≥ 1.0: Holdfast as fast or faster).
// The result is checked each time (qemu-io read -P 0 / qemu-img compare).
//
//   npm run build && node bench/nbd/discard-bench.mjs
//   env: DISCARD_BENCH_SIZE_MIB (default 1024), DISCARD_BENCH_ROUNDS (default 3)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { attempt, best, ratio, rotated, secs, sh, stopProcess, timed, waitForSocket } from './proc.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const sizeMiB = Number(process.env.DISCARD_BENCH_SIZE_MIB ?? 1024);
const rounds = Number(process.env.DISCARD_BENCH_ROUNDS ?? 3);
const cli = path.join(root, 'dist/cli.cjs');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'holdfast-discard-bench-'));
const img = path.join(dir, 'disk.img');
const full = path.join(dir, 'full.img');
const sparse = path.join(dir, 'sparse.img');
console.error(`Preparing a ${sizeMiB} MiB image of random bytes and a sparse one in ${dir} ...`);
await sh('dd', ['if=/dev/urandom', `of=${full}`, 'bs=4M', `count=${sizeMiB / 4}`, 'conv=fsync', 'status=none']);
fs.closeSync(fs.openSync(sparse, 'w'));
fs.truncateSync(sparse, sizeMiB * 2 ** 20);
for (let i = 0; i < 16; i++)
  await sh('dd', ['if=/dev/urandom', `of=${sparse}`, 'bs=1M', `seek=${Math.floor((i * sizeMiB) / 16) + 7}`, 'count=4', 'conv=notrunc,fsync', 'status=none']);

const allocatedMiB = (p) => (fs.statSync(p).blocks * 512) / 2 ** 20;
/** The image fully written again (allocated, on disk), outside the timing. */
async function refill() {
  await sh('cp', ['--sparse=never', full, img]);
  await sh('sync', []);
}
await refill();

const env = { ...process.env, HOLDFAST_DATA: path.join(dir, 'holdfast-data') };
await sh(process.execPath, [cli, 'volume', 'adopt', img, '--name', 'disk'], { env });
// A small volume the engine warms up on before each measurement (its code then runs compiled,
// as in a long-running engine); the peers are C programs.
const warmImg = path.join(dir, 'warm.img');
await sh('dd', ['if=/dev/urandom', `of=${warmImg}`, 'bs=1M', 'count=64', 'status=none']);
await sh(process.execPath, [cli, 'volume', 'adopt', warmImg, '--name', 'warm'], { env });
const servers = {
  holdfast: { socket: path.join(dir, 'holdfast-data', 'nbd.sock'), cmd: process.execPath, args: [cli, 'nbd', '--nbd-port', '0'], env, exportName: 'disk' },
  'qemu-nbd': {
    socket: path.join(dir, 'qemu.sock'),
    cmd: 'qemu-nbd',
    args: ['-f', 'raw', '-k', path.join(dir, 'qemu.sock'), '-t', '-e', '16', '--cache=writeback', '--aio=threads', '--discard=unmap', img],
    exportName: '',
  },
  'nbdkit-file': { socket: path.join(dir, 'nbdkit.sock'), cmd: 'nbdkit', args: ['-f', '-U', path.join(dir, 'nbdkit.sock'), 'file', img], exportName: '' },
};
const uri = (name) => `nbd+unix:///${servers[name].exportName}?socket=${servers[name].socket}`;

async function start(name) {
  const s = servers[name];
  fs.rmSync(s.socket, { force: true });
  const p = spawn(s.cmd, s.args, { stdio: 'ignore', env: s.env ?? process.env });
  await waitForSocket(s.socket, p);
  if (name === 'holdfast') {
    const warm = `nbd+unix:///warm?socket=${s.socket}`;
    for (let i = 0; i < 3; i++) {
      await sh('nbdcopy', [warmImg, warm]);
      await sh('qemu-io', ['-f', 'raw', warm, '-c', 'discard 0 64M', '-c', 'write -z -u 0 64M']);
    }
  }
  return p;
}

const rows = [
  {
    id: `qemu-io discard of the whole ${sizeMiB} MiB`,
    run: async (n) => {
      const s = await timed(() => sh('qemu-io', ['-f', 'raw', uri(n), '-c', `discard 0 ${sizeMiB}M`]));
      await sh('qemu-io', ['-f', 'raw', uri(n), '-c', `read -P 0 0 ${sizeMiB}M`]);
      return s;
    },
  },
  {
    // mkfs discards the whole device first (nbdfuse turns the file's fallocate into NBD trims),
    // then writes its metadata; e2fsck checks the result.
    id: 'mkfs.ext4 over nbdfuse',
    run: async (n) => {
      const mnt = path.join(dir, 'fuse');
      fs.mkdirSync(mnt, { recursive: true });
      const file = path.join(mnt, 'vol');
      const fuse = spawn('nbdfuse', [file, uri(n)], { stdio: 'ignore' });
      try {
        for (let i = 0; i < 200 && !fs.existsSync(file); i++) await new Promise((r) => setTimeout(r, 50));
        const s = await timed(() => sh('mkfs.ext4', ['-q', '-F', file]));
        await sh('e2fsck', ['-fn', file]);
        return s;
      } finally {
        await sh('fusermount3', ['-u', mnt]).catch(() => sh('fusermount', ['-u', mnt]));
        if (fuse.exitCode === null) await new Promise((r) => fuse.once('exit', r));
      }
    },
  },
  {
    id: 'nbdcopy of a sparse image (64 MiB data) over it',
    run: async (n) => {
      const s = await timed(() => sh('nbdcopy', [sparse, uri(n)]));
      await sh('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', sparse, uri(n)]);
      return s;
    },
  },
];

const results = {};
try {
  for (let round = 1; round <= rounds; round++) {
    for (const row of rows) {
      for (const name of rotated(Object.keys(servers), round + rows.indexOf(row))) {
        await refill();
        const p = await start(name);
        let s;
        try {
          s = await attempt(`round ${round} ${row.id} ${name}`, () => row.run(name));
        } finally {
          await stopProcess(p);
        }
        await sh('sync', []);
        const a = allocatedMiB(img);
        const r = ((results[row.id] ??= {})[name] ??= { seconds: [], allocatedMiB: [] });
        r.seconds.push(s);
        r.allocatedMiB.push(Math.round(a));
        if (s !== null) console.error(`round ${round} ${row.id} ${name}: ${s.toFixed(3)} s, ${a.toFixed(0)} MiB allocated after`);
      }
    }
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}

const out = { env: { date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, sizeMiB, rounds }, results: {} };
const table = [];
for (const row of rows) {
  const r = results[row.id];
  const b = Object.fromEntries(Object.entries(r).map(([n, v]) => [n, best(v.seconds)]));
  const alloc = Object.fromEntries(Object.entries(r).map(([n, v]) => [n, Math.max(...v.allocatedMiB)]));
  out.results[row.id] = {
    ...r,
    best: b,
    ratioVsQemu: b['qemu-nbd'] !== null && b.holdfast !== null ? b['qemu-nbd'] / b.holdfast : null,
    ratioVsNbdkit: b['nbdkit-file'] !== null && b.holdfast !== null ? b['nbdkit-file'] / b.holdfast : null,
  };
  const cell = (n) => `${secs(b[n])}, ${alloc[n]} MiB`;
  table.push(`| ${row.id} | ${cell('holdfast')} | ${cell('qemu-nbd')} | ${cell('nbdkit-file')} | ${ratio(b['qemu-nbd'], b.holdfast)} | ${ratio(b['nbdkit-file'], b.holdfast)} |`);
}
fs.mkdirSync(path.join(root, 'bench/results'), { recursive: true });
fs.writeFileSync(path.join(root, 'bench/results/nbd-discard.json'), JSON.stringify(out, null, 2) + '\n');
console.log(`Fully written ${sizeMiB} MiB image; best of ${rounds} rounds and the most allocated afterwards; ratio = peer time ÷ Holdfast time`);
console.log('| row | Holdfast | qemu-nbd --discard=unmap | nbdkit file | vs qemu-nbd | vs nbdkit |');
console.log('|---|---|---|---|---|---|');
for (const l of table) console.log(l);
