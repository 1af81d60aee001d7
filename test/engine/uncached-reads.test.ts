/**
 * Backups read their volume uncached (O_DIRECT): the bytes are what a buffered read returns
 * (dirty pages included), unaligned requests fall back to buffered reads, and a backup of a
 * volume that is not in the page cache leaves it out (no readahead folios behind, which make
 * later small writes dearer, and none of the user's cache evicted). Page-cache residency is
 * read with util-linux's fincore; where the temp filesystem refuses O_DIRECT the cache checks
 * are skipped with a printed reason (the bytes are still checked).
 */
import { describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Engine } from '../../src-main/engine/engine';
import { alignedSharedMemory } from '../../src-main/engine/env/aligned-memory';
import { NodeEnv } from '../../src-main/engine/env/node-env';
import { ChunkWorkers } from '../../src-main/engine/vault/chunk-workers';
import { cachedBytes, evict, useTempDirs } from './helpers';

const mk = useTempDirs();
const MiB = 1 << 20;

/** Whether O_DIRECT opens here (not on every filesystem); prints why the cache checks are skipped if not. */
function directWorks(dir: string): boolean {
  const probe = path.join(dir, 'probe');
  fs.writeFileSync(probe, Buffer.alloc(4096));
  try {
    fs.closeSync(fs.openSync(probe, fs.constants.O_RDONLY | (fs.constants.O_DIRECT ?? 0)));
    evict(probe);
    if (cachedBytes(probe) !== 0) throw new Error('this filesystem keeps dropped pages');
    return true;
  } catch (e) {
    console.log(`skipping page-cache checks: ${(e as Error).message} on ${dir}`);
    return false;
  }
}

describe('uncached reads (BlockFile.readUncached, uncachedFd)', () => {
  it('read what buffered reads read, dirty pages included; unaligned requests fall back; nothing stays cached', async () => {
    const d = mk();
    const direct = directWorks(d);
    const p = path.join(d, 'dev.img');
    const data = crypto.randomBytes(8 * MiB);
    fs.writeFileSync(p, data);
    evict(p);
    const f = await new NodeEnv().open(p);
    try {
      const mem = Buffer.from(alignedSharedMemory(4 * MiB), 0, 4 * MiB);
      expect(await f.readUncached(mem, 2 * MiB)).toBe(4 * MiB);
      expect(mem.equals(data.subarray(2 * MiB, 6 * MiB))).toBe(true);
      if (direct) {
        expect(f.uncachedFd!()).not.toBeNull();
        expect(cachedBytes(p), 'an uncached read leaves no pages behind').toBe(0);
      }
      // A buffered write not yet written back: the direct read writes it back first and sees it.
      const fresh = crypto.randomBytes(64 * 1024);
      await f.write(fresh, 3 * MiB + 8192);
      fresh.copy(data, 3 * MiB + 8192);
      expect(await f.readUncached(mem, 2 * MiB)).toBe(4 * MiB);
      expect(mem.equals(data.subarray(2 * MiB, 6 * MiB)), 'dirty pages are read').toBe(true);
      // Unaligned memory, position and length: buffered reads, same bytes.
      const plain = Buffer.alloc(MiB + 100);
      expect(await f.readUncached(plain, 12345)).toBe(MiB + 100);
      expect(plain.equals(data.subarray(12345, 12345 + MiB + 100))).toBe(true);
      const odd = mem.subarray(512, 512 + MiB); // 512-byte aligned only: may or may not go direct
      expect(await f.readUncached(odd, 4096)).toBe(MiB);
      expect(odd.equals(data.subarray(4096, 4096 + MiB))).toBe(true);
      // Past the end: short, like read().
      expect(await f.readUncached(mem, 6 * MiB)).toBe(2 * MiB);
      expect(mem.subarray(0, 2 * MiB).equals(data.subarray(6 * MiB))).toBe(true);
    } finally {
      await f.close();
    }
    // close() closed both descriptors: a second close is a no-op, and no descriptor of the file is left open.
    const open = fs.readdirSync('/proc/self/fd').map((fd) => {
      try {
        return fs.readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return '';
      }
    });
    expect(open).not.toContain(p);
  });

  it('reads the file it opened even after its path was renamed and replaced', async () => {
    const d = mk();
    const direct = directWorks(d);
    const p = path.join(d, 'dev.img');
    const data = crypto.randomBytes(MiB);
    fs.writeFileSync(p, data);
    const f = await new NodeEnv().open(p);
    try {
      fs.renameSync(p, `${p}.old`);
      fs.writeFileSync(p, Buffer.alloc(MiB, 0x55)); // an impostor at the old path
      if (direct) expect(f.uncachedFd!()).not.toBeNull();
      const mem = Buffer.from(alignedSharedMemory(MiB), 0, MiB);
      expect(await f.readUncached(mem, 0)).toBe(MiB);
      expect(mem.equals(data), 'the opened file, not the impostor').toBe(true);
    } finally {
      await f.close();
    }
  });

  it('chunk workers read located pieces through the uncached descriptor, falling back where the kernel refuses', async () => {
    const d = mk();
    const direct = directWorks(d);
    const p = path.join(d, 'dev.img');
    const B = 4096;
    const data = crypto.randomBytes(64 * B);
    fs.writeFileSync(p, data);
    evict(p);
    const fd = fs.openSync(p, 'r');
    const dfd = direct ? fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_DIRECT!) : -1;
    const pool = new ChunkWorkers({ encKey: null, idKey: null, level: 1 }, 1);
    try {
      await pool.digest(Buffer.from('boot'));
      const slots = pool.slots(2, 16 * B);
      const s = await slots.acquire();
      // Slot block 0..3 from device blocks 8..11; two blocks at an unaligned slot offset (the
      // kernel refuses: buffered); one block plus one past the end.
      const reads = Float64Array.from([fd, dfd, 8 * B, 4 * B, 0, fd, dfd, 20 * B, 2 * B, 5 * B + 100, fd, dfd, 63 * B, 2 * B, 8 * B]);
      s.input.fill(0xee);
      const r = await pool.slotPack(s, reads, Uint32Array.from([0, 1, 2, 3, 8, 9]), B);
      expect([...r.zeroBlocks]).toEqual([0, 0, 0, 0, 0, 1]);
      expect(s.input.subarray(0, 4 * B).equals(data.subarray(8 * B, 12 * B))).toBe(true);
      expect(s.input.subarray(4 * B, 5 * B).equals(data.subarray(63 * B))).toBe(true);
      if (direct) expect(cachedBytes(p), 'the aligned pieces were read uncached').toBeLessThanOrEqual(3 * B);
      slots.release(s);
    } finally {
      await pool.close();
      fs.closeSync(fd);
      if (dfd >= 0) fs.closeSync(dfd);
    }
  });
});

describe('a backup of a volume that is not in the page cache', () => {
  it('leaves it out of the cache, full and incremental, and restores exactly', async () => {
    const d = mk();
    const direct = directWorks(d);
    const disk = path.join(d, 'disk.img');
    const VOL = 32 * MiB;
    const data = crypto.randomBytes(VOL);
    let e = await Engine.open({ dataDir: path.join(d, 'data') });
    try {
      await e.api['device.add']({ path: disk, create: true, size: 128 * MiB });
      await e.api['volume.create']({ name: 'live', size: VOL, ack: 'device' });
      await e.volume('live').write(0, data);
    } finally {
      await e.close();
    }
    evict(disk);
    const before = direct ? cachedBytes(disk) : 0;
    e = await Engine.open({ dataDir: path.join(d, 'data') });
    try {
      const full = await e.api['backup.start']({ volume: 'live', policy: 'range', full: true });
      expect(full.state).toBe('completed');
      if (direct) expect(cachedBytes(disk) - before, 'a full backup reads around the page cache').toBeLessThan(MiB);
      const original = Buffer.from(data);
      // Scattered writes for an incremental: changed blocks with gaps read through.
      const vol = e.volume('live');
      for (let k = 0; k < 128; k++) {
        const at = ((k * 7919) % (VOL / 4096 - 16)) * 4096;
        const w = crypto.randomBytes(4096 * (1 + (k % 16)));
        await vol.write(at, w);
        w.copy(data, at);
      }
      await e.close();
      evict(disk);
      e = await Engine.open({ dataDir: path.join(d, 'data') });
      const start = direct ? cachedBytes(disk) : 0;
      const inc = await e.api['backup.start']({ volume: 'live', policy: 'range' });
      expect(inc.kind).toBe('incremental');
      if (direct) expect(cachedBytes(disk) - start, 'an incremental backup reads around the page cache').toBeLessThan(MiB);
      for (const [b, name] of [[full, 'r1'], [inc, 'r2']] as const) {
        await e.api['restore.start']({ id: b.snapshotId!, toVolume: name });
        const img = await e.volume(name).read(0, VOL);
        expect(img.equals(b === inc ? data : original), `${b.kind} snapshot restores to the volume as it was`).toBe(true);
      }
      expect((await e.api['snapshot.verify']({ id: inc.snapshotId! })).ok).toBe(true);
    } finally {
      await e.close();
    }
  }, 120_000);
});

describe('a backup of regions the engine touched lately', () => {
  it('reads them through the page cache (taken to be cached: a copy, no disk I/O)', async () => {
    const d = mk();
    if (!directWorks(d)) return;
    const disk = path.join(d, 'disk.img');
    const VOL = 32 * MiB;
    const e = await Engine.open({ dataDir: path.join(d, 'data') });
    try {
      await e.api['device.add']({ path: disk, create: true, size: 128 * MiB });
      await e.api['volume.create']({ name: 'live', size: VOL, ack: 'device' });
      const data = crypto.randomBytes(8 * MiB);
      await e.volume('live').write(8 * MiB, data); // regions 2 and 3 touched now
      // The guess can be wrong: drop the file from the cache behind the engine's back. The
      // touched regions are still read buffered (and so come back into the cache), the rest not.
      evict(disk);
      const before = cachedBytes(disk);
      const b = await e.api['backup.start']({ volume: 'live', policy: 'range', full: true });
      expect(b.state).toBe('completed');
      const grew = cachedBytes(disk) - before;
      expect(grew, 'the two touched regions were read buffered').toBeGreaterThanOrEqual(8 * MiB);
      // Read buffered, the six untouched regions would add 24 MiB; readahead past the touched ones may add one region.
      expect(grew, 'the six untouched ones were not').toBeLessThanOrEqual(12 * MiB);
      await e.api['restore.start']({ id: b.snapshotId!, toVolume: 'r' });
      const img = await e.volume('r').read(0, VOL);
      expect(img.subarray(8 * MiB, 16 * MiB).equals(data)).toBe(true);
      expect(img.subarray(0, 8 * MiB).every((x) => x === 0) && img.subarray(16 * MiB).every((x) => x === 0)).toBe(true);
    } finally {
      await e.close();
    }
  }, 60_000);
});
