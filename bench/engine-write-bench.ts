/**
 * Engine write-path micro-benchmark (issue 3): 4 KiB random writes and 1 MiB sequential
 * writes through a live volume (journal on, no backup) versus plain positional fs.write to
 * an image file of its own in the same run, each at queue depth 1 and 16; plus hold-queue insert
 * + release of 100k writes and memory per held write. Each writer has its own file because the
 * page cache sizes a file's folios by the write that made them (ext4 6.16+), and a writer's
 * speed depends on the folios it writes into: the volume writes in 256 KiB pieces
 * (small-folio-writes.ts), the plain writer 1 MiB at once, and either one is slowed by the other's.
 *   node dist/bench/engine-write-bench.cjs [--seconds N]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LiveVolume } from '../src-main/engine/volumes/live-volume';
import { NodeEnv } from '../src-main/engine/env/node-env';
import { HeldWrite, HoldQueue } from '../src-main/engine/holds/hold-queue';
import { BackupSession } from '../src-main/engine/backup/backup-session';

const SECONDS = Number(process.argv[process.argv.indexOf('--seconds') + 1]) || 3;
const SIZE = 1 << 30;

type Writer = (offset: number, buf: Buffer) => Promise<void>;

/**
 * How long the event loop goes without reaching its check phase: a setImmediate chain measures
 * the gap between consecutive turns. A client's request that arrives meanwhile waits for the
 * rest of such a gap, so the long ones are what the release costs the volume's clients.
 */
function turnProbe(): { stop(): { longestMs: number; over100us: number; over300us: number; over1ms: number } } {
  const r = { longestMs: 0, over100us: 0, over300us: 0, over1ms: 0 };
  let last = performance.now();
  let on = true;
  const tick = (): void => {
    const now = performance.now();
    const gap = now - last;
    last = now;
    if (gap >= 0.1) r.over100us++;
    if (gap >= 0.3) r.over300us++;
    if (gap >= 1) r.over1ms++;
    if (gap > r.longestMs) r.longestMs = gap;
    if (on) setImmediate(tick);
  };
  setImmediate(tick);
  return {
    stop() {
      on = false;
      return r;
    },
  };
}
async function run(write: Writer, blockSize: number, random: boolean, depth: number): Promise<{ ops: number; seconds: number }> {
  const buf = Buffer.alloc(blockSize, 0x5a);
  const blocks = SIZE / blockSize;
  let next = 0;
  let ops = 0;
  const t0 = performance.now();
  const deadline = t0 + SECONDS * 1000;
  const worker = async () => {
    while (performance.now() < deadline) {
      const b = random ? Math.floor(Math.random() * blocks) : next++ % blocks;
      await write(b * blockSize, buf);
      ops++;
    }
  };
  await Promise.all(Array.from({ length: depth }, worker));
  return { ops, seconds: (performance.now() - t0) / 1000 };
}

function plainWriter(fd: number): Writer {
  return (offset, buf) =>
    new Promise((res, rej) => fs.write(fd, buf, 0, buf.length, offset, (e) => (e ? rej(e) : res())));
}

/** Heap bytes per queued write, excluding its data (all entries share one data buffer). */
function heldWriteMemory(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc to measure memory per held write');
  const data = Buffer.alloc(4096);
  gc();
  const m0 = process.memoryUsage();
  const q = new HoldQueue();
  for (let i = 0; i < 100_000; i++) q.push(new HeldWrite(i + 1, ((i * 7919) % 262144) * 4096, 4096, data, 0));
  gc();
  const m1 = process.memoryUsage();
  if (q.count !== 100_000) throw new Error('queue lost entries');
  return (m1.heapUsed - m0.heapUsed + m1.arrayBuffers - m0.arrayBuffers) / 100_000;
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hf-bench-'));
  const image = path.join(dir, 'disk.img');
  fs.writeFileSync(image, '');
  fs.truncateSync(image, SIZE);
  const env = new NodeEnv();
  const file = await env.open(image);
  const { volume } = await LiveVolume.open({
    id: 1,
    name: 'bench',
    size: SIZE,
    ackMode: 'journal',
    extents: [{ volumeOffset: 0, length: SIZE, deviceId: 1, deviceOffset: 0 }],
    fileFor: () => file,
    journalDir: path.join(dir, 'journal'),
    journalOptions: { segmentBytes: 64 << 20, capacity: 1 << 30 },
    env,
    bootId: 'bench',
  });
  // The plain writer's own file; `fd` (the volume's image) takes the range release's plain writes.
  const plainImage = path.join(dir, 'plain.img');
  fs.writeFileSync(plainImage, '');
  fs.truncateSync(plainImage, SIZE);
  const plainFd = fs.openSync(plainImage, 'r+');
  const fd = fs.openSync(image, 'r+');
  const rows: Array<Record<string, unknown>> = [];
  const cases: Array<[string, number, boolean, number]> = [
    ['4 KiB random write QD1', 4096, true, 1],
    ['4 KiB random write QD16', 4096, true, 16],
    ['1 MiB sequential write QD1', 1 << 20, false, 1],
    ['1 MiB sequential write QD16', 1 << 20, false, 16],
  ];
  for (const [name, bs, random, qd] of cases) {
    // Warm up both, then alternate plain/engine twice and keep the better of each (noise).
    await run(plainWriter(plainFd), bs, random, qd);
    await run((o, b) => volume.write(o, b), bs, random, qd);
    let plain = 0;
    let engine = 0;
    for (let rep = 0; rep < 2; rep++) {
      const p = await run(plainWriter(plainFd), bs, random, qd);
      plain = Math.max(plain, p.ops / p.seconds);
      const e = await run((o, b) => volume.write(o, b), bs, random, qd);
      engine = Math.max(engine, e.ops / e.seconds);
      await volume.checkpoint();
    }
    const target = bs === 4096 ? 0.7 : 0.8;
    const unit = bs === 4096 ? 'IOPS' : 'MiB/s';
    const scale = bs === 4096 ? 1 : bs / (1 << 20);
    rows.push({ case: name, unit, plain: Math.round(plain * scale), engine: Math.round(engine * scale), ratio: +(engine / plain).toFixed(2), target, pass: engine / plain >= target });
  }

  // Hold queue: insert + release of 100k writes (data structure cost, no device I/O).
  const q = new HoldQueue();
  const data = Buffer.alloc(4096);
  const t0 = performance.now();
  const entries: HeldWrite[] = [];
  for (let i = 0; i < 100_000; i++) {
    const w = new HeldWrite(i + 1, (i * 7919 % 262144) * 4096, 4096, data, 0);
    q.push(w);
    entries.push(w);
  }
  for (const w of entries) q.remove(w);
  const holdSeconds = (performance.now() - t0) / 1000;

  const bytesPerHeld = heldWriteMemory();

  // End-to-end: 100k held 4 KiB writes released to the device after end().
  const s = await BackupSession.begin(volume, 'bench-backup', 'volume', async () => ({ isMetadata: () => true, describe: () => '' }));
  for (let i = 0; i < 100_000; i++) await volume.write((i * 7919 % 262144) * 4096, data);
  const tr = performance.now();
  await s.end('bench-snap');
  const releaseSeconds = (performance.now() - tr) / 1000;

  // Range policy: 100k held 4 KiB writes at random offsets of 512 MiB (~780 per 4 MiB chunk, as
  // a queue-depth-1 writer leaves for the last chunks of a 25 s backup), released as a backup
  // marks the chunks copied one after another; against the same writes straight to the image
  // file (what they would have cost the device unheld, in arrival order).
  const RANGE = 512 << 20;
  const CHUNK = 4 << 20;
  const offsets = Array.from({ length: 100_000 }, () => Math.floor(Math.random() * (RANGE / 4096)) * 4096);
  const rs = await BackupSession.begin(volume, 'bench-range', 'range', async () => ({ isMetadata: () => true, describe: () => '' }));
  for (const o of offsets) await volume.write(o, data);
  const turns = turnProbe();
  const cpu0 = process.cpuUsage();
  const trr = performance.now();
  for (let off = 0; off < RANGE; off += CHUNK) {
    rs.rangeCopied(off, CHUNK);
    await new Promise((r) => setImmediate(r));
  }
  while (volume.holdState().heldCount > 0) await new Promise((r) => setTimeout(r, 1));
  const rangeSeconds = (performance.now() - trr) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const rangeCpuUs = (cpu.user + cpu.system) / 100_000; // µs of the process's CPU per released write
  const stalls = turns.stop();
  await rs.end('bench-range-snap');
  const tp = performance.now();
  for (const o of offsets) fs.writeSync(fd, data, 0, 4096, o);
  const plainSeconds = (performance.now() - tp) / 1000;

  rows.push({ case: 'hold queue insert+release 100k (structure)', seconds: +holdSeconds.toFixed(3), target: '< 0.5 s', pass: holdSeconds < 0.5 });
  rows.push({ case: 'memory per held write (excl. data)', bytes: Math.round(bytesPerHeld), target: '<= 128', pass: bytesPerHeld <= 128 });
  rows.push({ case: 'release 100k held 4 KiB writes to the device', seconds: +releaseSeconds.toFixed(3), writesPerSec: Math.round(100_000 / releaseSeconds) });
  rows.push({
    case: 'range release: 100k held 4 KiB writes, 4 MiB chunks copied in turn',
    seconds: +rangeSeconds.toFixed(3),
    plainSeconds: +plainSeconds.toFixed(3),
    ratio: +(plainSeconds / rangeSeconds).toFixed(2),
    cpuUsPerWrite: +rangeCpuUs.toFixed(2),
    longestStallMs: +stalls.longestMs.toFixed(2),
    turnsOver100us: stalls.over100us,
    turnsOver300us: stalls.over300us,
    turnsOver1ms: stalls.over1ms,
    target: '>= 1.0 (release no slower than the same writes unheld)',
    pass: plainSeconds / rangeSeconds >= 1,
  });

  await volume.close();
  await file.close();
  fs.closeSync(fd);
  fs.closeSync(plainFd);
  fs.rmSync(dir, { recursive: true, force: true });

  const out = { bench: 'engine-write', date: new Date().toISOString(), seconds: SECONDS, rows };
  const resultsDir = path.resolve(process.cwd(), 'bench/results');
  fs.mkdirSync(resultsDir, { recursive: true });
  fs.writeFileSync(path.join(resultsDir, 'engine-write.json'), JSON.stringify(out, null, 2) + '\n');
  console.log('| case | plain fs.write | engine | ratio | target |');
  console.log('|---|---|---|---|---|');
  for (const r of rows) {
    if ('plainSeconds' in r) console.log(`| ${r.case} (${r.cpuUsPerWrite} µs of CPU per write; longest stall ${r.longestStallMs} ms; turns ≥ 0.1 / 0.3 / 1 ms: ${r.turnsOver100us} / ${r.turnsOver300us} / ${r.turnsOver1ms}) | ${r.plainSeconds} s | ${r.seconds} s | ${r.ratio}× | ${r.target} ${r.pass ? '✓' : '✗'} |`);
    else if ('ratio' in r) console.log(`| ${r.case} | ${r.plain} ${r.unit} | ${r.engine} ${r.unit} | ${r.ratio}× | ≥ ${r.target}× ${r.pass ? '✓' : '✗'} |`);
    else console.log(`| ${r.case} | | ${'seconds' in r ? r.seconds + ' s' : r.bytes + ' B'} | | ${r.target ?? ''} ${'pass' in r ? (r.pass ? '✓' : '✗') : ''} |`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
