/**
 * exFAT metadata probe. Classifies as metadata: the main and backup boot regions (12
 * sectors each), every FAT copy, the allocation bitmap(s), the up-case table, and every
 * cluster of every directory reachable from the root. File data clusters are never
 * classified. Directory streams marked NoFatChain are contiguous; all others follow the FAT.
 */
import { FatTable } from './fat-table';
import type { RangeCollector } from './range-set';
import { ProbeInconsistent, type VolumeReader } from './volume-reader';

export interface ExfatLayout {
  bytesPerSector: number;
  clusterSize: number;
  fatOffset: number;
  fatLength: number;
  fatCount: number;
  heapOffset: number;
  clusterCount: number;
  rootCluster: number;
}

export interface ExfatProbeResult {
  layout: ExfatLayout;
  directories: number;
}

const SIGNATURE = Buffer.from('EXFAT   ', 'latin1');

export function decodeExfatBootSector(bs: Buffer, volumeSize: number): ExfatLayout | null {
  if (bs.length < 512 || !bs.subarray(3, 11).equals(SIGNATURE)) return null;
  if (bs[510] !== 0x55 || bs[511] !== 0xaa) return null;
  for (let i = 11; i < 64; i++) if (bs[i] !== 0) return null;
  const sectorShift = bs[108]!;
  const clusterShift = bs[109]!;
  if (sectorShift < 9 || sectorShift > 12 || clusterShift > 25 - sectorShift) return null;
  const bps = 1 << sectorShift;
  const volumeSectors = bs.readUInt32LE(72) + bs.readUInt32LE(76) * 0x1_0000_0000;
  const fatCount = bs[110]!;
  const layout: ExfatLayout = {
    bytesPerSector: bps,
    clusterSize: bps << clusterShift,
    fatOffset: bs.readUInt32LE(80) * bps,
    fatLength: bs.readUInt32LE(84) * bps,
    fatCount,
    heapOffset: bs.readUInt32LE(88) * bps,
    clusterCount: bs.readUInt32LE(92),
    rootCluster: bs.readUInt32LE(96),
  };
  if (fatCount !== 1 && fatCount !== 2) return null;
  if (volumeSectors * bps > volumeSize || layout.fatOffset < 24 * bps) return null;
  if (layout.fatLength < (layout.clusterCount + 2) * 4) return null;
  if (layout.heapOffset < layout.fatOffset + fatCount * layout.fatLength) return null;
  if (layout.heapOffset + layout.clusterCount * layout.clusterSize > volumeSize) return null;
  if (layout.rootCluster < 2 || layout.rootCluster > layout.clusterCount + 1) return null;
  return layout;
}

export async function detectExfat(reader: VolumeReader): Promise<ExfatLayout | null> {
  if (reader.size < 512) return null;
  return decodeExfatBootSector(await reader.read(0, 512), reader.size);
}

const ENTRY_BITMAP = 0x81;
const ENTRY_UPCASE = 0x82;
const ENTRY_FILE = 0x85;
const ENTRY_STREAM = 0xc0;
const ATTR_DIRECTORY = 0x10;
const FLAG_NO_FAT_CHAIN = 0x2;

interface Stream {
  firstCluster: number;
  length: number;
  noFatChain: boolean;
}

/** Streams named in one directory's entries: allocation bitmaps, up-case table and subdirectories. */
export function exfatDirectoryStreams(dir: Buffer): { system: Stream[]; subdirs: Stream[]; ended: boolean } {
  const system: Stream[] = [];
  const subdirs: Stream[] = [];
  for (let o = 0; o + 32 <= dir.length; o += 32) {
    const type = dir[o]!;
    if (type === 0x00) return { system, subdirs, ended: true };
    if (type === ENTRY_BITMAP || type === ENTRY_UPCASE) {
      system.push({ firstCluster: dir.readUInt32LE(o + 20), length: Number(dir.readBigUInt64LE(o + 24)), noFatChain: false });
    } else if (type === ENTRY_FILE && dir.readUInt16LE(o + 4) & ATTR_DIRECTORY && o + 64 <= dir.length && dir[o + 32] === ENTRY_STREAM) {
      const s = o + 32;
      const flags = dir[s + 1]!;
      const firstCluster = dir.readUInt32LE(s + 20);
      if (firstCluster !== 0) subdirs.push({ firstCluster, length: Number(dir.readBigUInt64LE(s + 24)), noFatChain: (flags & FLAG_NO_FAT_CHAIN) !== 0 });
    }
  }
  return { system, subdirs, ended: false };
}

export async function probeExfat(reader: VolumeReader, layout: ExfatLayout, out: RangeCollector): Promise<ExfatProbeResult> {
  out.add(0, 24 * layout.bytesPerSector); // main + backup boot regions
  out.add(layout.fatOffset, layout.fatCount * layout.fatLength);
  const maxCluster = layout.clusterCount + 1;
  const fat = new FatTable(reader, 32, layout.fatOffset, layout.fatLength, maxCluster, true);
  const clusterOffset = (c: number) => layout.heapOffset + (c - 2) * layout.clusterSize;
  const visited = new Set<number>();

  const runsOf = async (s: Stream) => {
    if (s.firstCluster < 2 || s.firstCluster > maxCluster) throw new ProbeInconsistent(`an exFAT stream starts at invalid cluster ${s.firstCluster}`);
    const count = Math.max(1, Math.ceil(s.length / layout.clusterSize));
    // Bitmap and up-case are contiguous; some formatters leave their FAT entries free.
    if (s.noFatChain || (await fat.entry(s.firstCluster)) === 0) {
      if (s.firstCluster + count - 1 > maxCluster) throw new ProbeInconsistent('an exFAT stream runs past the cluster heap');
      for (let c = s.firstCluster; c < s.firstCluster + count; c++) visited.add(c);
      return [{ first: s.firstCluster, count }];
    }
    return fat.chain(s.firstCluster, visited);
  };

  let directories = 0;
  const pending: Stream[] = [{ firstCluster: layout.rootCluster, length: 0, noFatChain: false }];
  while (pending.length > 0) {
    const dirStream = pending.pop()!;
    if (visited.has(dirStream.firstCluster)) continue;
    directories++;
    for (const run of await runsOf(dirStream)) {
      const off = clusterOffset(run.first);
      const len = run.count * layout.clusterSize;
      out.add(off, len);
      const { system, subdirs } = exfatDirectoryStreams(await reader.read(off, len));
      for (const s of system) {
        if (visited.has(s.firstCluster)) continue;
        for (const r of await runsOf(s)) out.add(clusterOffset(r.first), r.count * layout.clusterSize);
      }
      pending.push(...subdirs);
    }
  }
  return { layout, directories };
}
