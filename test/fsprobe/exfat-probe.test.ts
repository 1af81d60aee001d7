/**
 * The exFAT probe against an image made by mkfs.exfat, with directories and a file added
 * by writing entry sets (validated by fsck.exfat): boot regions, FAT, allocation bitmap,
 * up-case table and every directory cluster (contiguous and FAT-chained) are metadata,
 * the file's data clusters are not, and nothing else is.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mappedBlocks, missing, probeImage, removeDir, run, sparseFile, tempDir } from './fixtures';
import { dumpExfat, ExfatCrafter } from './exfat-craft';

const MiB = 1024 * 1024;
let work: string;
beforeAll(() => {
  work = tempDir('exfat');
});
afterAll(() => removeDir(work));

const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

describe('exFAT probe matches dump.exfat and fsck.exfat', () => {
  it('classifies boot regions, FAT, bitmap, up-case table and directories, not file data', async () => {
    const image = join(work, 'ex.img');
    sparseFile(image, 48 * MiB);
    run('mkfs.exfat', ['-c', '4096', image]);
    const d = dumpExfat(image);
    const used = new Set<number>();
    const claim = (cs: number[]) => cs.forEach((c) => used.add(c));
    const bitmapClusters = range(d.bitmapCluster, d.bitmapCluster + Math.ceil(d.bitmapSize / d.clusterSize) - 1);
    const upcaseClusters = range(d.upcaseCluster, d.upcaseCluster + Math.ceil(d.upcaseSize / d.clusterSize) - 1);
    claim([...bitmapClusters, ...upcaseClusters, d.rootCluster]);

    const dirA = [40];
    const dirB = [60, 75]; // FAT-chained and not contiguous
    const dirC = [90, 91]; // contiguous, NoFatChain, nested in B
    const fileInA = range(100, 107);
    const fileInC = range(200, 203);
    for (const cs of [dirA, dirB, dirC, fileInA, fileInC]) for (const c of cs) expect(used.has(c)).toBe(false);

    const craft = new ExfatCrafter(image, d);
    try {
      craft.mkdir(d.rootCluster, 'ALPHA', dirA, true);
      craft.mkdir(d.rootCluster, 'BETA', dirB, false);
      craft.mkdir(dirB[0]!, 'GAMMA', dirC, true);
      craft.writeFile(dirA[0]!, 'DATA.BIN', fileInA);
      craft.writeFile(dirC[0]!, 'MORE.BIN', fileInC);
    } finally {
      craft.close();
    }
    // The real checker agrees the crafted filesystem is consistent: 4 directories, 2 files.
    const fsck = run('fsck.exfat', ['-n', image]);
    expect(fsck).toMatch(/clean\. directories 4, files 2/);

    const map = await probeImage(image);
    expect(map.fsType).toBe('exfat');
    expect(map.conservative).toBe(false);
    expect(map.blockSize).toBe(d.clusterSize);
    expect(map.describe()).toContain('4 directories');

    const ss = d.sectorSize;
    const expected = new Set<number>();
    for (let s = 0; s < 24; s++) expected.add(s); // main and backup boot regions
    for (let s = d.fatOffset / ss; s < (d.fatOffset + d.fatLength) / ss; s++) expected.add(s);
    const spc = d.clusterSize / ss;
    for (const c of [...bitmapClusters, ...upcaseClusters, d.rootCluster, ...dirA, ...dirB, ...dirC]) {
      const first = (d.heapOffset + (c - 2) * d.clusterSize) / ss;
      for (let k = 0; k < spc; k++) expected.add(first + k);
    }
    const mapped = mappedBlocks(map, ss);
    expect(missing(expected, mapped), 'metadata sectors the probe missed').toEqual([]);
    expect(missing(mapped, expected), 'sectors the probe wrongly calls metadata').toEqual([]);
    for (const c of [...fileInA, ...fileInC]) expect(map.isMetadata(d.heapOffset + (c - 2) * d.clusterSize, d.clusterSize)).toBe(false);
  });
});
