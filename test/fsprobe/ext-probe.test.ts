/**
 * The ext2/3/4 probe against real images made by mkfs -d, checked block by block against
 * what dumpe2fs and debugfs say: every metadata block is in the map, no file data block is,
 * and nothing else is (the map equals the oracle's metadata set exactly).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildExtSourceTree, mappedBlocks, missing, probeImage, removeDir, run, sparseFile, tempDir, type SourceTree } from './fixtures';
import { debugfsStat, dumpe2fs } from './ext-oracle';

const MiB = 1024 * 1024;

interface Case {
  name: string;
  mkfs: string[];
  size: number;
  fsType: 'ext2' | 'ext3' | 'ext4';
}

const cases: Case[] = [
  { name: 'ext4 defaults at 1 KiB blocks (flex_bg, 64bit, metadata_csum)', mkfs: ['-t', 'ext4', '-b', '1024'], size: 64 * MiB, fsType: 'ext4' },
  { name: 'ext4 at 4 KiB blocks', mkfs: ['-t', 'ext4', '-b', '4096'], size: 64 * MiB, fsType: 'ext4' },
  { name: 'ext4 without flex_bg', mkfs: ['-t', 'ext4', '-b', '1024', '-O', '^flex_bg'], size: 64 * MiB, fsType: 'ext4' },
  { name: 'ext4 with 32-bit descriptors and gdt_csum', mkfs: ['-t', 'ext4', '-b', '1024', '-O', '^64bit,^metadata_csum,uninit_bg'], size: 48 * MiB, fsType: 'ext4' },
  { name: 'ext4 with meta_bg', mkfs: ['-t', 'ext4', '-b', '1024', '-O', 'meta_bg,^resize_inode'], size: 64 * MiB, fsType: 'ext4' },
  { name: 'ext4 with sparse_super2', mkfs: ['-t', 'ext4', '-b', '1024', '-O', 'sparse_super2'], size: 64 * MiB, fsType: 'ext4' },
  { name: 'ext4 with inline_data', mkfs: ['-t', 'ext4', '-b', '4096', '-O', 'inline_data'], size: 32 * MiB, fsType: 'ext4' },
  { name: 'ext4 with bigalloc (16 KiB clusters)', mkfs: ['-t', 'ext4', '-b', '4096', '-O', 'bigalloc', '-C', '16384'], size: 64 * MiB, fsType: 'ext4' },
  { name: 'ext4 with orphan_file, 128-byte inodes', mkfs: ['-t', 'ext4', '-b', '4096', '-O', 'orphan_file', '-I', '128'], size: 64 * MiB, fsType: 'ext4' },
  { name: 'ext4 without a journal, with quota', mkfs: ['-t', 'ext4', '-b', '1024', '-O', '^has_journal,quota'], size: 32 * MiB, fsType: 'ext4' },
  { name: 'ext3 with indirect block maps', mkfs: ['-t', 'ext3', '-b', '1024'], size: 64 * MiB, fsType: 'ext3' },
  { name: 'ext2 without sparse_super', mkfs: ['-t', 'ext2', '-b', '1024', '-O', '^sparse_super,^resize_inode'], size: 40 * MiB, fsType: 'ext2' },
  { name: 'ext2 at 2 KiB blocks', mkfs: ['-t', 'ext2', '-b', '2048'], size: 24 * MiB, fsType: 'ext2' },
];

let work: string;
let tree: SourceTree;

beforeAll(() => {
  work = tempDir('ext');
  tree = buildExtSourceTree(join(work, 'src'));
});
afterAll(() => removeDir(work));

function makeImage(c: Case, file: string): string {
  const image = join(work, file);
  sparseFile(image, c.size);
  run('mkfs.ext4', ['-q', '-F', ...c.mkfs, '-d', tree.root, image]);
  return image;
}

/** The oracle's metadata blocks and the regular files' data blocks. */
function oracle(image: string, firstIno: number, extraSpecial: number[]) {
  const special: string[] = [];
  for (let i = 2; i < firstIno; i++) special.push(`<${i}>`);
  for (const i of extraSpecial) if (i >= firstIno) special.push(`<${i}>`);
  const names = [...special, '/lost+found', ...tree.dirs, ...tree.files, ...tree.symlinks];
  const inodes = debugfsStat(image, names, work);
  const metadata = new Set<number>();
  const fileData = new Set<number>();
  const fileMapping = new Set<number>();
  const dirBlocks = new Set<number>();
  for (const ino of inodes) {
    const isSpecial = ino.name.startsWith('<');
    const dataIsMetadata = isSpecial || ino.type === 'directory' || ino.type === 'symlink';
    for (const b of ino.mapping) metadata.add(b);
    if (ino.xattrBlock) metadata.add(ino.xattrBlock);
    for (const b of ino.data) (dataIsMetadata ? metadata : fileData).add(b);
    if (ino.type === 'regular' && !isSpecial) for (const b of ino.mapping) fileMapping.add(b);
    if (ino.type === 'directory') for (const b of ino.data) dirBlocks.add(b);
  }
  return { metadata, fileData, fileMapping, dirBlocks, inodes };
}

describe('ext probe matches dumpe2fs and debugfs', () => {
  for (const [i, c] of cases.entries()) {
    it(`classifies ${c.name} exactly as e2fsprogs lays it out`, async () => {
      const image = makeImage(c, `case-${i}.img`);
      const layout = dumpe2fs(image);
      const map = await probeImage(image);
      expect(map.fsType).toBe(c.fsType);
      expect(map.conservative).toBe(false);
      expect(map.blockSize).toBe(layout.blockSize);

      const o = oracle(image, layout.firstIno, layout.extraSpecialInodes);
      const expected = new Set([...layout.staticMetadata, ...o.metadata]);
      const mapped = mappedBlocks(map, layout.blockSize);
      // Sanity of the oracle itself: it found the journal (ext3/4), directories and file data.
      if (c.fsType !== 'ext2' && !c.mkfs.some((a) => a.includes('^has_journal'))) expect(o.inodes.find((x) => x.name === '<8>')!.data.length).toBeGreaterThan(100);
      expect(o.dirBlocks.size).toBeGreaterThanOrEqual(c.mkfs.includes('inline_data') ? 3 : tree.dirs.length + 2);
      expect(o.fileData.size * layout.blockSize).toBeGreaterThan(1_000_000);

      expect(missing(expected, mapped), 'metadata blocks the probe missed').toEqual([]);
      expect(missing(mapped, expected), 'blocks the probe wrongly calls metadata').toEqual([]);
      for (const b of o.fileData) {
        if (map.isMetadata(b * layout.blockSize, layout.blockSize)) throw new Error(`file data block ${b} was classified as metadata`);
      }
      for (const b of o.dirBlocks) expect(map.isMetadata(b * layout.blockSize + 17, 1)).toBe(true);
      expect(map.describe()).toContain(c.fsType);
    });
  }

  it('maps the extent-tree leaf of a fragmented file and the indirect blocks of a block-mapped file, but not their data', async () => {
    const ext4 = makeImage(cases[0]!, 'tree.img');
    const ext3 = makeImage(cases.find((x) => x.fsType === 'ext3')!, 'tree3.img');
    for (const [image, name, kind] of [
      [ext4, '/fragmented.bin', 'extent tree block'],
      [ext3, '/big.bin', 'indirect block'],
    ] as const) {
      const [ino] = debugfsStat(image, [name], work);
      expect(ino!.mapping.length, `${name} should have a ${kind}`).toBeGreaterThan(0);
      const map = await probeImage(image);
      for (const b of ino!.mapping) expect(map.isMetadata(b * 1024, 1024)).toBe(true);
      for (const b of ino!.data) expect(map.isMetadata(b * 1024, 1024)).toBe(false);
    }
    const [big3] = debugfsStat(ext3, ['/big.bin'], work);
    expect(run('debugfs', ['-R', 'stat /big.bin', ext3])).toContain('(DIND)');
    expect(big3!.mapping.length).toBeGreaterThan(2);
  });

  it('probes a 2 GiB sparse 64bit ext4 image by reading a small fraction of it', async () => {
    const c: Case = { name: '2 GiB', mkfs: ['-t', 'ext4', '-b', '4096', '-O', '64bit', '-J', 'size=8'], size: 2048 * MiB, fsType: 'ext4' };
    const image = makeImage(c, 'big.img');
    const layout = dumpe2fs(image);
    expect(layout.features).toContain('64bit');
    const started = performance.now();
    const map = await probeImage(image);
    const elapsed = performance.now() - started;
    expect(map.fsType).toBe('ext4');
    expect(map.bytesRead).toBeLessThan(16 * MiB);
    expect(elapsed).toBeLessThan(30_000); // only catches runaway walks; ~100 ms on an idle machine, bytesRead is the real bound
    const o = oracle(image, layout.firstIno, layout.extraSpecialInodes);
    const mapped = mappedBlocks(map, layout.blockSize);
    expect(missing(new Set([...layout.staticMetadata, ...o.metadata]), mapped)).toEqual([]);
    for (const b of o.fileData) if (map.isMetadata(b * 4096, 4096)) throw new Error(`file data block ${b} was classified as metadata`);
  });
});
