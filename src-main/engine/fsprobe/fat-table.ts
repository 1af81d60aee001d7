/**
 * A file allocation table read lazily from the volume, shared by the FAT12/16/32 and exFAT
 * probes: follows cluster chains and reports them as contiguous runs. Invariant: a chain
 * never visits a cluster twice and never leaves 2..maxCluster; a chain that would is
 * reported as ProbeInconsistent (a corrupt or hostile FAT must not loop the probe).
 */
import { ProbeInconsistent, type VolumeReader } from './volume-reader';

export type FatWidth = 12 | 16 | 32;

const CHUNK = 64 * 1024;

export interface ClusterRun {
  first: number;
  count: number;
}

export class FatTable {
  private readonly chunks = new Map<number, Buffer>();
  private readonly endMarker: number;

  /**
   * @param offset byte offset of the first FAT copy; @param length its length in bytes
   * @param maxCluster highest valid cluster number (cluster count + 1)
   */
  constructor(
    private readonly reader: VolumeReader,
    private readonly width: FatWidth,
    private readonly offset: number,
    private readonly length: number,
    readonly maxCluster: number,
    private readonly exfat = false,
  ) {
    this.endMarker = width === 12 ? 0xff8 : width === 16 ? 0xfff8 : exfat ? 0xfffffff8 : 0x0ffffff8;
  }

  private async byteAt(pos: number): Promise<number> {
    const idx = Math.floor(pos / CHUNK);
    let chunk = this.chunks.get(idx);
    if (!chunk) {
      const start = idx * CHUNK;
      chunk = await this.reader.read(this.offset + start, Math.min(CHUNK, this.length - start));
      this.chunks.set(idx, chunk);
    }
    return chunk[pos - idx * CHUNK]!;
  }

  /** The raw FAT entry of `cluster`. */
  async entry(cluster: number): Promise<number> {
    if (this.width === 12) {
      const pos = cluster + (cluster >>> 1);
      if (pos + 1 >= this.length) throw new ProbeInconsistent(`cluster ${cluster} lies beyond the FAT`);
      const v = (await this.byteAt(pos)) | ((await this.byteAt(pos + 1)) << 8);
      return cluster & 1 ? v >>> 4 : v & 0xfff;
    }
    const bytes = this.width / 8;
    const pos = cluster * bytes;
    if (pos + bytes > this.length) throw new ProbeInconsistent(`cluster ${cluster} lies beyond the FAT`);
    let v = 0;
    for (let i = bytes - 1; i >= 0; i--) v = v * 256 + (await this.byteAt(pos + i));
    return this.width === 32 && !this.exfat ? v & 0x0fffffff : v;
  }

  /**
   * The chain starting at `start`, as runs of consecutive clusters. `visited` is shared by
   * the caller across chains so that cross-linked directories are walked once.
   */
  async chain(start: number, visited: Set<number>, limit = this.maxCluster): Promise<ClusterRun[]> {
    const runs: ClusterRun[] = [];
    let c = start;
    let steps = 0;
    for (;;) {
      if (c < 2 || c > this.maxCluster) throw new ProbeInconsistent(`a cluster chain points to invalid cluster ${c}`);
      if (visited.has(c)) break;
      visited.add(c);
      const last = runs[runs.length - 1];
      if (last && last.first + last.count === c) last.count++;
      else runs.push({ first: c, count: 1 });
      if (++steps > limit) throw new ProbeInconsistent('a cluster chain is longer than the volume');
      const next = await this.entry(c);
      if (next >= this.endMarker) break;
      c = next;
    }
    return runs;
  }
}
