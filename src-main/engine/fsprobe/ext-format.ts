/**
 * ext2/ext3/ext4 on-disk format, as far as the metadata probe needs it: superblock,
 * group descriptor, inode and extent-tree layouts, feature bits, and the rules that say
 * which groups carry backup superblocks and descriptor blocks. Decoding only; no I/O.
 * Layouts follow the kernel's fs/ext4/ext4.h and e2fsprogs' lib/ext2fs (ext2fs_bg_has_super,
 * ext2fs_super_and_bgd_loc2, ext2fs_descriptor_block_loc2).
 */

export const EXT_SUPERBLOCK_OFFSET = 1024;
export const EXT_SUPERBLOCK_SIZE = 1024;
export const EXT_MAGIC = 0xef53;

export const COMPAT_HAS_JOURNAL = 0x4;
export const COMPAT_RESIZE_INODE = 0x10;
export const COMPAT_SPARSE_SUPER2 = 0x200;
export const COMPAT_ORPHAN_FILE = 0x1000;

export const INCOMPAT_JOURNAL_DEV = 0x8;
export const INCOMPAT_META_BG = 0x10;
export const INCOMPAT_EXTENTS = 0x40;
export const INCOMPAT_64BIT = 0x80;
export const INCOMPAT_MMP = 0x100;
export const INCOMPAT_FLEX_BG = 0x200;

export const RO_COMPAT_SPARSE_SUPER = 0x1;
export const RO_COMPAT_GDT_CSUM = 0x10;
export const RO_COMPAT_METADATA_CSUM = 0x400;

export const BG_INODE_UNINIT = 0x1;

export const INODE_FL_EXTENTS = 0x80000;
export const INODE_FL_EA_INODE = 0x200000;
export const INODE_FL_INLINE_DATA = 0x10000000;

export const S_IFMT = 0xf000;
export const S_IFDIR = 0x4000;
export const S_IFREG = 0x8000;
export const S_IFLNK = 0xa000;

export const EXTENT_MAGIC = 0xf30a;
export const BAD_BLOCKS_INO = 1;

export interface ExtSuperblock {
  inodesCount: number;
  blocksCount: number;
  firstDataBlock: number;
  blockSize: number;
  blocksPerGroup: number;
  inodesPerGroup: number;
  revLevel: number;
  firstIno: number;
  inodeSize: number;
  featureCompat: number;
  featureIncompat: number;
  featureRoCompat: number;
  reservedGdtBlocks: number;
  journalInum: number;
  descSize: number;
  firstMetaBg: number;
  mmpBlock: number;
  backupBgs: [number, number];
  /** usr, grp, prj quota inodes and the orphan file inode, where set. */
  extraMetadataInodes: number[];
}

const u16 = (b: Buffer, o: number) => b.readUInt16LE(o);
const u32 = (b: Buffer, o: number) => b.readUInt32LE(o);
/** 64-bit little-endian as a JS number; values above 2^53 are not representable volumes anyway. */
const u64 = (b: Buffer, o: number) => b.readUInt32LE(o) + b.readUInt32LE(o + 4) * 0x1_0000_0000;

/** Returns the decoded superblock, or null when the magic is absent. Field sanity is checked by validateSuperblock. */
export function decodeSuperblock(sb: Buffer): ExtSuperblock | null {
  if (sb.length < EXT_SUPERBLOCK_SIZE || u16(sb, 0x38) !== EXT_MAGIC) return null;
  const revLevel = u32(sb, 0x4c);
  const featureIncompat = revLevel >= 1 ? u32(sb, 0x60) : 0;
  const featureCompat = revLevel >= 1 ? u32(sb, 0x5c) : 0;
  const is64 = (featureIncompat & INCOMPAT_64BIT) !== 0;
  const logBlock = u32(sb, 0x18);
  const extra: number[] = [];
  for (const off of [0x240, 0x244, 0x26c]) if (u32(sb, off) !== 0) extra.push(u32(sb, off));
  if (featureCompat & COMPAT_ORPHAN_FILE && u32(sb, 0x280) !== 0) extra.push(u32(sb, 0x280));
  return {
    inodesCount: u32(sb, 0x0),
    blocksCount: u32(sb, 0x4) + (is64 ? u32(sb, 0x150) * 0x1_0000_0000 : 0),
    firstDataBlock: u32(sb, 0x14),
    blockSize: logBlock <= 6 ? 1024 << logBlock : 0,
    blocksPerGroup: u32(sb, 0x20),
    inodesPerGroup: u32(sb, 0x28),
    revLevel,
    firstIno: revLevel >= 1 ? u32(sb, 0x54) : 11,
    inodeSize: revLevel >= 1 ? u16(sb, 0x58) : 128,
    featureCompat,
    featureIncompat,
    featureRoCompat: revLevel >= 1 ? u32(sb, 0x64) : 0,
    reservedGdtBlocks: featureCompat & COMPAT_RESIZE_INODE ? u16(sb, 0xce) : 0,
    journalInum: featureCompat & COMPAT_HAS_JOURNAL ? u32(sb, 0xe0) : 0,
    descSize: is64 ? u16(sb, 0xfe) : 32,
    firstMetaBg: u32(sb, 0x104),
    mmpBlock: featureIncompat & INCOMPAT_MMP ? u64(sb, 0x168) : 0,
    backupBgs: [u32(sb, 0x24c), u32(sb, 0x250)],
    extraMetadataInodes: extra,
  };
}

/** Reasons the superblock cannot describe a filesystem on this volume, or null when it is sane. */
export function validateSuperblock(sb: ExtSuperblock, volumeSize: number): string | null {
  if (sb.blockSize < 1024 || sb.blockSize > 65536) return 'the block size is not between 1 KiB and 64 KiB';
  if (sb.blocksPerGroup === 0 || sb.inodesPerGroup === 0) return 'a block group has no blocks or no inodes';
  if (sb.inodeSize < 128 || sb.inodeSize > sb.blockSize || (sb.inodeSize & (sb.inodeSize - 1)) !== 0) return 'the inode size is invalid';
  if (sb.descSize < 32 || sb.descSize > sb.blockSize || (sb.descSize & (sb.descSize - 1)) !== 0) return 'the group descriptor size is invalid';
  if (sb.blocksCount <= sb.firstDataBlock) return 'the filesystem has no blocks';
  if (sb.blocksCount * sb.blockSize > volumeSize) return `the filesystem (${sb.blocksCount * sb.blockSize} bytes) is larger than the volume (${volumeSize} bytes)`;
  if (sb.featureIncompat & INCOMPAT_JOURNAL_DEV) return 'this is an external journal device, not a filesystem';
  return null;
}

export function groupCount(sb: ExtSuperblock): number {
  return Math.ceil((sb.blocksCount - sb.firstDataBlock) / sb.blocksPerGroup);
}

export function groupFirstBlock(sb: ExtSuperblock, group: number): number {
  return sb.firstDataBlock + group * sb.blocksPerGroup;
}

export function descriptorsPerBlock(sb: ExtSuperblock): number {
  return sb.blockSize / sb.descSize;
}

function isPowerOf(n: number, base: number): boolean {
  let x = base;
  while (x < n) x *= base;
  return x === n;
}

/** Whether block group `group` carries a superblock (primary or backup). */
export function groupHasSuperblock(sb: ExtSuperblock, group: number): boolean {
  if (group === 0) return true;
  if (sb.featureCompat & COMPAT_SPARSE_SUPER2) return group === sb.backupBgs[0] || group === sb.backupBgs[1];
  if (group <= 1 || !(sb.featureRoCompat & RO_COMPAT_SPARSE_SUPER)) return true;
  if ((group & 1) === 0) return false;
  return isPowerOf(group, 3) || isPowerOf(group, 5) || isPowerOf(group, 7);
}

/**
 * Block ranges (first block, count) of superblock and descriptor copies stored in `group`,
 * the meta_bg-aware equivalent of ext2fs_super_and_bgd_loc2.
 */
export function groupSuperAndDescriptorBlocks(sb: ExtSuperblock, group: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  const first = groupFirstBlock(sb, group);
  const hasSuper = groupHasSuperblock(sb, group);
  const dpb = descriptorsPerBlock(sb);
  const metaBg = (sb.featureIncompat & INCOMPAT_META_BG) !== 0;
  const descBlocks = Math.ceil(groupCount(sb) / dpb);
  if (hasSuper) out.push([first, 1]);
  if (!metaBg || Math.floor(group / dpb) < sb.firstMetaBg) {
    const oldDescBlocks = metaBg ? sb.firstMetaBg : descBlocks + sb.reservedGdtBlocks;
    if (hasSuper && oldDescBlocks > 0) out.push([first + 1, oldDescBlocks]);
  } else {
    const r = group % dpb;
    if (r === 0 || r === 1 || r === dpb - 1) out.push([first + (hasSuper ? 1 : 0), 1]);
  }
  return out;
}

/** Where descriptor block `i` (primary copy) lives. */
export function descriptorBlockLocation(sb: ExtSuperblock, i: number): number {
  const metaBg = (sb.featureIncompat & INCOMPAT_META_BG) !== 0;
  if (!metaBg || i < sb.firstMetaBg) return sb.firstDataBlock + 1 + i;
  const bg = descriptorsPerBlock(sb) * i;
  return groupFirstBlock(sb, bg) + (groupHasSuperblock(sb, bg) ? 1 : 0);
}

export interface GroupDescriptor {
  blockBitmap: number;
  inodeBitmap: number;
  inodeTable: number;
  flags: number;
  itableUnused: number;
}

export function decodeGroupDescriptor(buf: Buffer, off: number, sb: ExtSuperblock): GroupDescriptor {
  const wide = sb.descSize >= 64 && (sb.featureIncompat & INCOMPAT_64BIT) !== 0;
  const hi = (o: number) => (wide ? u32(buf, off + o) * 0x1_0000_0000 : 0);
  return {
    blockBitmap: u32(buf, off + 0x0) + hi(0x20),
    inodeBitmap: u32(buf, off + 0x4) + hi(0x24),
    inodeTable: u32(buf, off + 0x8) + hi(0x28),
    flags: u16(buf, off + 0x12),
    itableUnused: u16(buf, off + 0x1c) + (wide ? u16(buf, off + 0x32) * 0x10000 : 0),
  };
}

export interface ExtInode {
  mode: number;
  size: number;
  flags: number;
  /** The 60-byte i_block area: extent root, block map, or inline data. */
  iblock: Buffer;
  fileAcl: number;
}

export function decodeInode(buf: Buffer, off: number): ExtInode {
  return {
    mode: u16(buf, off + 0x0),
    size: u32(buf, off + 0x4) + u32(buf, off + 0x6c) * 0x1_0000_0000,
    flags: u32(buf, off + 0x20),
    iblock: buf.subarray(off + 0x28, off + 0x28 + 60),
    fileAcl: u32(buf, off + 0x68) + u16(buf, off + 0x76) * 0x1_0000_0000,
  };
}

/** The inode keeps its content inside itself (fast symlink or inline data): no blocks to map. */
export function inodeHasNoBlocks(ino: ExtInode): boolean {
  if (ino.flags & INODE_FL_INLINE_DATA) return true;
  const type = ino.mode & S_IFMT;
  if (type === S_IFLNK && !(ino.flags & INODE_FL_EXTENTS) && ino.size < 60) return true;
  return type !== S_IFREG && type !== S_IFDIR && type !== S_IFLNK && type !== 0;
}

export interface ExtentHeader {
  entries: number;
  max: number;
  depth: number;
}

export function decodeExtentHeader(buf: Buffer, off: number): ExtentHeader | null {
  if (u16(buf, off) !== EXTENT_MAGIC) return null;
  return { entries: u16(buf, off + 2), max: u16(buf, off + 4), depth: u16(buf, off + 6) };
}

/** Leaf entry at `off`: physical start block and length (uninitialized extents included). */
export function decodeExtentLeaf(buf: Buffer, off: number): { start: number; length: number } {
  const raw = u16(buf, off + 4);
  return { start: u32(buf, off + 8) + u16(buf, off + 6) * 0x1_0000_0000, length: raw > 32768 ? raw - 32768 : raw };
}

/** Index entry at `off`: physical block of the next tree level. */
export function decodeExtentIndex(buf: Buffer, off: number): number {
  return u32(buf, off + 4) + u16(buf, off + 8) * 0x1_0000_0000;
}
