/**
 * The FAT12/16/32 probe against real images made by mkfs.vfat and filled with mtools,
 * checked sector by sector against minfo's layout and mshowfat's cluster lists: boot and
 * reserved sectors, every FAT copy, the fixed root directory and every directory cluster are
 * metadata; file data clusters are not; nothing else is.
 */
import { mkdirSync, openSync, closeSync, writeSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mappedBlocks, missing, probeImage, removeDir, run, sparseFile, tempDir } from './fixtures';
import { minfo, mshowfat } from './fat-oracle';

const MiB = 1024 * 1024;

interface Case {
  name: string;
  mkfs: string[];
  size: number;
  width: 12 | 16 | 32;
}

const cases: Case[] = [
  { name: 'FAT12', mkfs: ['-F', '12'], size: 4 * MiB, width: 12 },
  { name: 'FAT16', mkfs: ['-F', '16'], size: 32 * MiB, width: 16 },
  { name: 'FAT16 with one FAT and 4 KiB clusters', mkfs: ['-F', '16', '-f', '1', '-s', '8'], size: 48 * MiB, width: 16 },
  { name: 'FAT32', mkfs: ['-F', '32', '-s', '1'], size: 64 * MiB, width: 32 },
];

const dirs = ['/docs', '/docs/deep', '/docs/deep/deeper', '/many'];
const files: string[] = [];

let work: string;
let src: string;

beforeAll(() => {
  work = tempDir('fat');
  src = join(work, 'src');
  for (const d of dirs) mkdirSync(join(src, d), { recursive: true });
  const file = (rel: string, size: number) => {
    writeFileSync(join(src, rel), Buffer.alloc(size, rel.length));
    files.push(rel);
  };
  for (let i = 0; i < 8; i++) file(`/docs/note-${i}.txt`, 3000 + i * 1111);
  file('/docs/deep/deeper/leaf.bin', 70_000);
  file('/data.bin', 300_000);
  // Long names take several 32-byte slots each: /many spans many clusters.
  for (let i = 0; i < 120; i++) file(`/many/a rather long file name number ${String(i).padStart(3, '0')}.txt`, i % 3 === 0 ? 700 : 0);
});
afterAll(() => removeDir(work));

function makeImage(c: Case, name: string): string {
  const image = join(work, name);
  sparseFile(image, c.size);
  run('mkfs.vfat', [...c.mkfs, image]);
  run('mcopy', ['-s', '-i', image, join(src, 'docs'), join(src, 'many'), join(src, 'data.bin'), '::/']);
  return image;
}

describe('FAT probe matches minfo and mshowfat', () => {
  for (const [i, c] of cases.entries()) {
    it(`classifies ${c.name} exactly as mkfs.vfat and mtools lay it out`, async () => {
      const image = makeImage(c, `case-${i}.img`);
      const info = minfo(image);
      const map = await probeImage(image);
      expect(map.fsType).toBe('vfat');
      expect(map.conservative).toBe(false);
      expect(map.blockSize).toBe(info.clusterSize);
      expect(map.describe()).toContain(`FAT${c.width}`);

      const ss = info.sectorSize;
      const spc = info.clusterSize / ss;
      const clusterSectors = (cl: number) => {
        const first = info.dataOffset / ss + (cl - 2) * spc;
        return Array.from({ length: spc }, (_, k) => first + k);
      };
      const expected = new Set<number>();
      const fixedEnd = info.dataOffset / ss; // reserved + FATs + fixed root directory
      for (let s = 0; s < fixedEnd; s++) expected.add(s);
      const dirPaths = c.width === 32 ? ['::/', ...dirs.map((d) => `::${d}`)] : dirs.map((d) => `::${d}`);
      const dirClusters = mshowfat(image, dirPaths);
      expect(dirClusters.find((x) => x.length === 0)).toBeUndefined();
      expect(dirClusters[dirPaths.indexOf('::/many')]!.length * info.clusterSize).toBeGreaterThan(120 * 32 * 2);
      for (const cl of dirClusters.flat()) for (const s of clusterSectors(cl)) expected.add(s);

      const mapped = mappedBlocks(map, ss);
      expect(missing(expected, mapped), 'metadata sectors the probe missed').toEqual([]);
      expect(missing(mapped, expected), 'sectors the probe wrongly calls metadata').toEqual([]);
      if (c.width === 32) {
        expect(map.isMetadata(info.fsInfoSector * ss, ss)).toBe(true);
        expect(map.isMetadata(info.backupBootSector * ss, ss)).toBe(true);
      }

      const dataClusters = mshowfat(image, files.map((f) => `::${f}`)).flat();
      expect(dataClusters.length * info.clusterSize).toBeGreaterThan(300_000);
      for (const cl of dataClusters) {
        const off = info.dataOffset + (cl - 2) * info.clusterSize;
        if (map.isMetadata(off, info.clusterSize)) throw new Error(`data cluster ${cl} was classified as metadata`);
      }
    });
  }

  it('stays conservative when a directory chain points outside the FAT', async () => {
    const image = makeImage(cases[3]!, 'corrupt.img');
    const info = minfo(image);
    const [docs] = mshowfat(image, ['::/docs']);
    const fd = openSync(image, 'r+');
    try {
      const entry = Buffer.alloc(4);
      entry.writeUInt32LE(0x0fff_fff0); // neither a valid cluster nor an end-of-chain marker
      writeSync(fd, entry, 0, 4, info.reservedSectors * info.sectorSize + docs![0]! * 4);
      const check = Buffer.alloc(4);
      readSync(fd, check, 0, 4, info.reservedSectors * info.sectorSize + docs![0]! * 4);
      expect(check.readUInt32LE()).toBe(0x0fff_fff0);
    } finally {
      closeSync(fd);
    }
    const map = await probeImage(image);
    expect(map.fsType).toBe('vfat');
    expect(map.conservative).toBe(true);
    expect(map.isMetadata(info.dataOffset + 10_000 * info.clusterSize, 4096)).toBe(true);
    expect(map.ranges).toEqual([{ offset: 0, length: 64 * MiB }]);
    expect(map.describe()).toMatch(/every write is treated as a metadata write/);
  });
});
