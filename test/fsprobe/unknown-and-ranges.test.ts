/**
 * The probe's safety side: volumes it cannot read with confidence are wholly metadata, read
 * failures surface as IO_ERROR, and the range set answers overlaps exactly at range edges.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeFilesystem } from '../../src-main/engine/fsprobe/index';
import { RangeCollector } from '../../src-main/engine/fsprobe/range-set';
import { HoldfastError } from '../../src-shared/errors';
import { probeImage, removeDir, run, sparseFile, tempDir } from './fixtures';

const MiB = 1024 * 1024;
let work: string;
beforeAll(() => {
  work = tempDir('unknown');
});
afterAll(() => removeDir(work));

describe('volumes without a readable filesystem', () => {
  it('treats an all-zero volume as unknown and every write as metadata', async () => {
    const image = join(work, 'zero.img');
    sparseFile(image, 8 * MiB);
    const map = await probeImage(image);
    expect(map.fsType).toBe('unknown');
    expect(map.conservative).toBe(true);
    expect(map.ranges).toEqual([{ offset: 0, length: 8 * MiB }]);
    for (const off of [0, 4096, 5 * MiB, 8 * MiB - 512]) expect(map.isMetadata(off, 512)).toBe(true);
    expect(map.describe()).toMatch(/No filesystem Holdfast can read was found/);
  });

  it('treats random garbage as unknown', async () => {
    const image = join(work, 'garbage.img');
    writeFileSync(image, randomBytes(2 * MiB));
    const map = await probeImage(image);
    expect(map.fsType).toBe('unknown');
    expect(map.isMetadata(MiB, 4096)).toBe(true);
  });

  it('treats a tiny volume (smaller than a superblock) as unknown', async () => {
    const map = await probeFilesystem(async (_o, l) => Buffer.alloc(l), 300);
    expect(map.fsType).toBe('unknown');
    expect(map.isMetadata(0, 1)).toBe(true);
  });

  it('stays conservative when an ext4 superblock claims more blocks than the volume has', async () => {
    const image = join(work, 'truncated.img');
    sparseFile(image, 16 * MiB);
    run('mkfs.ext4', ['-q', '-F', '-b', '4096', image]);
    run('truncate', ['-s', String(8 * MiB), image]); // the volume shrank under the filesystem
    const map = await probeImage(image);
    expect(map.fsType).toBe('ext4');
    expect(map.conservative).toBe(true);
    expect(map.isMetadata(6 * MiB, 4096)).toBe(true);
    expect(map.describe()).toMatch(/could not be mapped/);
  });

  it('goes conservative instead of reading past its byte budget', async () => {
    const image = join(work, 'budget.img');
    sparseFile(image, 32 * MiB);
    run('mkfs.ext4', ['-q', '-F', '-b', '1024', image]);
    const full = await probeImage(image);
    expect(full.conservative).toBe(false);
    const capped = await probeImage(image, { maxReadBytes: Math.floor(full.bytesRead / 2) });
    expect(capped.fsType).toBe('ext4');
    expect(capped.conservative).toBe(true);
    expect(capped.bytesRead).toBeLessThanOrEqual(full.bytesRead);
  });

  it('reports a failing read as IO_ERROR', async () => {
    const err = await probeFilesystem(async () => {
      throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
    }, MiB).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HoldfastError);
    expect((err as HoldfastError).code).toBe('IO_ERROR');
    const short = await probeFilesystem(async () => Buffer.alloc(10), MiB).catch((e: unknown) => e);
    expect((short as HoldfastError).code).toBe('IO_ERROR');
  });

  it('rejects a negative or fractional volume size', async () => {
    await expect(probeFilesystem(async (_o, l) => Buffer.alloc(l), -1)).rejects.toMatchObject({ code: 'INVALID_SIZE' });
    await expect(probeFilesystem(async (_o, l) => Buffer.alloc(l), 1.5)).rejects.toMatchObject({ code: 'INVALID_SIZE' });
  });
});

describe('metadata range set', () => {
  it('merges overlapping and touching ranges, clips to the volume, and answers overlaps at the edges', () => {
    const c = new RangeCollector(10_000);
    c.add(500, 100); // 500..600
    c.add(100, 50); // 100..150
    c.add(150, 10); // touches: 100..160
    c.add(550, 200); // overlaps: 500..750
    c.add(9_900, 500); // clipped: 9900..10000
    c.add(3000, 0); // empty: ignored
    const r = c.freeze();
    expect(r.toArray()).toEqual([
      { offset: 100, length: 60 },
      { offset: 500, length: 250 },
      { offset: 9900, length: 100 },
    ]);
    expect(r.overlaps(0, 100)).toBe(false); // ends exactly where a range starts
    expect(r.overlaps(0, 101)).toBe(true);
    expect(r.overlaps(160, 340)).toBe(false); // the gap between two ranges, edge to edge
    expect(r.overlaps(159, 1)).toBe(true);
    expect(r.overlaps(749, 1)).toBe(true);
    expect(r.overlaps(750, 9150)).toBe(false);
    expect(r.overlaps(0, 20_000)).toBe(true);
    expect(r.overlaps(600, 0)).toBe(false);
  });

  it('agrees with a brute-force model on random ranges and queries', () => {
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    for (let round = 0; round < 20; round++) {
      const size = 4096;
      const c = new RangeCollector(size);
      const model = new Uint8Array(size);
      for (let i = 0; i < 30; i++) {
        const o = rnd(size);
        const l = 1 + rnd(200);
        c.add(o, l);
        for (let b = o; b < Math.min(size, o + l); b++) model[b] = 1;
      }
      const r = c.freeze();
      for (let q = 0; q < 300; q++) {
        const o = rnd(size);
        const l = 1 + rnd(100);
        const want = model.subarray(o, Math.min(size, o + l)).includes(1);
        expect(r.overlaps(o, l)).toBe(want);
      }
    }
  });

  it('answers a million lookups over 100k ranges exactly (binary search at scale)', () => {
    const c = new RangeCollector(2 ** 40);
    for (let i = 0; i < 100_000; i++) c.add(i * 1_000_000, 4096);
    const r = c.freeze();
    expect(r.count).toBe(100_000);
    let hits = 0;
    // Even i: the write starts on a range; odd i: it starts 8 KiB later, in the gap. Timing is
    // for bench/, not here (the machine is shared); this proves the answers at scale.
    for (let i = 0; i < 1_000_000; i++) if (r.overlaps(((i * 7919) % 100_000) * 1_000_000 + (i % 2) * 8192, 4096)) hits++;
    expect(hits).toBe(500_000);
  });
});
