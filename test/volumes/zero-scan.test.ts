/**
 * Block status of a volume (zero-scan.ts, cell-states.ts): on a device file with holes the volume
 * learns the cells from the filesystem's allocation map (filefrag) where it can and reads the
 * rest, reporting the 64 KiB cells that read as zeroes, held writes included; it remembers what it
 * learnt until writes change it; on a fully allocated file it reports data without reading; a
 * reply stops at `maxExtents` and after STATUS_SCAN_MAX bytes read; a read error fails the
 * request with a code and leaves the volume serving. "Scanning" tests fail the allocation map
 * (FaultyEnv op `map`), as on a filesystem without FIEMAP.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FaultyEnv } from '../../src-main/engine/env/faulty-env';
import { parseFilefrag, readAllocation } from '../../src-main/engine/env/filefrag';
import { NodeEnv } from '../../src-main/engine/env/node-env';
import { UncopiedRangeRule } from '../../src-main/engine/holds/policy';
import { BlockBitmap } from '../../src-main/engine/volumes/block-bitmap';
import { CellStates } from '../../src-main/engine/volumes/cell-states';
import { classifyCells, ExtentList, STATUS_SCAN_MAX, ZERO_CELL } from '../../src-main/engine/volumes/zero-scan';
import { openTestVolume, readImage, useTempDirs } from '../engine/helpers';

const mk = useTempDirs();

/** An Env whose files have no allocation map: block status reads (as on tmpfs). */
function scanningEnv(): FaultyEnv {
  const env = new FaultyEnv(new NodeEnv());
  env.inject({ op: 'map', times: Infinity });
  return env;
}
const KiB = 1024;
const MiB = 1 << 20;

describe('classifyCells and ExtentList', () => {
  it('cut cells at volume-space multiples of ZERO_CELL, merge equal neighbours and stop at the extent limit', () => {
    const buf = Buffer.alloc(4 * ZERO_CELL);
    buf[ZERO_CELL + 5] = 1; // second cell (from the buffer's start) is data
    // The buffer starts 16 KiB into a cell: the first cell is partial (48 KiB), then whole cells.
    const at = 3 * ZERO_CELL + 16 * KiB;
    const out = new ExtentList(10);
    expect(classifyCells(buf, at, out)).toBe(ZERO_CELL);
    const sum = out.extents.reduce((n, e) => n + e.length, 0);
    expect(sum).toBe(buf.length);
    // Cells: [at, at+48K) zero, [at+48K, at+112K) holds byte ZERO_CELL+5 → data, the rest zero.
    expect(out.extents.map((e) => [e.length, e.zero])).toEqual([
      [48 * KiB, true],
      [ZERO_CELL, false],
      [buf.length - 48 * KiB - ZERO_CELL, true],
    ]);

    const one = new ExtentList(1);
    expect(classifyCells(buf, at, one), 'the second state does not fit one extent').toBe(-1);
    expect(one.extents).toEqual([{ length: 48 * KiB, hole: false, zero: true }]);
    expect(() => new ExtentList(0)).toThrow();
  });
});

describe('CellStates.reportKnown', () => {
  it('pushes one extent per run of known cells, stops at the first unknown cell, and at the extent limit', () => {
    const cells = new CellStates(16 * ZERO_CELL + 1000); // a partial last cell
    cells.observedZero(0, 4 * ZERO_CELL);
    cells.written(4 * ZERO_CELL, 10); // cell 4 data
    cells.observedZero(5 * ZERO_CELL, 3 * ZERO_CELL);
    cells.observedData(9 * ZERO_CELL, 7 * ZERO_CELL + 1000); // cell 8 unknown, 9.. data
    const out = new ExtentList(10);
    // From inside cell 1: a partial first run.
    expect(cells.reportKnown(ZERO_CELL + 100, 16 * ZERO_CELL, out)).toBe(8 * ZERO_CELL);
    expect(out.extents.map((e) => [e.length, e.zero])).toEqual([
      [3 * ZERO_CELL - 100, true],
      [ZERO_CELL, false],
      [3 * ZERO_CELL, true],
    ]);
    const rest = new ExtentList(10);
    expect(cells.reportKnown(9 * ZERO_CELL, 16 * ZERO_CELL + 1000, rest), 'to the volume end').toBe(16 * ZERO_CELL + 1000);
    expect(rest.extents).toEqual([{ length: 7 * ZERO_CELL + 1000, hole: false, zero: false }]);
    expect(cells.reportKnown(8 * ZERO_CELL, 9 * ZERO_CELL, new ExtentList(1)), 'an unknown first cell').toBe(8 * ZERO_CELL);
    const one = new ExtentList(1);
    expect(cells.reportKnown(0, 8 * ZERO_CELL, one), 'REQ_ONE: full after the first run').toBe(-1);
    expect(one.extents).toEqual([{ length: 4 * ZERO_CELL, hole: false, zero: true }]);
    const end = new ExtentList(2);
    expect(cells.reportKnown(2 * ZERO_CELL, 5 * ZERO_CELL, end), 'a window ending in a run').toBe(5 * ZERO_CELL);
    expect(end.extents.map((e) => [e.length, e.zero])).toEqual([
      [2 * ZERO_CELL, true],
      [ZERO_CELL, false],
    ]);
  });
});

describe('LiveVolume.blockStatus', () => {
  it('scanning: reports written cells as data and the rest of a sparse volume as zero, held writes included', async () => {
    const d = mk();
    const size = 16 * MiB;
    const { vol, imagePath } = await openTestVolume(d, 'vol', size, { env: scanningEnv() });
    try {
      expect(await vol.blockStatus(0, size)).toEqual([{ length: size, hole: false, zero: true }]);
      await vol.write(2 * MiB, crypto.randomBytes(100 * KiB)); // cells 32 and 33 (2 MiB .. 2 MiB + 128 KiB)
      await vol.write(9 * MiB + 4 * KiB, Buffer.alloc(4 * KiB, 7));
      // Zeroes written over data read as zeroes: reported zero (the cell's bytes are what counts).
      await vol.write(12 * MiB, crypto.randomBytes(ZERO_CELL));
      await vol.writeZeroes(12 * MiB, ZERO_CELL);
      expect(await vol.blockStatus(0, size)).toEqual([
        { length: 2 * MiB, hole: false, zero: true },
        { length: 2 * ZERO_CELL, hole: false, zero: false },
        { length: 9 * MiB - 2 * MiB - 2 * ZERO_CELL, hole: false, zero: true },
        { length: ZERO_CELL, hole: false, zero: false },
        { length: size - 9 * MiB - ZERO_CELL, hole: false, zero: true },
      ]);
      // Any range, not only sector-aligned ones (qemu asks for 2 GiB - 1 bytes).
      expect(await vol.blockStatus(2 * MiB - 1, 3)).toEqual([
        { length: 1, hole: false, zero: true },
        { length: 2, hole: false, zero: false },
      ]);

      // A range backup holds the next write (nothing copied yet): the device keeps zeroes, block
      // status sees the held bytes, as reads do.
      const copied = new BlockBitmap(size);
      await vol.beginBackup('bk', new UncopiedRangeRule(copied), copied);
      await vol.write(5 * MiB, Buffer.alloc(4 * KiB, 0xab));
      expect(vol.holdState().heldCount).toBe(1);
      expect(readImage(imagePath, 5 * MiB, 4 * KiB).every((b) => b === 0), 'held: not on the device').toBe(true);
      expect(await vol.blockStatus(5 * MiB - ZERO_CELL, 3 * ZERO_CELL)).toEqual([
        { length: ZERO_CELL, hole: false, zero: true },
        { length: ZERO_CELL, hole: false, zero: false },
        { length: ZERO_CELL, hole: false, zero: true },
      ]);
      await vol.endBackup('bk', 'snap');
    } finally {
      await vol.close();
    }
  });

  it('scanning: stops at maxExtents (REQ_ONE) without reading on, and reads at most STATUS_SCAN_MAX per request', async () => {
    const d = mk();
    const size = STATUS_SCAN_MAX + 16 * MiB;
    const env = scanningEnv();
    const { vol } = await openTestVolume(d, 'vol', size, { env });
    try {
      await vol.write(0, crypto.randomBytes(ZERO_CELL));
      // The first window and the one read ahead of it may be read; a third read fails the test.
      env.inject({ op: 'read', path: 'vol.img', after: 2, times: Infinity, error: 'EIO' });
      expect(await vol.blockStatus(0, size, 1)).toEqual([{ length: ZERO_CELL, hole: false, zero: false }]);
      env.clear();
      env.inject({ op: 'map', times: Infinity });
      const all = await vol.blockStatus(0, size);
      expect(all).toEqual([
        { length: ZERO_CELL, hole: false, zero: false },
        { length: STATUS_SCAN_MAX - ZERO_CELL, hole: false, zero: true },
      ]);
    } finally {
      await vol.close();
    }
  });

  it('scanning: remembers the cells it read until a write to them is submitted, held or not', async () => {
    const d = mk();
    const size = 16 * MiB;
    const env = scanningEnv();
    const { vol } = await openTestVolume(d, 'vol', size, { env });
    try {
      await vol.write(MiB, Buffer.alloc(4 * KiB, 1));
      const first = await vol.blockStatus(0, size);
      // Asked again: answered from memory (every read would fail now).
      env.inject({ op: 'read', path: 'vol.img', times: Infinity, error: 'EIO' });
      expect(await vol.blockStatus(2 * MiB, 2 * MiB)).toEqual([{ length: 2 * MiB, hole: false, zero: true }]);
      expect(await vol.blockStatus(0, size)).toEqual(first);
      env.clear();
      env.inject({ op: 'map', times: Infinity });
      expect(await vol.blockStatus(0, size)).toEqual(first);
      // A write clears its cell: the window is read again and the cell is data.
      await vol.write(3 * MiB, Buffer.alloc(4 * KiB, 2));
      expect(await vol.blockStatus(3 * MiB, ZERO_CELL)).toEqual([{ length: ZERO_CELL, hole: false, zero: false }]);
      // So does a held one (the device keeps its zeroes).
      const copied = new BlockBitmap(size);
      await vol.beginBackup('bk', new UncopiedRangeRule(copied), copied);
      await vol.write(10 * MiB, Buffer.alloc(4 * KiB, 3));
      expect(vol.holdState().heldCount).toBe(1);
      expect(await vol.blockStatus(10 * MiB, ZERO_CELL)).toEqual([{ length: ZERO_CELL, hole: false, zero: false }]);
      await vol.endBackup('bk', 'snap');
    } finally {
      await vol.close();
    }
  });

  it('scanning: does not remember cells read while a write was submitted', async () => {
    const d = mk();
    const size = 8 * MiB;
    const { vol } = await openTestVolume(d, 'vol', size, { env: scanningEnv() });
    try {
      for (let round = 0; round < 20; round++) {
        const at = round * 4 * ZERO_CELL;
        // The scan's first read is issued before the write is submitted; it may find the cell
        // still zero, but must not remember it so.
        const scan = vol.blockStatus(0, size);
        const write = vol.write(at, Buffer.alloc(4 * KiB, 9));
        await Promise.all([scan, write]);
        expect(await vol.blockStatus(at, ZERO_CELL), `round ${round}`).toEqual([{ length: ZERO_CELL, hole: false, zero: false }]);
      }
    } finally {
      await vol.close();
    }
  });

  it('reports a fully allocated device file as data without reading it', async () => {
    const d = mk();
    const size = 8 * MiB;
    fs.writeFileSync(path.join(d, 'vol.img'), Buffer.alloc(size)); // allocated zeroes, no holes
    const env = new FaultyEnv(new NodeEnv());
    const { vol } = await openTestVolume(d, 'vol', size, { env });
    try {
      env.inject({ op: 'read', path: 'vol.img', times: Infinity, error: 'EIO' });
      expect(await vol.blockStatus(0, size)).toEqual([{ length: size, hole: false, zero: false }]);
    } finally {
      await vol.close();
    }
  });

  it('scanning: a read error fails the request with IO_ERROR and the volume goes on serving', async () => {
    const d = mk();
    const size = 8 * MiB;
    const env = scanningEnv();
    const { vol } = await openTestVolume(d, 'vol', size, { env });
    try {
      env.inject({ op: 'read', path: 'vol.img', after: 1, error: 'EIO' });
      await expect(vol.blockStatus(0, size)).rejects.toMatchObject({ code: 'IO_ERROR', message: expect.stringMatching(/block status/) });
      await expect(vol.blockStatus(0, size + 1)).rejects.toMatchObject({ code: 'OUT_OF_RANGE' });
      expect(await vol.blockStatus(0, size)).toEqual([{ length: size, hole: false, zero: true }]);
      await vol.write(0, Buffer.alloc(4096, 1));
      expect((await vol.read(0, 4096))[0]).toBe(1);
    } finally {
      await vol.close();
    }
  });
});

describe('the allocation map (filefrag)', () => {
  it('parses filefrag -v: allocated, unwritten and delayed-allocation extents; no FIEMAP; nothing allocated', () => {
    const ext4 = [
      'Filesystem type is: ef53',
      'File size of ff.img is 67108864 (16384 blocks of 4096 bytes)',
      ' ext:     logical_offset:        physical_offset: length:   expected: flags:',
      '   0:     2048..    3071:   39060480..  39061503:   1024:       2048: unwritten',
      '   1:     3072..    3079:   39061504..  39061511:      8:            ',
      '   2:     4800..    4847:          0..         0:      0:             last,unknown_loc,delalloc',
      'ff.img: 3 extents found',
      '',
    ].join('\n');
    expect(parseFilefrag(ext4)).toEqual([
      { offset: 2048 * 4096, length: 1024 * 4096, zero: true },
      { offset: 3072 * 4096, length: 8 * 4096, zero: false },
      { offset: 4800 * 4096, length: 48 * 4096, zero: false },
    ]);
    expect(parseFilefrag('Filesystem type is: ef53\nFile size of e.img is 1048576 (256 blocks of 4096 bytes)\ne.img: 0 extents found\n')).toEqual([]);
    expect(parseFilefrag('Filesystem type is: 1021994\nFile size of /dev/shm/t is 2 (1 block of 4096 bytes)\n/dev/shm/t: FIBMAP/FIEMAP unsupported\n')).toBeNull();
    expect(parseFilefrag(ext4.replace('   1:     3072..', '   1:     30x2..')), 'a line it does not know').toBeNull();
    expect(parseFilefrag(ext4.replace('3 extents found', '0 extents found')), 'a summary that disagrees').toBeNull();
  });

  it('a sparse volume learns its holes, unwritten and allocated ranges without reading; write-zeroes is zero at once where it covers whole cells', async () => {
    const d = mk();
    const size = 16 * MiB;
    const img = path.join(d, 'vol.img');
    fs.writeFileSync(img, Buffer.alloc(0));
    fs.truncateSync(img, size);
    const fd = fs.openSync(img, 'r+');
    fs.writeSync(fd, crypto.randomBytes(100 * KiB), 0, 100 * KiB, MiB);
    fs.fsyncSync(fd);
    fs.writeSync(fd, crypto.randomBytes(8 * KiB), 0, 8 * KiB, 7 * MiB); // dirty: delayed allocation
    fs.closeSync(fd);
    execFileSync('fallocate', ['-o', String(4 * MiB), '-l', String(MiB), img]); // unwritten: reads as zeroes
    const map = await readAllocation(img);
    if (map === null) {
      console.log(`skipping: no allocation map on ${d} (filefrag missing or no FIEMAP); the scanning tests cover block status there`);
      return;
    }
    const env = new FaultyEnv(new NodeEnv());
    const { vol } = await openTestVolume(d, 'vol', size, { env });
    try {
      env.inject({ op: 'read', path: 'vol.img', times: Infinity, error: 'EIO' });
      expect(await vol.blockStatus(0, size)).toEqual([
        { length: MiB, hole: false, zero: true },
        { length: 2 * ZERO_CELL, hole: false, zero: false },
        { length: 6 * MiB - 2 * ZERO_CELL, hole: false, zero: true }, // the unwritten MiB at 4 MiB included
        { length: ZERO_CELL, hole: false, zero: false },
        { length: size - 7 * MiB - ZERO_CELL, hole: false, zero: true },
      ]);
      // A new write is data at once, still unread.
      await vol.write(12 * MiB, Buffer.alloc(4 * KiB, 5));
      expect(await vol.blockStatus(12 * MiB - ZERO_CELL, 3 * ZERO_CELL)).toEqual([
        { length: ZERO_CELL, hole: false, zero: true },
        { length: ZERO_CELL, hole: false, zero: false },
        { length: ZERO_CELL, hole: false, zero: true },
      ]);
      // Write-zeroes over allocated data: zero at once in the cells it covers whole, still unread;
      // a cell it covers in part is unknown until read, then zero (its only data was zeroed).
      await vol.writeZeroes(MiB, 2 * ZERO_CELL);
      expect(await vol.blockStatus(MiB, 2 * ZERO_CELL)).toEqual([{ length: 2 * ZERO_CELL, hole: false, zero: true }]);
      await vol.writeZeroes(12 * MiB, 4 * KiB);
      await expect(vol.blockStatus(12 * MiB, ZERO_CELL)).rejects.toMatchObject({ code: 'IO_ERROR' });
      env.clear();
      expect(await vol.blockStatus(12 * MiB - ZERO_CELL, 3 * ZERO_CELL)).toEqual([{ length: 3 * ZERO_CELL, hole: false, zero: true }]);
    } finally {
      await vol.close();
    }
  });
});
