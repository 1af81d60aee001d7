/**
 * ext2/3/4 metadata probe. Classifies as metadata: the primary and backup superblocks, group
 * descriptor tables and reserved GDT blocks (meta_bg, sparse_super and sparse_super2 aware),
 * block and inode bitmaps, inode tables, the MMP block, every block of directories, of the
 * journal and of the other special inodes (resize, quota, orphan file, EA inodes, slow
 * symlinks), and for every in-use inode its extent-tree / indirect mapping blocks and its
 * extended-attribute block. Regular file data blocks are never classified.
 *
 * Invariant: every block the probe adds lies inside the filesystem's block count; any
 * pointer outside it raises ProbeInconsistent so the caller stays conservative rather
 * than trusting a broken map.
 */
import {
  BAD_BLOCKS_INO,
  BG_INODE_UNINIT,
  EXT_SUPERBLOCK_OFFSET,
  EXT_SUPERBLOCK_SIZE,
  INCOMPAT_EXTENTS,
  INCOMPAT_FLEX_BG,
  INCOMPAT_META_BG,
  INCOMPAT_64BIT,
  COMPAT_HAS_JOURNAL,
  COMPAT_SPARSE_SUPER2,
  INODE_FL_EA_INODE,
  INODE_FL_EXTENTS,
  RO_COMPAT_GDT_CSUM,
  RO_COMPAT_METADATA_CSUM,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  decodeExtentHeader,
  decodeExtentIndex,
  decodeExtentLeaf,
  decodeGroupDescriptor,
  decodeInode,
  decodeSuperblock,
  descriptorBlockLocation,
  descriptorsPerBlock,
  groupCount,
  groupSuperAndDescriptorBlocks,
  inodeHasNoBlocks,
  validateSuperblock,
  type ExtInode,
  type ExtSuperblock,
  type GroupDescriptor,
} from './ext-format';
import type { RangeCollector } from './range-set';
import { ProbeInconsistent, type VolumeReader } from './volume-reader';

export type ExtFlavour = 'ext2' | 'ext3' | 'ext4';

export interface ExtProbeResult {
  fsType: ExtFlavour;
  blockSize: number;
  groups: number;
  inodesScanned: number;
  directories: number;
  features: string[];
}

const MAX_TREE_DEPTH = 5;

/** Reads the primary superblock; null when the volume does not carry ext2/3/4. */
export async function detectExt(reader: VolumeReader): Promise<ExtSuperblock | null> {
  if (reader.size < EXT_SUPERBLOCK_OFFSET + EXT_SUPERBLOCK_SIZE) return null;
  return decodeSuperblock(await reader.read(EXT_SUPERBLOCK_OFFSET, EXT_SUPERBLOCK_SIZE));
}

export function extFlavour(sb: ExtSuperblock): ExtFlavour {
  const ext4Only = INCOMPAT_EXTENTS | INCOMPAT_64BIT | INCOMPAT_FLEX_BG;
  if (sb.featureIncompat & ext4Only || sb.featureRoCompat & (RO_COMPAT_GDT_CSUM | RO_COMPAT_METADATA_CSUM)) return 'ext4';
  return sb.featureCompat & COMPAT_HAS_JOURNAL ? 'ext3' : 'ext2';
}

export async function probeExt(reader: VolumeReader, sb: ExtSuperblock, out: RangeCollector): Promise<ExtProbeResult> {
  const problem = validateSuperblock(sb, reader.size);
  if (problem) throw new ProbeInconsistent(`ext superblock: ${problem}`);
  const walker = new ExtWalker(reader, sb, out);
  const descriptors = await walker.readDescriptors();
  walker.addStaticMetadata(descriptors);
  const { inodesScanned, directories } = await walker.scanInodes(descriptors);
  const features: string[] = [];
  if (sb.featureIncompat & INCOMPAT_64BIT) features.push('64bit');
  if (sb.featureIncompat & INCOMPAT_FLEX_BG) features.push('flex_bg');
  if (sb.featureIncompat & INCOMPAT_META_BG) features.push('meta_bg');
  if (sb.featureCompat & COMPAT_SPARSE_SUPER2) features.push('sparse_super2');
  if (sb.featureCompat & COMPAT_HAS_JOURNAL) features.push('journal');
  return { fsType: extFlavour(sb), blockSize: sb.blockSize, groups: descriptors.length, inodesScanned, directories, features };
}

class ExtWalker {
  private readonly bs: number;
  private readonly csumInit: boolean;
  private readonly specialInodes: Set<number>;

  constructor(
    private readonly reader: VolumeReader,
    private readonly sb: ExtSuperblock,
    private readonly out: RangeCollector,
  ) {
    this.bs = sb.blockSize;
    this.csumInit = (sb.featureRoCompat & (RO_COMPAT_GDT_CSUM | RO_COMPAT_METADATA_CSUM)) !== 0;
    this.specialInodes = new Set(sb.extraMetadataInodes);
    if (sb.journalInum) this.specialInodes.add(sb.journalInum);
  }

  private addBlocks(first: number, count: number): void {
    if (count <= 0) return;
    if (first < 0 || first + count > this.sb.blocksCount) {
      throw new ProbeInconsistent(`blocks ${first}..${first + count - 1} lie outside the filesystem (${this.sb.blocksCount} blocks)`);
    }
    this.out.add(first * this.bs, count * this.bs);
  }

  private async readBlock(block: number): Promise<Buffer> {
    if (block <= 0 || block >= this.sb.blocksCount) throw new ProbeInconsistent(`block pointer ${block} lies outside the filesystem`);
    return this.reader.read(block * this.bs, this.bs);
  }

  async readDescriptors(): Promise<GroupDescriptor[]> {
    const n = groupCount(this.sb);
    const dpb = descriptorsPerBlock(this.sb);
    const descBlocks = Math.ceil(n / dpb);
    const metaBg = (this.sb.featureIncompat & INCOMPAT_META_BG) !== 0;
    const out: GroupDescriptor[] = [];
    if (!metaBg) {
      const buf = await this.reader.read(descriptorBlockLocation(this.sb, 0) * this.bs, descBlocks * this.bs);
      for (let g = 0; g < n; g++) out.push(decodeGroupDescriptor(buf, g * this.sb.descSize, this.sb));
      return out;
    }
    for (let i = 0; i < descBlocks; i++) {
      const buf = await this.readBlock(descriptorBlockLocation(this.sb, i));
      for (let j = 0; j < dpb && out.length < n; j++) out.push(decodeGroupDescriptor(buf, j * this.sb.descSize, this.sb));
    }
    return out;
  }

  /** Metadata whose place follows from the superblock and descriptors alone. */
  addStaticMetadata(descriptors: GroupDescriptor[]): void {
    const itableBlocks = Math.ceil((this.sb.inodesPerGroup * this.sb.inodeSize) / this.bs);
    // The primary superblock is exactly bytes 1024..2047 whatever the block size.
    this.out.add(EXT_SUPERBLOCK_OFFSET, EXT_SUPERBLOCK_SIZE);
    for (let g = 0; g < descriptors.length; g++) {
      for (const [first, count] of groupSuperAndDescriptorBlocks(this.sb, g)) {
        if (g === 0 && first === this.sb.firstDataBlock && this.bs > EXT_SUPERBLOCK_OFFSET) {
          // Block 0 of a >1 KiB-block filesystem: boot area + primary superblock, covered above.
          this.addBlocks(first + 1, count - 1);
        } else {
          this.addBlocks(first, count);
        }
      }
      const d = descriptors[g]!;
      this.addBlocks(d.blockBitmap, 1);
      this.addBlocks(d.inodeBitmap, 1);
      this.addBlocks(d.inodeTable, itableBlocks);
    }
    if (this.sb.mmpBlock) this.addBlocks(this.sb.mmpBlock, 1);
  }

  /** Walks every in-use inode (per the inode bitmap) and adds its metadata blocks. */
  async scanInodes(descriptors: GroupDescriptor[]): Promise<{ inodesScanned: number; directories: number }> {
    const { inodesPerGroup: ipg, inodeSize } = this.sb;
    let inodesScanned = 0;
    let directories = 0;
    for (let g = 0; g < descriptors.length; g++) {
      const d = descriptors[g]!;
      if (this.csumInit && d.flags & BG_INODE_UNINIT) continue;
      const initialised = this.csumInit ? Math.max(0, ipg - d.itableUnused) : ipg;
      if (initialised === 0) continue;
      const bitmap = await this.readBlock(d.inodeBitmap);
      // Read the inode table only up to the last in-use inode: on filesystems without
      // itable_unused (ext2/ext3) most of every table is empty.
      let used = Math.min(initialised, bitmap.length * 8);
      while (used > 0 && !(bitmap[(used - 1) >>> 3]! & (1 << ((used - 1) & 7)))) used--;
      if (used === 0) continue;
      const table = await this.reader.read(d.inodeTable * this.bs, used * inodeSize);
      for (let i = 0; i < used; i++) {
        if (!(bitmap[i >>> 3]! & (1 << (i & 7)))) continue;
        const ino = g * ipg + i + 1;
        if (ino === BAD_BLOCKS_INO) continue;
        const inode = decodeInode(table, i * inodeSize);
        inodesScanned++;
        const type = inode.mode & S_IFMT;
        if (type === S_IFDIR) directories++;
        const dataIsMetadata =
          type === S_IFDIR || type === S_IFLNK || ino < this.sb.firstIno || this.specialInodes.has(ino) || (inode.flags & INODE_FL_EA_INODE) !== 0;
        if (inode.fileAcl) this.addBlocks(inode.fileAcl, 1);
        if (!inodeHasNoBlocks(inode)) await this.addInodeBlocks(inode, dataIsMetadata);
      }
    }
    return { inodesScanned, directories };
  }

  private async addInodeBlocks(inode: ExtInode, includeData: boolean): Promise<void> {
    if (inode.flags & INODE_FL_EXTENTS) {
      await this.walkExtentNode(inode.iblock, 0, includeData, MAX_TREE_DEPTH, true);
    } else {
      for (let i = 0; i < 12; i++) {
        const b = inode.iblock.readUInt32LE(i * 4);
        if (b && includeData) this.addBlocks(b, 1);
      }
      for (let level = 1; level <= 3; level++) {
        const b = inode.iblock.readUInt32LE((11 + level) * 4);
        if (b) await this.walkIndirect(b, level, includeData);
      }
    }
  }

  /** An indirect block of `level` (1 = its entries are data blocks) is itself metadata. */
  private async walkIndirect(block: number, level: number, includeData: boolean): Promise<void> {
    this.addBlocks(block, 1);
    if (level === 1 && !includeData) return;
    const buf = await this.readBlock(block);
    for (let o = 0; o < this.bs; o += 4) {
      const child = buf.readUInt32LE(o);
      if (!child) continue;
      if (level === 1) this.addBlocks(child, 1);
      else await this.walkIndirect(child, level - 1, includeData);
    }
  }

  private async walkExtentNode(buf: Buffer, off: number, includeData: boolean, depthLeft: number, isRoot: boolean): Promise<void> {
    const h = decodeExtentHeader(buf, off);
    if (!h) {
      if (isRoot) throw new ProbeInconsistent('an inode marked as extent-mapped has no extent header');
      throw new ProbeInconsistent('an extent tree block has no extent header');
    }
    const capacity = Math.floor((buf.length - off - 12) / 12);
    if (h.entries > h.max || h.entries > capacity || h.depth > depthLeft) throw new ProbeInconsistent('an extent tree node is malformed');
    for (let e = 0; e < h.entries; e++) {
      const eo = off + 12 + e * 12;
      if (h.depth === 0) {
        if (!includeData) return;
        const { start, length } = decodeExtentLeaf(buf, eo);
        this.addBlocks(start, length);
      } else {
        const child = decodeExtentIndex(buf, eo);
        this.addBlocks(child, 1);
        // A regular file's leaves are metadata but its data extents are not: no need to read them.
        if (h.depth === 1 && !includeData) continue;
        const childBuf = await this.readBlock(child);
        await this.walkExtentNode(childBuf, 0, includeData, h.depth - 1, false);
      }
    }
  }
}
