/**
 * The `holdfast-fs` addon's calls as the engine uses them. A file's allocation map comes from
 * lseek(SEEK_DATA / SEEK_HOLE): holes and unwritten extents read as zeroes, dirty data not yet
 * placed counts as data — the same answer as filefrag's FIEMAP, without a process.
 * Write-zeroes and trims make ranges read as zeroes with fallocate
 * instead of writing zeroes: a trim gives the device image's space back (a hole), write-zeroes
 * with NO_HOLE keeps it allocated, partial blocks are zeroed exactly, and where a file system
 * refuses a mode (tmpfs has no FALLOC_FL_ZERO_RANGE) zeroes are written instead. A volume that
 * reopens after a trim finds the trimmed range as a hole in its image's allocation map, unread;
 * a deleted volume's space in an image file goes back to the file system.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Engine } from '../../src-main/engine/engine';
import { FaultyEnv } from '../../src-main/engine/env/faulty-env';
import { nativeFs } from '../../src-main/engine/env/native-fs';
import { NodeEnv } from '../../src-main/engine/env/node-env';
import { readAllocation } from '../../src-main/engine/env/filefrag';
import { ZERO_CELL } from '../../src-main/engine/volumes/zero-scan';
import { openTestVolume, readImage, tmpfsDir, useTempDirs } from '../engine/helpers';

const mk = useTempDirs();
const KiB = 1024;
const MiB = 1 << 20;

const allocated = (p: string) => fs.statSync(p).blocks * 512;

function noAddon(): string | null {
  return nativeFs() ? null : 'the holdfast-fs addon is not built here (no C compiler at npm install, or not Linux)';
}

describe('BlockFile.allocation', () => {
  it('maps data, holes and unwritten extents by SEEK_DATA / SEEK_HOLE, as filefrag does, also for dirty data not yet placed', async () => {
    const why = noAddon();
    if (why) return console.log(`skipping: ${why}`);
    const d = mk();
    const p = path.join(d, 'f.img');
    fs.writeFileSync(p, Buffer.alloc(0));
    fs.truncateSync(p, 64 * MiB);
    const fd = fs.openSync(p, 'r+');
    fs.writeSync(fd, crypto.randomBytes(MiB), 0, MiB, 8 * MiB);
    fs.writeSync(fd, crypto.randomBytes(4 * KiB), 0, 4 * KiB, 63 * MiB);
    fs.fsyncSync(fd);
    fs.writeSync(fd, crypto.randomBytes(8 * KiB), 0, 8 * KiB, 20 * MiB); // dirty: delayed allocation
    fs.closeSync(fd);
    execFileSync('fallocate', ['-o', String(30 * MiB), '-l', String(2 * MiB), p]); // unwritten: reads as zeroes
    const f = await new NodeEnv().open(p);
    try {
      const map = await f.allocation!();
      expect(map).toEqual([
        { offset: 8 * MiB, length: MiB, zero: false },
        { offset: 20 * MiB, length: 8 * KiB, zero: false },
        { offset: 63 * MiB, length: 4 * KiB, zero: false },
      ]);
      const ff = await readAllocation(p);
      if (ff) expect(ff.filter((r) => !r.zero), "filefrag's data ranges").toEqual(map);
      const native = nativeFs()!;
      expect(await native.dataRanges((f as unknown as { fd: number }).fd, 8 * MiB + 4096, 20 * MiB + 4096), 'a window').toEqual([
        [8 * MiB + 4096, MiB - 4096],
        [20 * MiB, 4096],
      ]);
      expect(await native.dataRanges((f as unknown as { fd: number }).fd, 32 * MiB, 63 * MiB), 'no data there').toEqual([]);
    } finally {
      await f.close();
    }
  });
});

describe('BlockFile.zeroRange', () => {
  it('punches a hole or zeroes in place, exactly over unaligned edges; the size and the bytes around stay', async () => {
    const why = noAddon();
    if (why) return console.log(`skipping: ${why}`);
    const d = mk();
    const p = path.join(d, 'f.img');
    const data = crypto.randomBytes(8 * MiB);
    fs.writeFileSync(p, data);
    const f = await new NodeEnv().open(p);
    try {
      const before = allocated(p);
      const [at, len] = [MiB + 1000, 2 * MiB + 5000];
      expect(await f.zeroRange(at, len, 'punch')).toBe(true);
      const want = Buffer.from(data);
      want.fill(0, at, at + len);
      expect(fs.readFileSync(p).equals(want), 'zeroes exactly there, the rest unchanged').toBe(true);
      expect(fs.statSync(p).size).toBe(8 * MiB);
      expect(before - allocated(p), 'the whole blocks inside are deallocated').toBeGreaterThanOrEqual(2 * MiB);

      const mid = allocated(p);
      expect(await f.zeroRange(5 * MiB + 7, MiB, 'allocate')).toBe(true);
      want.fill(0, 5 * MiB + 7, 6 * MiB + 7);
      expect(fs.readFileSync(p).equals(want)).toBe(true);
      expect(allocated(p), 'ZERO_RANGE keeps the blocks allocated').toBe(mid);
    } finally {
      await f.close();
    }
  });

  it('a file system without a mode answers false and changes nothing (tmpfs: no ZERO_RANGE)', async () => {
    const why = noAddon();
    if (why) return console.log(`skipping: ${why}`);
    const d = tmpfsDir();
    if (!d) return console.log('skipping: no tmpfs at /dev/shm');
    try {
      const p = path.join(d, 'f.img');
      const data = crypto.randomBytes(2 * MiB);
      fs.writeFileSync(p, data);
      const f = await new NodeEnv().open(p);
      try {
        expect(await f.zeroRange(0, MiB, 'allocate')).toBe(false);
        expect(await f.zeroRange(0, MiB, 'allocate'), 'remembered').toBe(false);
        expect(fs.readFileSync(p).equals(data)).toBe(true);
        expect(await f.zeroRange(0, MiB, 'punch'), 'tmpfs punches').toBe(true);
        expect(readImage(p, 0, MiB).every((b) => b === 0)).toBe(true);
        expect(readImage(p, MiB, MiB).equals(data.subarray(MiB))).toBe(true);
      } finally {
        await f.close();
      }
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  });
});

describe('a volume zeroes by fallocate', () => {
  it('trim and write-zeroes give the image space back, NO_HOLE keeps it; reopened, the trimmed range is a hole, unread', async () => {
    const why = noAddon();
    if (why) return console.log(`skipping: ${why}`);
    const d = mk();
    const size = 32 * MiB;
    const env = new FaultyEnv(new NodeEnv());
    const tv = await openTestVolume(d, 'vol', size, { env });
    const data = crypto.randomBytes(size);
    await tv.vol.write(0, data);
    await tv.vol.flush();
    const full = allocated(tv.imagePath);
    expect(full).toBeGreaterThanOrEqual(size);

    await tv.vol.trim(4 * MiB, 8 * MiB);
    expect(full - allocated(tv.imagePath), 'the trimmed 8 MiB deallocated').toBeGreaterThanOrEqual(8 * MiB);
    await tv.vol.writeZeroes(16 * MiB, 4 * MiB);
    expect(full - allocated(tv.imagePath), 'write-zeroes may punch too').toBeGreaterThanOrEqual(12 * MiB);
    const mid = allocated(tv.imagePath);
    await tv.vol.writeZeroes(24 * MiB + 512, 2 * MiB, { noHole: true });
    expect(allocated(tv.imagePath), 'NO_HOLE keeps its blocks (ext4 may add an extent block)').toBeGreaterThanOrEqual(mid);

    const want = Buffer.from(data);
    want.fill(0, 4 * MiB, 12 * MiB);
    want.fill(0, 16 * MiB, 20 * MiB);
    want.fill(0, 24 * MiB + 512, 26 * MiB + 512);
    expect((await tv.vol.read(0, size)).equals(want)).toBe(true);
    // Known zero at once, without reading.
    env.inject({ op: 'read', path: 'vol.img', times: Infinity, error: 'EIO' });
    expect(await tv.vol.blockStatus(4 * MiB, 8 * MiB)).toEqual([{ length: 8 * MiB, hole: false, zero: true }]);
    env.clear();

    await tv.vol.close();
    if ((await readAllocation(tv.imagePath)) === null) return console.log('skipping the reopen: no allocation map here (filefrag or FIEMAP missing)');
    const { vol } = await tv.reopen();
    try {
      await vol.holesLearnt();
      env.inject({ op: 'read', path: 'vol.img', times: Infinity, error: 'EIO' });
      expect(await vol.blockStatus(0, 16 * MiB), 'from the allocation map').toEqual([
        { length: 4 * MiB, hole: false, zero: false },
        { length: 8 * MiB, hole: false, zero: true },
        { length: 4 * MiB, hole: false, zero: false },
      ]);
      env.clear();
      expect((await vol.read(0, size)).equals(want), 'the same bytes after the reopen').toBe(true);
    } finally {
      await vol.close();
    }
  });

  it('where the file system cannot (tmpfs, NO_HOLE), zeroes are written; the bytes are the same', async () => {
    const d = tmpfsDir();
    if (!d) return console.log('skipping: no tmpfs at /dev/shm');
    try {
      const size = 8 * MiB;
      const tv = await openTestVolume(d, 'vol', size);
      try {
        const data = crypto.randomBytes(size);
        await tv.vol.write(0, data);
        await tv.vol.writeZeroes(MiB + 4 * KiB, 3 * MiB, { noHole: true });
        await tv.vol.trim(5 * MiB, ZERO_CELL + 4 * KiB);
        const want = Buffer.from(data);
        want.fill(0, MiB + 4 * KiB, 4 * MiB + 4 * KiB);
        want.fill(0, 5 * MiB, 5 * MiB + ZERO_CELL + 4 * KiB);
        expect((await tv.vol.read(0, size)).equals(want)).toBe(true);
        expect(readImage(tv.imagePath, 0, size).equals(want), 'on the device file').toBe(true);
      } finally {
        await tv.vol.close();
      }
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  });
});

describe('deleting a volume', () => {
  it("punches its space in the device image: the host gets it back, the next volume there reads zeroes", async () => {
    const why = noAddon();
    if (why) return console.log(`skipping: ${why}`);
    const d = mk();
    const disk = path.join(d, 'disk.img');
    const e = await Engine.open({ dataDir: path.join(d, 'data') });
    try {
      await e.api['device.add']({ path: disk, create: true, size: 128 * MiB });
      await e.api['volume.create']({ name: 'keep', size: 16 * MiB });
      await e.api['volume.create']({ name: 'old', size: 48 * MiB });
      const keep = crypto.randomBytes(16 * MiB);
      await e.volume('keep').write(0, keep);
      await e.volume('old').write(0, crypto.randomBytes(48 * MiB));
      await e.volume('old').flush();
      const before = allocated(disk);
      await e.api['volume.delete']({ name: 'old' });
      expect(before - allocated(disk), "the deleted volume's 48 MiB").toBeGreaterThanOrEqual(48 * MiB);
      await e.api['volume.create']({ name: 'new', size: 48 * MiB });
      expect((await e.volume('new').read(0, 48 * MiB)).every((b) => b === 0)).toBe(true);
      expect((await e.volume('keep').read(0, 16 * MiB)).equals(keep), 'the other volume untouched').toBe(true);
    } finally {
      await e.close();
    }
  });
});
