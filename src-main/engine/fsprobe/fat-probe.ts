/**
 * FAT12/16/32 metadata probe. Classifies as metadata: the reserved region (boot sector,
 * FSInfo, backup boot sector and anything else reserved), every FAT copy, the fixed root
 * directory region of FAT12/16, and every cluster of every directory reachable from the
 * root (FAT32's root directory included). File data clusters are never classified.
 * The FAT type follows from the cluster count, as the Microsoft FAT specification says,
 * never from the label string in the boot sector.
 */
import { FatTable, type FatWidth } from './fat-table';
import type { RangeCollector } from './range-set';
import { ProbeInconsistent, type VolumeReader } from './volume-reader';

export interface FatLayout {
  width: FatWidth;
  bytesPerSector: number;
  sectorsPerCluster: number;
  reservedSectors: number;
  fatCount: number;
  fatSectors: number;
  rootEntries: number;
  totalSectors: number;
  rootCluster: number;
  /** Byte offsets derived from the fields above. */
  fatOffset: number;
  rootDirOffset: number;
  rootDirBytes: number;
  dataOffset: number;
  clusterSize: number;
  clusterCount: number;
}

export interface FatProbeResult {
  layout: FatLayout;
  directories: number;
}

const isPow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;

/** Decodes a FAT boot sector; null when the sector is not a plausible FAT BPB. */
export function decodeFatBootSector(bs: Buffer, volumeSize: number): FatLayout | null {
  if (bs.length < 512) return null;
  if (bs[510] !== 0x55 || bs[511] !== 0xaa) return null;
  if (bs[0] !== 0xeb && bs[0] !== 0xe9) return null;
  const bytesPerSector = bs.readUInt16LE(11);
  const sectorsPerCluster = bs[13]!;
  const reservedSectors = bs.readUInt16LE(14);
  const fatCount = bs[16]!;
  const rootEntries = bs.readUInt16LE(17);
  const total16 = bs.readUInt16LE(19);
  const media = bs[21]!;
  const fat16Sectors = bs.readUInt16LE(22);
  const total32 = bs.readUInt32LE(32);
  if (![512, 1024, 2048, 4096].includes(bytesPerSector) || !isPow2(sectorsPerCluster) || sectorsPerCluster > 128) return null;
  if (reservedSectors === 0 || fatCount === 0 || fatCount > 4 || (media !== 0xf0 && media < 0xf8)) return null;
  const totalSectors = total16 || total32;
  const fatSectors = fat16Sectors || bs.readUInt32LE(36);
  if (totalSectors === 0 || fatSectors === 0) return null;
  const rootDirSectors = Math.ceil((rootEntries * 32) / bytesPerSector);
  const metaSectors = reservedSectors + fatCount * fatSectors + rootDirSectors;
  if (metaSectors >= totalSectors || totalSectors * bytesPerSector > volumeSize) return null;
  const clusterCount = Math.floor((totalSectors - metaSectors) / sectorsPerCluster);
  const width: FatWidth = clusterCount < 4085 ? 12 : clusterCount < 65525 ? 16 : 32;
  if (width === 32 && (rootEntries !== 0 || fat16Sectors !== 0)) return null;
  if (width !== 32 && rootEntries === 0) return null;
  // The FAT must be able to describe every cluster.
  const fatBytesNeeded = width === 12 ? Math.ceil(((clusterCount + 2) * 3) / 2) : ((clusterCount + 2) * width) / 8;
  if (fatSectors * bytesPerSector < fatBytesNeeded) return null;
  const fatOffset = reservedSectors * bytesPerSector;
  const rootDirOffset = fatOffset + fatCount * fatSectors * bytesPerSector;
  return {
    width,
    bytesPerSector,
    sectorsPerCluster,
    reservedSectors,
    fatCount,
    fatSectors,
    rootEntries,
    totalSectors,
    rootCluster: width === 32 ? bs.readUInt32LE(44) : 0,
    fatOffset,
    rootDirOffset,
    rootDirBytes: rootDirSectors * bytesPerSector,
    dataOffset: rootDirOffset + rootDirSectors * bytesPerSector,
    clusterSize: sectorsPerCluster * bytesPerSector,
    clusterCount,
  };
}

export async function detectFat(reader: VolumeReader): Promise<FatLayout | null> {
  if (reader.size < 512) return null;
  return decodeFatBootSector(await reader.read(0, 512), reader.size);
}

const ATTR_LFN = 0x0f;
const ATTR_DIRECTORY = 0x10;
const ATTR_VOLUME_ID = 0x08;

/** First clusters of the subdirectories named in one directory's raw entries. */
export function subdirectoryClusters(dir: Buffer, width: FatWidth): number[] {
  const found: number[] = [];
  for (let o = 0; o + 32 <= dir.length; o += 32) {
    const first = dir[o]!;
    if (first === 0x00) break;
    if (first === 0xe5) continue;
    const attr = dir[o + 11]!;
    if (attr === ATTR_LFN || attr & ATTR_VOLUME_ID || !(attr & ATTR_DIRECTORY)) continue;
    if (first === 0x2e && (dir[o + 1] === 0x20 || (dir[o + 1] === 0x2e && dir[o + 2] === 0x20))) continue; // "." and ".."
    const cluster = dir.readUInt16LE(o + 26) + (width === 32 ? dir.readUInt16LE(o + 20) * 0x10000 : 0);
    if (cluster !== 0) found.push(cluster);
  }
  return found;
}

export async function probeFat(reader: VolumeReader, layout: FatLayout, out: RangeCollector): Promise<FatProbeResult> {
  out.add(0, layout.fatOffset); // reserved region: boot sector, FSInfo, backup boot sector
  out.add(layout.fatOffset, layout.fatCount * layout.fatSectors * layout.bytesPerSector);
  if (layout.rootDirBytes) out.add(layout.rootDirOffset, layout.rootDirBytes);

  const fat = new FatTable(reader, layout.width, layout.fatOffset, layout.fatSectors * layout.bytesPerSector, layout.clusterCount + 1);
  const clusterOffset = (c: number) => layout.dataOffset + (c - 2) * layout.clusterSize;
  const visited = new Set<number>();
  const pending: number[] = [];
  let directories = 1;

  if (layout.width === 32) pending.push(layout.rootCluster);
  else pending.push(...subdirectoryClusters(await reader.read(layout.rootDirOffset, layout.rootDirBytes), layout.width));

  while (pending.length > 0) {
    const start = pending.pop()!;
    if (visited.has(start)) continue;
    if (start < 2 || start > fat.maxCluster) throw new ProbeInconsistent(`a directory starts at invalid cluster ${start}`);
    if (start !== layout.rootCluster || layout.width !== 32) directories++;
    for (const run of await fat.chain(start, visited)) {
      const off = clusterOffset(run.first);
      const len = run.count * layout.clusterSize;
      out.add(off, len);
      pending.push(...subdirectoryClusters(await reader.read(off, len), layout.width));
    }
  }
  return { layout, directories };
}
