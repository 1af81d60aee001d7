#!/usr/bin/env node
// NBD server benchmark: the same backing file served by Holdfast (an engine volume adopted
// 1:1 from the file, journaling on, every write through the journaled write path), qemu-nbd
// and `nbdkit file`, driven by the same clients in the same run. fio 4 KiB random write/read at
// queue depth 1 and 16 (time-bounded), nbdcopy 1 MiB sequential write and read, and 4 KiB random
// writes at queue depth 16 right after an nbdcopy import into the uncached image. Rows are
// interleaved across servers and repeated; each figure is the best of the rounds (the
// machine is shared, so the best round is the least disturbed one). Every figure is also
// given as a ratio against qemu-nbd and nbdkit from the same run.
//
// Then write latency during a backup: fio 4 KiB randwrite p99 (completion latency) at QD1
// and QD16 on the Holdfast volume with no backup, and while full `range`-policy backups of
// it run back to back into the engine's default vault. The conditions (these two and the two
// below) rotate order each round; each p99 is the best (lowest) of the rounds, the ratio is during ÷ without
// (target ≤ 1.5×). The backups use the engine default throttle (auto: paced while volumes are
// written; NBD_BENCH_THROTTLE=off for full speed); the mean duration of one backup is reported. A third condition backs up another volume of the same size that nobody
// writes: the same CPU and disk load with no hold on the measured volume, which separates
// what the machine pays for a backup from what holding costs. A fourth runs hold-only
// sessions on the measured volume (range policy, ranges marked copied at the busy throttle's
// rate, nothing read or stored): the hold/release machinery on the engine's thread alone.
//
// The same ratio from one fio run (bench/nbd/latency-alternate.sh): whole range backups of the
// written volume alternate with quiet spells of the same length while one fio run logs every
// request; each phase gets its own p99. Neighbouring seconds are compared, so the machine's
// drift (identical separate runs on the reference VM differ by 2–6× in p99) hits both alike.
// QD16 is capped at NBD_BENCH_ALT_QD16_IOPS (default 12000) so both phases carry the same load;
// a list (e.g. 3000,6000,12000) measures each load in turn, its own row each: on a 2-vCPU
// machine the ratio rises with the client's load (bench/results/nbd-latency-session50.txt).
// Its image holds fio-written data (compressible, as a real volume's mostly is), not random bytes.
// The point-in-time peer (below) is measured the same way in the same rounds, interleaved
// (PEER=qsd: qemu's own backup job alternating with quiet spells); each round's figures and the
// median over rounds are reported (NBD_BENCH_ALT_ROUNDS, default 3).
//
// The peer workflow for the same figure: qemu-nbd serving the image, and restic backing the
// image up (`restic backup --stdin`, back to back, into a local repository) while fio writes —
// what a qemu-nbd user runs for backups. qemu-nbd's p99 with and without restic, in the same
// rounds, gives the peer's ratio next to Holdfast's (skipped when restic is not installed, or
// with NBD_BENCH_PEER=0).
//
// The point-in-time peer: qemu's own backup job. qemu-storage-daemon (Debian: qemu-system-common)
// serves the image over NBD while `blockdev-backup sync=full` copies it, back to back, into a
// raw file next to it at the rate Holdfast's backups run while volumes are written
// (BUSY_BYTES_PER_SEC, 128 MiB/s). The job puts a copy-before-write filter under the export: a
// write to a cluster the job has not copied yet waits until the old cluster is in the target —
// what Proxmox VE runs for its backups. Same fio, same file, same rounds; its p99 during ÷
// without sits next to Holdfast's (skipped when qemu-storage-daemon is missing, or with
// NBD_BENCH_PEER=0). Its data path is a plain copy (no hashing, compression or dedup).
//
//   npm run build && node bench/nbd/nbd-bench.mjs
//   env: NBD_BENCH_RUNTIME (s per fio run, default 10), NBD_BENCH_ROUNDS (default 2),
//        NBD_BENCH_SIZE_MIB (backing file size, default 512), NBD_BENCH_LAT_ROUNDS (default 3),
//        NBD_BENCH_ONLY=throughput|latency (one phase only; replaces only that phase in nbd.json),
//        NBD_BENCH_THROTTLE=auto|off (the backups' throttle; default: the engine's, auto),
//        NBD_BENCH_PEER=0 (no qemu-nbd + restic latency rows),
//        NBD_BENCH_ENGINE_FLAGS (node flags of the Holdfast server; default as `npm run serve`),
//        NBD_BENCH_ALT_SECONDS (the alternating run's length, default 60; 0 skips it),
//        NBD_BENCH_ALT_QD16_IOPS (its QD16 rate cap, default 12000; a comma-separated list
//                 measures each rate, e.g. 3000,6000,12000),
//        NBD_BENCH_ALT_ROUNDS (alternating runs per server and queue depth, default 3)
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sh as run, waitForSocket as waitFor } from './proc.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const runtime = Number(process.env.NBD_BENCH_RUNTIME ?? 10);
const rounds = Number(process.env.NBD_BENCH_ROUNDS ?? 2);
// The engine process's V8 flags, as `npm run serve` and `npm start` launch it (README, "Running
// the engine"); NBD_BENCH_ENGINE_FLAGS='' measures without them.
const ENGINE_NODE_FLAGS = (process.env.NBD_BENCH_ENGINE_FLAGS ?? '--initial-old-space-size=64').split(/\s+/).filter(Boolean);
const sizeMiB = Number(process.env.NBD_BENCH_SIZE_MIB ?? 512);
const latRounds = Number(process.env.NBD_BENCH_LAT_ROUNDS ?? 3);
const only = process.env.NBD_BENCH_ONLY ?? '';
const serveEntry = path.join(root, 'dist/bench/nbd-serve-file.cjs');
if (!fs.existsSync(serveEntry)) {
  console.error('Run `npm run build` first (dist/bench/nbd-serve-file.cjs is missing).');
  process.exit(2);
}

const sh = (cmd, args, timeoutMs = 300_000) => run(cmd, args, { timeout: timeoutMs });
const waitForSocket = (p, proc) => waitFor(p, proc, 200);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'holdfast-nbd-bench-'));
const img = path.join(dir, 'backing.img');
const seqSrc = path.join(dir, 'seq-src.img');
console.error(`Preparing ${sizeMiB} MiB backing file in ${dir} ...`);
// fio-written data, as the alternating runs' images (see ALT_ENV): the backups measured below
// store what a volume's content costs them, not ~all of the image again, incompressible.
const fillImage = () => sh('fio', ['--name=fill', `--filename=${img}`, '--rw=write', '--bs=4k', `--size=${sizeMiB}M`, '--ioengine=psync', '--output-format=terse'], 600_000);
await fillImage();
await sh('cp', [img, seqSrc]);
const otherImg = path.join(dir, 'other.img');
await sh('cp', [img, otherImg]);

const dataDir = path.join(dir, 'holdfast-data');
const servers = {
  holdfast: { socket: path.join(dir, 'holdfast.sock'), cmd: 'node', args: (s) => [...ENGINE_NODE_FLAGS, serveEntry, '--engine', dataDir, '--adopt', img, '--adopt-other', otherImg, '--socket', s], exportName: 'bench' },
  'qemu-nbd': { socket: path.join(dir, 'qemu.sock'), cmd: 'qemu-nbd', args: (s) => ['-f', 'raw', '-k', s, '-t', '-e', '16', '--cache=writeback', '--aio=threads', img] },
  'nbdkit-file': { socket: path.join(dir, 'nbdkit.sock'), cmd: 'nbdkit', args: (s) => ['-f', '-U', s, 'file', img] },
};
// qemu-storage-daemon for the copy-before-write peer (not a throughput row): locking=off, as
// Holdfast, qemu-nbd and nbdkit serve the same file in this run.
const qsdQmp = path.join(dir, 'qsd-qmp.sock');
const qsd = { socket: path.join(dir, 'qsd.sock'), cmd: 'qemu-storage-daemon', exportName: 'bench',
  args: (s) => ['--blockdev', `driver=file,node-name=file0,filename=${img},aio=threads,locking=off`, '--blockdev', 'driver=raw,node-name=disk0,file=file0',
    '--nbd-server', `addr.type=unix,addr.path=${s}`, '--export', 'type=nbd,id=exp0,node-name=disk0,name=bench,writable=on',
    '--chardev', `socket,path=${qsdQmp},server=on,wait=off,id=qmp0`, '--monitor', 'chardev=qmp0'] };
const QEMU_BACKUP_BYTES_PER_SEC = 128 * 1024 * 1024; // = BUSY_BYTES_PER_SEC (src-main/engine/backup/backup-pacer.ts)
const procs = [];
let holdfastProc = null;
for (const [name, s] of Object.entries(servers)) {
  const p = spawn(s.cmd, s.args(s.socket), { stdio: [name === 'holdfast' ? 'pipe' : 'ignore', name === 'holdfast' ? 'pipe' : 'ignore', 'inherit'] });
  procs.push(p);
  if (name === 'holdfast') holdfastProc = p;
  await waitForSocket(s.socket, p);
  console.error(`started ${name}`);
}
const uri = (name) => {
  const s = name === 'qsd' ? qsd : servers[name];
  return `nbd+unix:///${s.exportName ?? ''}?socket=${s.socket}`;
};

// Lines the Holdfast server prints on stdout (READY, BACKUP-ON, BACKUP-OFF {...}).
const holdfastLines = [];
const lineWaiters = [];
{
  let buf = '';
  holdfastProc.stdout.on('data', (d) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop();
    for (const l of lines) {
      holdfastLines.push(l);
      for (const w of lineWaiters.splice(0)) if (!w(l)) lineWaiters.push(w);
    }
  });
}
function holdfastCommand(cmd, answer) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${answer} from the Holdfast server`)), 600_000);
    lineWaiters.push((l) => {
      if (!l.startsWith(answer)) return false;
      clearTimeout(t);
      resolve(l.slice(answer.length).trim());
      return true;
    });
    holdfastProc.stdin.write(`${cmd}\n`);
  });
}

/** restic (the peer's backup tool) backing up the image in a loop; stop() ends the loop and waits. */
const resticRepo = path.join(dir, 'restic-repo');
const resticEnv = { ...process.env, RESTIC_PASSWORD: 'holdfast-bench', RESTIC_REPOSITORY: resticRepo };
/** Whether a peer's tool runs here (and peer rows are wanted); says why when it is skipped. */
async function peerToolRuns(cmd, args, skipped) {
  if (process.env.NBD_BENCH_PEER === '0') return false;
  try {
    await sh(cmd, args);
    return true;
  } catch {
    console.error(skipped);
    return false;
  }
}
async function resticAvailable() {
  if (!(await peerToolRuns('restic', ['version'], 'peer latency rows skipped: restic is not installed'))) return false;
  await new Promise((resolve, reject) =>
    execFile('restic', ['init', '-q'], { env: resticEnv }, (err, _o, stderr) => (err ? reject(new Error(`restic init: ${stderr}`)) : resolve())),
  );
  return true;
}
function resticLoop() {
  let stopping = false;
  let runs = 0;
  let child = null;
  const done = (async () => {
    while (!stopping) {
      await new Promise((resolve) => {
        const input = fs.openSync(img, 'r');
        child = spawn('restic', ['backup', '-q', '--stdin', '--stdin-filename', 'backing.img'], { env: resticEnv, stdio: [input, 'ignore', 'inherit'] });
        child.once('exit', (code) => {
          fs.closeSync(input);
          if (code === 0) runs++;
          resolve();
        });
      });
    }
  })();
  return {
    async stop() {
      stopping = true;
      child?.kill('SIGINT');
      await done;
      return runs;
    },
  };
}

/** A QMP connection: commands in order, events kept until someone waits for them. */
async function qmpConnect(sockPath) {
  const sock = net.connect(sockPath);
  await new Promise((resolve, reject) => sock.once('connect', resolve).once('error', reject));
  let buf = '';
  const events = [];
  const waiting = []; // { match(msg) -> bool, resolve }
  const deliver = (m) => {
    const i = waiting.findIndex((w) => w.match(m));
    if (i >= 0) waiting.splice(i, 1)[0].resolve(m);
    else if (m.event) events.push(m);
  };
  sock.on('data', (d) => {
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) deliver(JSON.parse(line));
    }
  });
  const next = (match) => new Promise((resolve) => waiting.push({ match, resolve }));
  await next((m) => 'QMP' in m);
  const q = {
    async cmd(execute, args = {}) {
      const answer = next((m) => 'return' in m || 'error' in m);
      sock.write(JSON.stringify({ execute, arguments: args }) + '\n');
      const m = await answer;
      if (m.error) throw new Error(`QMP ${execute}: ${m.error.desc}`);
      return m.return;
    },
    event(names) {
      const i = events.findIndex((e) => names.includes(e.event));
      if (i >= 0) return Promise.resolve(events.splice(i, 1)[0]);
      return next((m) => m.event && names.includes(m.event));
    },
    close: () => sock.destroy(),
  };
  await q.cmd('qmp_capabilities');
  return q;
}

/** qemu's backup job (copy-before-write) copying the image into a raw file, back to back; stop() cancels the running one. */
function qemuBackupLoop(qmp) {
  let stopping = false;
  let runs = 0;
  let running = false;
  const target = path.join(dir, 'qemu-backup-target.img');
  const done = (async () => {
    while (!stopping) {
      fs.rmSync(target, { force: true });
      fs.closeSync(fs.openSync(target, 'w'));
      fs.truncateSync(target, sizeMiB * 1024 * 1024);
      await qmp.cmd('blockdev-add', { driver: 'file', 'node-name': 'tgt', filename: target });
      await qmp.cmd('blockdev-backup', { 'job-id': 'bk', device: 'disk0', target: 'tgt', sync: 'full', speed: QEMU_BACKUP_BYTES_PER_SEC, 'auto-dismiss': true });
      running = true;
      const e = await qmp.event(['BLOCK_JOB_COMPLETED', 'BLOCK_JOB_CANCELLED']);
      running = false;
      if (e.event === 'BLOCK_JOB_COMPLETED' && !e.data.error) runs++;
      else if (e.data?.error) throw new Error(`qemu backup job failed: ${e.data.error}`);
      await qmp.cmd('blockdev-del', { 'node-name': 'tgt' });
    }
    fs.rmSync(target, { force: true });
  })();
  return {
    async stop() {
      stopping = true;
      if (running) await qmp.cmd('block-job-cancel', { device: 'bk' }).catch(() => undefined); // it may have just completed
      await done;
      return runs;
    },
  };
}

async function qsdAvailable() {
  if (!(await peerToolRuns('qemu-storage-daemon', ['--version'], 'qemu backup-job peer rows skipped: qemu-storage-daemon is not installed (Debian: qemu-system-common)'))) return null;
  const p = spawn(qsd.cmd, qsd.args(qsd.socket), { stdio: ['ignore', 'ignore', 'inherit'] });
  procs.push(p);
  await waitForSocket(qsd.socket, p);
  await waitForSocket(qsdQmp, p);
  console.error('started qemu-storage-daemon');
  return qmpConnect(qsdQmp);
}

async function fio(name, rw, qd) {
  const out = await sh('fio', ['--name=bench', '--ioengine=nbd', `--uri=${uri(name)}`, `--rw=${rw}`, '--bs=4k', `--iodepth=${qd}`,
    '--time_based', `--runtime=${runtime}`, '--ramp_time=1', `--size=${sizeMiB}M`, '--norandommap', '--randrepeat=0', '--output-format=json'], (runtime + 60) * 1000);
  const job = JSON.parse(out.slice(out.indexOf('{'))).jobs[0];
  const side = rw.includes('write') ? job.write : job.read;
  return { value: side.iops, unit: 'IOPS', p99us: (side.clat_ns?.percentile?.['99.000000'] ?? 0) / 1000 };
}

async function nbdcopy(name, direction) {
  const t0 = process.hrtime.bigint();
  if (direction === 'write') await sh('nbdcopy', ['--request-size=1048576', seqSrc, uri(name)]);
  else await sh('nbdcopy', ['--request-size=1048576', uri(name), 'null:']);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return { value: sizeMiB / s, unit: 'MiB/s' };
}

/** Writes the image's dirty pages and drops its cached ones (POSIX_FADV_DONTNEED through GNU dd). */
async function evictImage() {
  const fd = fs.openSync(img, 'r+');
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  await sh('dd', [`if=${img}`, 'iflag=nocache', 'count=0', 'status=none']);
}

/**
 * Random writes right after a disk image was copied in over NBD (a restore, `qemu-img convert`,
 * nbdcopy): the image is not in the page cache, the server writes the import's 1 MiB requests,
 * then fio writes 4 KiB at random. The page cache keeps each server's import in folios sized by
 * the server's own writes, and small writes into large folios cost more (small-folio-writes.ts).
 * Queue depth 16: the kernel's share of each write shows most where the server's own is small.
 * Afterwards the image is evicted and rewritten in 4 KiB writes, the state the other rows start from.
 */
async function randwriteAfterImport(name) {
  await evictImage();
  await sh('nbdcopy', ['--request-size=1048576', seqSrc, uri(name)]);
  const r = await fio(name, 'randwrite', 16);
  await evictImage();
  await fillImage();
  return r;
}

const rows = [
  { id: 'fio 4k randwrite QD1', run: (n) => fio(n, 'randwrite', 1) },
  { id: 'fio 4k randwrite QD16', run: (n) => fio(n, 'randwrite', 16) },
  { id: 'fio 4k randread QD1', run: (n) => fio(n, 'randread', 1) },
  { id: 'fio 4k randread QD16', run: (n) => fio(n, 'randread', 16) },
  { id: 'nbdcopy 1 MiB seq write', run: (n) => nbdcopy(n, 'write') },
  { id: 'nbdcopy 1 MiB seq read', run: (n) => nbdcopy(n, 'read') },
  { id: 'fio 4k randwrite QD16 after an nbdcopy import', run: (n) => randwriteAfterImport(n) },
];

const results = {};
const latency = {};
const peerLatency = {};
const cbwLatency = {};
const alternate = {};
const altSeconds = Number(process.env.NBD_BENCH_ALT_SECONDS ?? 60);
let peer = false;
let qmp = null;
try {
  peer = only !== 'throughput' && (await resticAvailable());
  if (only !== 'throughput') qmp = await qsdAvailable();
  for (let round = 1; round <= rounds && only !== 'latency'; round++) {
    for (const row of rows) {
      // Rotate which server goes first so no server always gets the warm or the cold slot.
      const order = Object.keys(servers);
      for (let k = 0; k < (round + rows.indexOf(row)) % order.length; k++) order.push(order.shift());
      for (const name of order) {
        const r = await row.run(name);
        const slot = ((results[row.id] ??= {})[name] ??= { rounds: [] });
        slot.rounds.push(r);
        console.error(`round ${round} ${row.id} ${name}: ${r.value.toFixed(0)} ${r.unit}${r.p99us ? ` p99 ${r.p99us.toFixed(0)} µs` : ''}`);
      }
    }
  }
  for (let round = 1; round <= latRounds && only !== 'throughput'; round++) {
    for (const qd of [1, 16]) {
      const id = `fio 4k randwrite QD${qd} p99`;
      const slot = (latency[id] ??= { none: [], backup: [], other: [], hold: [], backupStats: [], otherStats: [], holdStats: [] });
      const conditions = ['none', 'backup', 'other', 'hold'];
      for (let k = 0; k < (round + qd) % conditions.length; k++) conditions.push(conditions.shift());
      for (const c of conditions) {
        if (c !== 'none') await holdfastCommand({ backup: 'backup-on bench', other: 'backup-on bench-other', hold: 'hold-on bench' }[c], 'BACKUP-ON');
        const r = await fio('holdfast', 'randwrite', qd);
        slot[c].push({ p99us: r.p99us, iops: r.value });
        let extra = '';
        if (c !== 'none') {
          const st = JSON.parse(await holdfastCommand('backup-off', 'BACKUP-OFF'));
          slot[`${c}Stats`].push(st);
          extra = ` (${st.completed} ${c === 'hold' ? 'hold-only sessions' : 'backups'} completed, up to ${st.maxHeld} writes held (${st.maxHeldMiB?.toFixed(0)} MiB; ArrayBuffers up to ${st.maxArrayBuffersMiB?.toFixed(0)} MiB), event-loop delay p99 ${st.loopDelayP99Ms.toFixed(1)} ms max ${st.loopDelayMaxMs.toFixed(0)} ms, GC pauses ${st.gc.totalMs} ms in ${st.gc.count} (${st.gc.major} major), longest ${st.gc.maxMs} ms)`;
        }
        const label = { none: 'no backup', backup: 'during range backup of it', other: 'during backup of another volume', hold: 'during hold-only sessions on it' }[c];
        console.error(`latency round ${round} QD${qd} ${label}: p99 ${r.p99us.toFixed(0)} µs, ${r.value.toFixed(0)} IOPS${extra}`);
      }
      if (!peer) continue;
      const pslot = (peerLatency[`qemu-nbd ${id}`] ??= { none: [], restic: [], resticRuns: [] });
      for (const c of round % 2 ? ['none', 'restic'] : ['restic', 'none']) {
        const loop = c === 'restic' ? resticLoop() : null;
        const r = await fio('qemu-nbd', 'randwrite', qd);
        const runs = loop ? await loop.stop() : 0;
        pslot[c].push({ p99us: r.p99us, iops: r.value });
        if (loop) pslot.resticRuns.push(runs);
        console.error(`latency round ${round} QD${qd} qemu-nbd ${c === 'none' ? 'no backup' : 'while restic backs up the image'}: p99 ${r.p99us.toFixed(0)} µs, ${r.value.toFixed(0)} IOPS${loop ? ` (${runs} restic backups completed)` : ''}`);
      }
    }
    if (!qmp) continue;
    for (const qd of [1, 16]) {
      const id = `fio 4k randwrite QD${qd} p99`;
      const cslot = (cbwLatency[`qemu backup job ${id}`] ??= { none: [], backup: [], backupRuns: [] });
      for (const c of round % 2 ? ['none', 'backup'] : ['backup', 'none']) {
        const loop = c === 'backup' ? qemuBackupLoop(qmp) : null;
        const r = await fio('qsd', 'randwrite', qd);
        const runs = loop ? await loop.stop() : 0;
        cslot[c].push({ p99us: r.p99us, iops: r.value });
        if (loop) cslot.backupRuns.push(runs);
        console.error(`latency round ${round} QD${qd} qemu-storage-daemon ${c === 'none' ? 'no backup' : 'during its backup job (copy-before-write)'}: p99 ${r.p99us.toFixed(0)} µs, ${r.value.toFixed(0)} IOPS${loop ? ` (${runs} backup jobs completed)` : ''}`);
      }
    }
  }
  const altRounds = Number(process.env.NBD_BENCH_ALT_ROUNDS ?? 3);
  // The image holds fio-written data (IMG_FILL=fio), not random bytes: a random image makes each
  // round store ~all of it again, incompressible, and that load lands in the quiet phase too
  // (bench/results/nbd-latency-session31.txt §1). fio writes 12 s before the first round: the
  // run's own first seconds are always slow and would fall into it.
  const ALT_ENV = ['IMG_FILL=fio', 'PRE_SECONDS=12'];
  const qd16Rates = String(process.env.NBD_BENCH_ALT_QD16_IOPS ?? '12000').split(',').map((x) => Number(x.trim()));
  if (qd16Rates.some((r) => !Number.isSafeInteger(r) || r <= 0))
    throw new Error(`NBD_BENCH_ALT_QD16_IOPS must be a positive whole number of IOPS or a comma-separated list of them, not "${process.env.NBD_BENCH_ALT_QD16_IOPS}"`);
  // QD1 uncapped, then QD16 at each rate cap (one row each; the key names the rate only when
  // there are several, so a default run's nbd.json keeps its old key).
  const loads = [{ qd: 1, iops: null }, ...qd16Rates.map((iops) => ({ qd: 16, iops }))];
  for (const { qd, iops } of altSeconds > 0 && only !== 'throughput' ? loads : []) {
    const rowLabel = `fio 4k randwrite QD${qd} p99`;
    const id = `${rowLabel}${iops && qd16Rates.length > 1 ? ` at ${iops} IOPS` : ''}`;
    const rate = iops ? `--rate_iops=${iops}` : '';
    // Holdfast, and qemu's backup job as the peer when qemu-storage-daemon runs here; the order
    // alternates by round so neither always goes first.
    const who = qmp ? ['holdfast', 'qsd'] : ['holdfast'];
    for (let round = 1; round <= altRounds; round++) {
      for (const server of round % 2 ? who : [...who].reverse()) {
        const peerEnv = server === 'qsd' ? ['PEER=qsd'] : [];
        const outText = await sh('env', [...peerEnv, ...ALT_ENV, `PROBE_SECONDS=${altSeconds}`, `FIO_ARGS=${rate}`, `PROBE_DIR=${path.join(dir, 'alternate')}`, `NODE_ARGS=${ENGINE_NODE_FLAGS.join(' ')}`, 'bash', path.join(root, 'bench/nbd/latency-alternate.sh'), 'backup', String(qd)], (altSeconds + 300) * 1000);
        const line = outText.split('\n').find((l) => l.startsWith('ALT '));
        if (!line) throw new Error(`latency-alternate.sh${server === 'qsd' ? ' (PEER=qsd)' : ''} printed no ALT line:\n${outText}`);
        const a = JSON.parse(line.slice(4));
        const slot = ((alternate[id] ??= { label: rowLabel, rateCap: rate || null, seconds: altSeconds, target: 1.5 })[server] ??= { runs: [] });
        slot.runs.push(a);
        const label = server === 'qsd' ? "qemu-storage-daemon, qemu's backup job" : 'Holdfast, range backup';
        console.error(`alternating round ${round} QD${qd}${rate ? ` (${rate})` : ''} ${label}: ${a.cycles} backups; p99 ${a.backup.p99} µs during vs ${a.quiet.p99} µs quiet = ${a.p99Ratio}× (per-cycle median ${a.cycleP99RatioMedian}×)`);
      }
    }
  }
} finally {
  qmp?.close();
  for (const p of procs) p.kill('SIGTERM');
}

const table = [];
for (const row of rows) {
  const r = results[row.id];
  if (!r) continue;
  for (const name of Object.keys(r)) {
    const best = r[name].rounds.reduce((a, b) => (b.value > a.value ? b : a));
    r[name].best = best.value;
    r[name].unit = best.unit;
    if (best.p99us) r[name].p99us = best.p99us;
  }
  r.ratioVsQemu = r.holdfast.best / r['qemu-nbd'].best;
  r.ratioVsNbdkit = r.holdfast.best / r['nbdkit-file'].best;
  table.push(r);
}

/** Lowest and median p99 of a condition's rounds. */
const best = (xs) => Math.min(...xs.map((x) => x.p99us));
/** Median of numbers. */
const mid = (v) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const median = (xs) => mid(xs.map((x) => x.p99us));
/** Median ratio of the runs that have one (a run too short for a quiet phase has none), to 2 places. */
const ratioMedian = (xs) => {
  const v = xs.filter((x) => x != null);
  return v.length ? Math.round(mid(v) * 100) / 100 : null;
};
for (const a of Object.values(alternate))
  for (const server of ['holdfast', 'qsd']) {
    const slot = a[server];
    if (!slot) continue;
    slot.p99RatioMedian = ratioMedian(slot.runs.map((r) => r.p99Ratio));
    slot.cycleP99RatioMedianMedian = ratioMedian(slot.runs.map((r) => r.cycleP99RatioMedian));
  }
const latencyRows = [];
for (const [id, slot] of Object.entries(latency)) {
  slot.bestNoBackupUs = best(slot.none);
  slot.bestDuringBackupUs = best(slot.backup);
  slot.bestOtherBackupUs = best(slot.other);
  slot.ratio = slot.bestDuringBackupUs / slot.bestNoBackupUs;
  slot.medianRatio = median(slot.backup) / median(slot.none);
  slot.otherRatio = slot.bestOtherBackupUs / slot.bestNoBackupUs;
  slot.bestHoldOnlyUs = best(slot.hold);
  slot.holdOnlyRatio = slot.bestHoldOnlyUs / slot.bestNoBackupUs;
  slot.iops = { none: Math.max(...slot.none.map((x) => x.iops)), backup: Math.max(...slot.backup.map((x) => x.iops)), other: Math.max(...slot.other.map((x) => x.iops)), hold: Math.max(...slot.hold.map((x) => x.iops)) };
  slot.target = 1.5;
  // Mean wall time of one full backup of the 512 MiB volume while fio writes (the throttle's cost).
  const meanBackupS = (sts) => {
    const done = sts.reduce((a, st) => a + st.completed, 0);
    return done ? sts.reduce((a, st) => a + st.backupMs, 0) / 1000 / done : null;
  };
  slot.backupSeconds = { backup: meanBackupS(slot.backupStats), other: meanBackupS(slot.otherStats) };
  latencyRows.push([id, slot]);
}

for (const slot of Object.values(peerLatency)) {
  slot.bestNoBackupUs = best(slot.none);
  slot.bestDuringBackupUs = best(slot.restic);
  slot.ratio = slot.bestDuringBackupUs / slot.bestNoBackupUs;
}
for (const slot of Object.values(cbwLatency)) {
  slot.bestNoBackupUs = best(slot.none);
  slot.bestDuringBackupUs = best(slot.backup);
  slot.ratio = slot.bestDuringBackupUs / slot.bestNoBackupUs;
  slot.medianRatio = median(slot.backup) / median(slot.none);
  slot.speedBytesPerSec = QEMU_BACKUP_BYTES_PER_SEC;
}

/** The machine's CPU idle policy: with guest halt polling off (a VM's guest_halt_poll_ns=0) an idle vCPU halts at once and the no-backup baseline pays its wake-ups (bench/results/nbd-latency-alternate-session15.txt §3). */
const readSys = (f) => {
  try {
    return fs.readFileSync(f, 'utf8').trim();
  } catch {
    return null;
  }
};
const cpuIdle = { governor: readSys('/sys/devices/system/cpu/cpuidle/current_governor'), guestHaltPollNs: readSys('/sys/module/haltpoll/parameters/guest_halt_poll_ns') };
const env = { cpuIdle, engineNodeFlags: ENGINE_NODE_FLAGS.join(' '), node: process.version, cpus: os.cpus().length, loadavg: os.loadavg(), runtimeS: runtime, rounds, latRounds, sizeMiB, holdfast: 'engine volume adopted from the backing file, journaling on, ack journal', backupThrottle: process.env.NBD_BENCH_THROTTLE ?? 'auto (default)', date: new Date().toISOString() };
const resultsDir = path.join(root, 'bench/results');
fs.mkdirSync(resultsDir, { recursive: true });
// A one-phase run (NBD_BENCH_ONLY) replaces only its own phase in bench/results/nbd.json; the
// other phase's figures (and their env, kept as envOf.<phase>) stay as the last run left them.
const resultsFile = path.join(resultsDir, 'nbd.json');
let out = { env, results, latency, peerLatency, cbwLatency, alternate };
if (only) {
  const prev = fs.existsSync(resultsFile) ? JSON.parse(fs.readFileSync(resultsFile, 'utf8')) : {};
  const keep = only === 'latency' ? 'throughput' : 'latency';
  out = {
    env,
    envOf: { ...(prev.envOf ?? {}), [keep]: prev.envOf?.[keep] ?? prev.env ?? null, [only]: env },
    results: only === 'latency' ? (prev.results ?? {}) : results,
    latency: only === 'latency' ? latency : (prev.latency ?? {}),
    peerLatency: only === 'latency' ? peerLatency : (prev.peerLatency ?? {}),
    cbwLatency: only === 'latency' ? cbwLatency : (prev.cbwLatency ?? {}),
    alternate: only === 'latency' ? alternate : (prev.alternate ?? {}),
  };
  console.error(`NBD_BENCH_ONLY=${only}: only the ${only} figures of bench/results/nbd.json were replaced.`);
}
fs.writeFileSync(resultsFile, JSON.stringify(out, null, 2) + '\n');

const fmt = (v) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));
const lines = table.length ? ['| workload | Holdfast | qemu-nbd | nbdkit file | Holdfast ÷ qemu-nbd | Holdfast ÷ nbdkit |', '|---|---:|---:|---:|---:|---:|'] : [];
for (const row of rows) {
  const r = results[row.id];
  if (!r) continue;
  const u = r.holdfast.unit;
  lines.push(`| ${row.id} | ${fmt(r.holdfast.best)} ${u} | ${fmt(r['qemu-nbd'].best)} ${u} | ${fmt(r['nbdkit-file'].best)} ${u} | ${r.ratioVsQemu.toFixed(2)}× | ${r.ratioVsNbdkit.toFixed(2)}× |`);
}
if (latencyRows.length) {
  lines.push(
    '',
    '| Holdfast write latency | no backup | during range-policy backup of it | during ÷ no backup (best) | (median) | target | during backup of another volume | other ÷ no backup | hold-only sessions on it (no data path) | hold-only ÷ no backup | one 512 MiB backup meanwhile (it / other) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const [id, l] of latencyRows)
    lines.push(
      `| ${id} | ${fmt(l.bestNoBackupUs)} µs | ${fmt(l.bestDuringBackupUs)} µs | ${l.ratio.toFixed(2)}× | ${l.medianRatio.toFixed(2)}× | ≤ ${l.target}× | ${fmt(l.bestOtherBackupUs)} µs | ${l.otherRatio.toFixed(2)}× | ${fmt(l.bestHoldOnlyUs)} µs | ${l.holdOnlyRatio.toFixed(2)}× | ${l.backupSeconds.backup?.toFixed(1) ?? '-'} s / ${l.backupSeconds.other?.toFixed(1) ?? '-'} s |`,
    );
}
const altRows = Object.entries(alternate);
if (altRows.length) {
  lines.push('', "| write latency, one fio run: whole backups alternating with quiet spells of the same length (Holdfast: range backup; peer: qemu-storage-daemon with qemu's backup job) | requests (during / quiet) | p50 during / quiet | p99 during | p99 quiet | during ÷ quiet | per-cycle median | target |", '|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const [id, a] of altRows) {
    const title = `${a.label ?? id}${a.rateCap ? ` (${a.rateCap.replace('--rate_iops=', 'capped at ')} IOPS)` : ''}`;
    for (const server of ['holdfast', 'qsd']) {
      const slot = a[server];
      if (!slot) continue;
      const name = server === 'qsd' ? "peer: qemu's backup job" : 'Holdfast';
      slot.runs.forEach((r, i) =>
        lines.push(`| ${name}, ${title}, run ${i + 1}: ${r.cycles} backups in ${a.seconds} s | ${r.backup.n} / ${r.quiet.n} | ${r.backup.p50} / ${r.quiet.p50 ?? '-'} µs | ${r.backup.p99} µs | ${r.quiet.p99 ?? '-'} µs | ${r.p99Ratio ?? '-'}× | ${r.cycleP99RatioMedian ?? '-'}× | ${server === 'qsd' ? 'reference' : `≤ ${a.target}×`} |`),
      );
      if (slot.runs.length > 1) lines.push(`| ${name}, ${title}: median of ${slot.runs.length} runs | | | | | ${slot.p99RatioMedian ?? '-'}× | ${slot.cycleP99RatioMedianMedian ?? '-'}× | ${server === 'qsd' ? 'reference' : `≤ ${a.target}×`} |`);
    }
  }
}
const peerRows = Object.entries(peerLatency);
if (peerRows.length) {
  lines.push('', '| peer: qemu-nbd write latency | no backup | while restic backs up the image | during ÷ no backup (best) | Holdfast during its own range backup ÷ no backup |', '|---|---:|---:|---:|---:|');
  for (const [id, p] of peerRows) {
    const own = latency[id.replace(/^qemu-nbd /, '')];
    lines.push(`| ${id} | ${fmt(p.bestNoBackupUs)} µs | ${fmt(p.bestDuringBackupUs)} µs | ${p.ratio.toFixed(2)}× | ${own ? `${own.ratio.toFixed(2)}× (${fmt(own.bestDuringBackupUs)} µs)` : '-'} |`);
  }
}
const cbwRows = Object.entries(cbwLatency);
if (cbwRows.length) {
  lines.push('', '| peer: qemu-storage-daemon write latency | no backup | during its copy-before-write backup job (128 MiB/s) | during ÷ no backup (best) | (median) | Holdfast during its own range backup ÷ no backup (best / median) |', '|---|---:|---:|---:|---:|---:|');
  for (const [id, p] of cbwRows) {
    const own = latency[id.replace(/^qemu backup job /, '')];
    lines.push(`| ${id} | ${fmt(p.bestNoBackupUs)} µs | ${fmt(p.bestDuringBackupUs)} µs | ${p.ratio.toFixed(2)}× | ${p.medianRatio.toFixed(2)}× | ${own ? `${own.ratio.toFixed(2)}× / ${own.medianRatio.toFixed(2)}×` : '-'} |`);
  }
}
console.log(lines.join('\n'));
if (cpuIdle.guestHaltPollNs === '0') console.log('\nNote: guest halt polling is off here (guest_halt_poll_ns=0): an idle vCPU halts at once, so quiet phases pay vCPU wake-ups that a busy machine does not; the during ÷ quiet ratios read low (bench/results/nbd-latency-alternate-session15.txt §3).');
console.log(`\n(${only === "latency" ? 0 : rounds} throughput rounds (best of), ${latRounds} latency rounds, ${runtime} s per fio run, ${sizeMiB} MiB file, ${env.cpus} CPUs, load ${env.loadavg.map((l) => l.toFixed(1)).join(' ')})`);
fs.rmSync(dir, { recursive: true, force: true });
