/**
 * Block status (base:allocation) of engine volumes with real clients: nbdinfo --map and qemu-img
 * map see the zero ranges of a sparse volume (and the held writes of a running backup as data),
 * qemu's 2 GiB - 1 byte requests on a volume over 2 GiB are answered, and nbdcopy / qemu-img
 * convert copy such a volume byte for byte while skipping its zeroes.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackup } from '../../src-main/engine/vault/backup-writer';
import { nativeFs } from '../../src-main/engine/env/native-fs';
import { ZERO_CELL } from '../../src-main/engine/volumes/zero-scan';
import { NBD_CMD_FLAG_DF, NBD_CMD_READ, NBD_CMD_WRITE } from '../../src-main/nbd/protocol';
import { replyBuffers } from '../../src-main/nbd/reply-buffers';
import { RawClient } from '../nbd/raw-client';
import { mustRun, serveEngine, type EngineServed } from './fixture';

const MiB = 1 << 20;
const GiB = 1 << 30;
const SIZE = 2 * GiB + MiB;
let s: EngineServed;

interface MapEntry {
  offset: number;
  length: number;
  type: number;
}

/** nbdinfo --map as [offset, length, zero?] runs. */
async function nbdMap(name: string): Promise<Array<[number, number, boolean]>> {
  const entries = JSON.parse(await mustRun('nbdinfo', ['--map', '--json', s.uri(name)])) as MapEntry[];
  return entries.map((e) => [e.offset, e.length, (e.type & 2) !== 0]);
}

beforeAll(async () => {
  s = await serveEngine({ deviceBytes: 3 * GiB });
  await s.engine.api['volume.create']({ name: 'big', size: SIZE });
  await mustRun('qemu-io', ['-f', 'raw', s.uri('big'), '-c', 'write -P 0xcd 1G 3M', '-c', 'write -P 0x11 2G 4k', '-c', 'flush']);
}, 120_000);
afterAll(async () => {
  await s?.cleanup();
});

/** `big` as [offset, length, zero?] runs: the two writes of beforeAll, in 64 KiB cells. */
const BIG_MAP: Array<[number, number, boolean]> = [
  [0, GiB, true],
  [GiB, 3 * MiB, false],
  [GiB + 3 * MiB, GiB - 3 * MiB, true],
  [2 * GiB, ZERO_CELL, false],
  [2 * GiB + ZERO_CELL, MiB - ZERO_CELL, true],
];

describe('block status of engine volumes with real clients', () => {
  it('nbdinfo --map reports the written cells as data and the rest as zero', async () => {
    expect(await nbdMap('big')).toEqual(BIG_MAP);
  }, 60_000);

  it('qemu-img map (REQ_ONE, 2 GiB - 1 byte requests) maps the volume', async () => {
    const map = JSON.parse(await mustRun('qemu-img', ['map', '-f', 'raw', '--output=json', s.uri('big')])) as Array<{
      start: number;
      length: number;
      zero: boolean;
      data: boolean;
    }>;
    expect(map.map((e) => [e.start, e.length, e.zero])).toEqual(BIG_MAP);
  }, 60_000);

  it('nbdcopy and qemu-img convert copy the volume byte for byte, leaving its zeroes unwritten', async () => {
    for (const [tool, args] of [
      ['nbdcopy', (out: string) => [s.uri('big'), out]],
      ['qemu-img', (out: string) => ['convert', '-f', 'raw', '-O', 'raw', s.uri('big'), out]],
    ] as const) {
      const out = path.join(s.dir, `copy-${tool}.img`);
      await mustRun(tool, args(out), 120_000);
      expect(fs.statSync(out).size).toBe(SIZE);
      expect(fs.statSync(out).blocks * 512, `${tool}'s copy is sparse`).toBeLessThan(64 * MiB);
      await mustRun('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', out, s.uri('big')], 120_000);
      const fd = fs.openSync(out, 'r');
      const b = Buffer.alloc(4096);
      fs.readSync(fd, b, 0, 4096, GiB + 3 * MiB - 4096);
      expect(b.every((x) => x === 0xcd)).toBe(true);
      fs.readSync(fd, b, 0, 4096, 2 * GiB);
      expect(b.every((x) => x === 0x11)).toBe(true);
      fs.closeSync(fd);
      fs.rmSync(out);
    }
  }, 240_000);

  it('reads send known zeroes as holes (structured replies without DF), the bytes unchanged', async () => {
    const c = await RawClient.connect(s.socket);
    try {
      await c.go('big');
      await s.engine.volume('big').blockStatus(0, SIZE); // what is known: the map (or a scan) has run
      // 1 GiB - 1 MiB .. 1 GiB + 1 MiB: a hole, then the data written at 1 GiB.
      const r = await c.request(NBD_CMD_READ, GiB - MiB, 2 * MiB);
      expect(r.error).toBe(0);
      expect(r.chunks).toEqual([
        { type: 'hole', offset: GiB - MiB, length: MiB },
        { type: 'data', offset: GiB, length: MiB },
      ]);
      expect(r.data!.subarray(0, MiB).every((b) => b === 0)).toBe(true);
      expect(r.data!.subarray(MiB).every((b) => b === 0xcd)).toBe(true);
      // DF (do not fragment): one data chunk, zeroes included.
      const df = await c.request(NBD_CMD_READ, GiB - MiB, 2 * MiB, NBD_CMD_FLAG_DF);
      expect(df.chunks).toEqual([{ type: 'data', offset: GiB - MiB, length: 2 * MiB }]);
      expect(df.data!.equals(r.data!)).toBe(true);
      // A write into a known hole: read back as data at once.
      const w = await c.request(NBD_CMD_WRITE, GiB - MiB + 4096, 4096, 0, Buffer.alloc(4096, 0x5a));
      expect(w.error).toBe(0);
      const again = await c.request(NBD_CMD_READ, GiB - MiB, 2 * MiB);
      expect(again.chunks).toEqual([
        { type: 'data', offset: GiB - MiB, length: ZERO_CELL },
        { type: 'hole', offset: GiB - MiB + ZERO_CELL, length: MiB - ZERO_CELL },
        { type: 'data', offset: GiB, length: MiB },
      ]);
      expect(again.data!.subarray(4096, 8192).every((b) => b === 0x5a)).toBe(true);
      expect(again.data!.subarray(0, 4096).every((b) => b === 0) && again.data!.subarray(8192, MiB).every((b) => b === 0)).toBe(true);
    } finally {
      c.close();
    }
    // libnbd (nbdcopy without block status) and qemu read the holes as zeroes.
    const out = path.join(s.dir, 'noext.img');
    await mustRun('nbdcopy', ['--no-extents', s.uri('big'), out], 120_000);
    await mustRun('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', out, s.uri('big')], 120_000);
    fs.rmSync(out);
    const io = await mustRun('qemu-io', ['-r', '-f', 'raw', s.uri('big'), '-c', `read -P 0 ${GiB - 4 * MiB} 3M`, '-c', `read -P 0xcd ${GiB} 3M`]);
    expect(io).not.toMatch(/Pattern verification failed|error/i);
  }, 240_000);

  it('a client that never reads its sparse replies stalls only itself; pooled reply memory stays bounded and correct', async () => {
    const hog = await RawClient.connect(s.socket);
    await hog.go('big');
    hog.socket.pause(); // never read replies
    const before = process.memoryUsage().arrayBuffers;
    const reqs: Buffer[] = [];
    // 1 MiB reads across the hole/data edge at 1 GiB: holes and pooled data buffers in every reply.
    for (let i = 0; i < 3000; i++) reqs.push(RawClient.request(NBD_CMD_READ, BigInt(i + 1), GiB - MiB / 2 + (i % 4) * 4096, MiB));
    hog.socket.write(Buffer.concat(reqs));
    await new Promise((res) => setTimeout(res, 2000));
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(200 * MiB);
    // Another client is served meanwhile, with the right bytes.
    const io = await mustRun('qemu-io', ['-r', '-f', 'raw', s.uri('big'), '-c', `read -P 0 ${GiB - 2 * MiB} 1M`, '-c', `read -P 0xcd ${GiB} 2M`]);
    expect(io).not.toMatch(/Pattern verification failed|error/i);
    hog.close();
    for (let i = 0; i < 50 && s.server.clientCount('big') > 0; i++) await new Promise((res) => setTimeout(res, 50));
    expect(s.server.clientCount('big')).toBe(0);
    // Buffers that went back to the pool hold nothing stale: reads through them are right.
    expect(replyBuffers.idleBytes).toBeLessThanOrEqual(64 * MiB);
    const c = await RawClient.connect(s.socket);
    try {
      await c.go('big');
      for (let i = 0; i < 8; i++) {
        const r = await c.request(NBD_CMD_READ, GiB - MiB / 2, MiB);
        expect(r.data!.subarray(0, MiB / 2).every((b) => b === 0) && r.data!.subarray(MiB / 2).every((b) => b === 0xcd)).toBe(true);
      }
    } finally {
      c.close();
    }
  }, 60_000);

  it('a grown volume reports its new space as zero', async () => {
    await s.engine.api['volume.create']({ name: 'grows', size: 64 * MiB });
    await mustRun('qemu-io', ['-f', 'raw', s.uri('grows'), '-c', 'write -P 0x42 60M 4k']);
    expect(await nbdMap('grows')).toEqual([
      [0, 60 * MiB, true],
      [60 * MiB, ZERO_CELL, false],
      [60 * MiB + ZERO_CELL, 4 * MiB - ZERO_CELL, true],
    ]);
    await s.engine.api['volume.grow']({ name: 'grows', size: 96 * MiB });
    await mustRun('qemu-io', ['-f', 'raw', s.uri('grows'), '-c', 'write -P 0x43 80M 4k']);
    expect(await nbdMap('grows')).toEqual([
      [0, 60 * MiB, true],
      [60 * MiB, ZERO_CELL, false],
      [60 * MiB + ZERO_CELL, 20 * MiB - ZERO_CELL, true],
      [80 * MiB, ZERO_CELL, false],
      [80 * MiB + ZERO_CELL, 16 * MiB - ZERO_CELL, true],
    ]);
  }, 60_000);

  it('a snapshot export sends the chunks its manifest records as zero as holes', async () => {
    const b = await s.engine.api['backup.start']({ volume: 'grows', policy: 'range' });
    expect(b.state).toBe('completed');
    await s.registry.refresh();
    const c = await RawClient.connect(s.socket);
    try {
      await c.go(`grows@${b.snapshotId}`);
      await c.request(NBD_CMD_READ, 0, 4096); // opens the snapshot's reader
      const r = await c.request(NBD_CMD_READ, 52 * MiB, 12 * MiB);
      expect(r.error).toBe(0);
      expect(r.chunks!.filter((ch) => ch.type === 'hole').reduce((n, ch) => n + ch.length, 0)).toBeGreaterThanOrEqual(4 * MiB);
      expect(r.data!.equals(await s.engine.volume('grows').read(52 * MiB, 12 * MiB))).toBe(true);
      expect(r.data!.subarray(8 * MiB, 8 * MiB + 4096).every((x) => x === 0x42)).toBe(true);
    } finally {
      c.close();
    }
  }, 120_000);

  for (const policy of ['range', 'metadata'] as const)
    it(`a full ${policy} backup of a sparse volume records the image files' holes as zero chunks unread; the snapshot is the image of begin`, async () => {
      const name = `sparse-${policy}`;
      await s.engine.api['volume.create']({ name, size: 128 * MiB });
      const vol = s.engine.volume(name);
      const early = crypto.randomBytes(MiB);
      await vol.write(8 * MiB, early); // before begin: in the page cache, not yet allocated on disk (delayed allocation)
      await vol.write(100 * MiB, Buffer.alloc(64 * 1024, 0x31));
      const session = await s.engine.beginBackup(name, policy, `bk-${name}`);
      await vol.write(50 * MiB, Buffer.alloc(4096, 0x99)); // into a hole, after begin
      const vault = await s.engine.backups.vault(undefined);
      const m = await runBackup(session, vault, { full: true });
      expect(m.stats.readBytes, 'only the regions holding data at begin are read').toBeLessThanOrEqual(2 * vault.chunkSize);
      expect(m.stats.zeroChunks).toBe(128 * MiB / vault.chunkSize - 2);
      const out = path.join(s.dir, `${name}.img`);
      await s.engine.api['restore.start']({ id: m.id, toFile: out });
      const img = fs.readFileSync(out);
      expect(img.subarray(8 * MiB, 9 * MiB).equals(early)).toBe(true);
      expect(img.subarray(100 * MiB, 100 * MiB + 64 * 1024).every((b) => b === 0x31)).toBe(true);
      expect(img.subarray(50 * MiB, 50 * MiB + 4096).every((b) => b === 0), 'written after begin: not in the snapshot').toBe(true);
      expect(img.subarray(0, 8 * MiB).every((b) => b === 0) && img.subarray(9 * MiB, 50 * MiB).every((b) => b === 0)).toBe(true);
      expect((await vol.read(50 * MiB, 4096)).every((b) => b === 0x99), 'and on the volume after end').toBe(true);
      fs.rmSync(out);
    }, 120_000);

  it('a backup started through the API (paced) skips the holes too', async () => {
    await s.engine.api['volume.create']({ name: 'sparse-api', size: 64 * MiB });
    await s.engine.volume('sparse-api').write(20 * MiB, Buffer.alloc(4096, 7));
    const b = await s.engine.api['backup.start']({ volume: 'sparse-api', policy: 'range', full: true });
    expect(b.state).toBe('completed');
    const vault = await s.engine.backups.vault(undefined);
    const m = await vault.getManifest(b.snapshotId!);
    expect(m.stats.readBytes).toBe(vault.chunkSize);
    expect(m.stats.zeroChunks).toBe(64 * MiB / vault.chunkSize - 1);
  }, 60_000);

  it('a restore into a new volume leaves its zero regions unwritten; over a used volume it zeroes them (holes where the addon punches)', async () => {
    await s.engine.api['volume.create']({ name: 'rs-src', size: 64 * MiB });
    const data = crypto.randomBytes(2 * MiB);
    await s.engine.volume('rs-src').write(10 * MiB, data);
    const b = await s.engine.api['backup.start']({ volume: 'rs-src', policy: 'range', full: true });
    const disk = path.join(s.dir, 'disk.img');
    const before = fs.statSync(disk).blocks * 512;
    await s.engine.api['restore.start']({ id: b.snapshotId!, toVolume: 'rs-new' });
    expect(fs.statSync(disk).blocks * 512 - before, 'only the data is written').toBeLessThan(8 * MiB);
    const want = await s.engine.volume('rs-src').read(0, 64 * MiB);
    expect((await s.engine.volume('rs-new').read(0, 64 * MiB)).equals(want)).toBe(true);
    // Over a volume full of other bytes: every zero region is written.
    await s.engine.api['volume.create']({ name: 'rs-used', size: 64 * MiB });
    await s.engine.volume('rs-used').write(0, crypto.randomBytes(64 * MiB));
    await s.engine.volume('rs-used').flush();
    const full = fs.statSync(disk).blocks * 512;
    await s.engine.api['restore.start']({ id: b.snapshotId!, toVolume: 'rs-used', confirm: 'rs-used' });
    expect((await s.engine.volume('rs-used').read(0, 64 * MiB)).equals(want)).toBe(true);
    if (nativeFs()) expect(full - fs.statSync(disk).blocks * 512, 'the zero regions are holes again').toBeGreaterThanOrEqual(48 * MiB);
  }, 120_000);

  it('write-zeroes and trims over zeroes the volume knows leave its image unwritten: a whole-volume discard, a sparse import', async () => {
    const disk = path.join(s.dir, 'disk.img');
    const used = () => fs.statSync(disk).blocks * 512;
    await s.engine.api['volume.create']({ name: 'tz', size: 256 * MiB });
    await s.engine.volume('tz').holesLearnt();
    let before = used();
    await mustRun('qemu-io', ['-f', 'raw', s.uri('tz'), '-c', 'discard 0 256M', '-c', 'write -z 0 256M', '-c', 'flush']);
    expect(used() - before, 'mkfs-style discard of a new volume').toBeLessThan(MiB);
    // Data written, then the whole volume zeroed: only the data's cells are written with zeroes.
    await mustRun('qemu-io', ['-f', 'raw', s.uri('tz'), '-c', 'write -P 0x66 10M 1M', '-c', 'flush']);
    before = used();
    await mustRun('qemu-io', ['-f', 'raw', s.uri('tz'), '-c', 'write -z 0 256M', '-c', 'read -P 0 0 256M']);
    expect(used() - before).toBeLessThan(2 * MiB);
    expect((await s.engine.volume('tz').read(10 * MiB, MiB)).every((b) => b === 0)).toBe(true);
    // nbdcopy of a sparse image into a new volume sends write-zeroes for its holes.
    const src = path.join(s.dir, 'sparse-src.img');
    fs.writeFileSync(src, Buffer.alloc(0));
    fs.truncateSync(src, 128 * MiB);
    const fd = fs.openSync(src, 'r+');
    fs.writeSync(fd, crypto.randomBytes(4 * MiB), 0, 4 * MiB, 40 * MiB);
    fs.closeSync(fd);
    await s.engine.api['volume.create']({ name: 'tz2', size: 128 * MiB });
    await s.engine.volume('tz2').holesLearnt();
    before = used();
    await mustRun('nbdcopy', [src, s.uri('tz2')]);
    expect(used() - before, 'only the data').toBeLessThan(8 * MiB);
    await mustRun('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, s.uri('tz2')]);
  }, 120_000);

  it('qemu-io discard and write-zeroes over data give the image space back (NO_HOLE keeps it) and map as zero at once', async () => {
    if (!nativeFs()) return console.log('skipping: the holdfast-fs addon is not built here; trims write zeroes');
    const disk = path.join(s.dir, 'disk.img');
    const used = () => fs.statSync(disk).blocks * 512;
    await s.engine.api['volume.create']({ name: 'ph', size: 24 * MiB });
    await mustRun('qemu-io', ['-f', 'raw', s.uri('ph'), '-c', 'write -P 0x5a 0 24M', '-c', 'flush']);
    let before = used();
    await mustRun('qemu-io', ['-f', 'raw', s.uri('ph'), '-c', 'discard 4M 8M', '-c', 'write -z -u 14M 4M']);
    expect(before - used(), 'discard and write -z -u (may unmap) punch holes').toBeGreaterThanOrEqual(12 * MiB);
    before = used();
    await mustRun('qemu-io', ['-f', 'raw', s.uri('ph'), '-c', 'write -z 19M 2M']); // no -u: NBD_CMD_FLAG_NO_HOLE
    expect(used(), 'write-zeroes with NO_HOLE keeps its blocks').toBeGreaterThanOrEqual(before);
    expect(await nbdMap('ph')).toEqual([
      [0, 4 * MiB, false],
      [4 * MiB, 8 * MiB, true],
      [12 * MiB, 2 * MiB, false],
      [14 * MiB, 4 * MiB, true],
      [18 * MiB, MiB, false],
      [19 * MiB, 2 * MiB, true],
      [21 * MiB, 3 * MiB, false],
    ]);
    const reads = ['read -P 0x5a 0 4M', 'read -P 0 4M 8M', 'read -P 0x5a 12M 2M', 'read -P 0 14M 4M', 'read -P 0x5a 18M 1M', 'read -P 0 19M 2M', 'read -P 0x5a 21M 3M'];
    await mustRun('qemu-io', ['-f', 'raw', s.uri('ph'), ...reads.flatMap((r) => ['-c', r])]);
    await s.engine.api['volume.delete']({ name: 'ph' });
  }, 60_000);

  it('a write held by a range backup shows as data before it reaches the device', async () => {
    const session = await s.engine.beginBackup('big', 'range', 'bk-status');
    try {
      await mustRun('qemu-io', ['-f', 'raw', s.uri('big'), '-c', 'write -P 0x77 512M 4k']);
      expect(s.engine.volume('big').holdState().heldCount).toBe(1);
      const map = await nbdMap('big');
      expect(map.slice(0, 2)).toEqual([
        [0, 512 * MiB, true],
        [512 * MiB, ZERO_CELL, false],
      ]);
      expect(map[2]).toMatchObject([512 * MiB + ZERO_CELL, expect.any(Number), true]);
    } finally {
      await session.end('snap-status');
    }
  }, 60_000);
});
