/**
 * Filesystem probe for the `metadata` hold policy (claim 10): at backup start it reads the
 * volume's point-in-time image and lists the byte ranges that hold filesystem metadata, so
 * the policy holds only writes that touch them.
 *
 * Invariant (safety): when the probe cannot classify the volume with confidence — no known
 * filesystem, a structure that contradicts itself, or a filesystem too big to walk within
 * the read budget — the map is conservative: isMetadata() is true for every write, which
 * makes the metadata policy behave like the `volume` policy. The probe never guesses in the
 * direction of "this is data".
 *
 * Why a map taken once at begin() is enough: every structure the begin-time metadata points
 * to (bitmaps, inode tables, directory blocks, journal, mapping blocks) is in the map, so
 * writes to it are held and the snapshot's metadata is exactly as of begin. A block that was
 * free at begin and becomes metadata during the backup is not referenced by that metadata,
 * so its write may pass; a data block the snapshot references may be newer — the documented
 * "metadata-consistent, data may be newer" promise of the policy.
 *
 * Callers probe through the point-in-time reader, so held writes cannot skew the probe.
 */
import { HoldfastError } from '../../../src-shared/errors';
import { detectExfat, probeExfat } from './exfat-probe';
import { detectExt, extFlavour, probeExt } from './ext-probe';
import { detectFat, probeFat } from './fat-probe';
import { RangeCollector, type ByteRange, type FrozenRanges } from './range-set';
import { ProbeBudgetExceeded, ProbeInconsistent, VolumeReader, type ReadFn } from './volume-reader';

export type { ByteRange } from './range-set';

export type FsType = 'ext2' | 'ext3' | 'ext4' | 'vfat' | 'exfat' | 'unknown';

export interface MetadataMap {
  fsType: FsType;
  blockSize: number;
  /** Sorted, non-overlapping, merged byte ranges. The whole volume when `conservative`. */
  ranges: Array<{ offset: number; length: number }>;
  /**
   * True when the whole volume is treated as metadata (unknown or unreadable filesystem,
   * or the probe's budget ran out): isMetadata() then answers true for every write.
   */
  conservative: boolean;
  /** Why the map is conservative, or extra detail about the filesystem; for logs and the UI. */
  note: string;
  /** Bytes the probe read from the volume (its cost; bounded by ProbeOptions.maxReadBytes). */
  bytesRead: number;
  isMetadata(offset: number, length: number): boolean;
  /** Human summary for the UI. */
  describe(): string;
}

export interface ProbeOptions {
  /** Most bytes the probe may read before it gives up and goes conservative (default 1 GiB). */
  maxReadBytes?: number;
}

const DEFAULT_BUDGET = 1024 * 1024 * 1024;

function formatBytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} bytes` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

class ProbedMap implements MetadataMap {
  readonly ranges: ByteRange[];
  bytesRead = 0;

  constructor(
    readonly fsType: FsType,
    readonly blockSize: number,
    private readonly frozen: FrozenRanges | null,
    private readonly volumeSize: number,
    readonly note: string,
  ) {
    this.ranges = frozen ? frozen.toArray() : volumeSize > 0 ? [{ offset: 0, length: volumeSize }] : [];
  }

  get conservative(): boolean {
    return this.frozen === null;
  }

  isMetadata(offset: number, length: number): boolean {
    if (this.frozen === null) return true;
    return this.frozen.overlaps(offset, length);
  }

  describe(): string {
    const name = this.fsType === 'vfat' ? 'FAT' : this.fsType;
    if (this.frozen === null) {
      const what = this.fsType === 'unknown' ? 'No filesystem Holdfast can read was found' : `The ${name} filesystem could not be mapped`;
      return `${what} (${this.note}); every write is treated as a metadata write and held during the backup.`;
    }
    const bytes = this.frozen.totalBytes();
    const pct = this.volumeSize > 0 ? ((bytes / this.volumeSize) * 100).toFixed(bytes / this.volumeSize < 0.1 ? 2 : 1) : '0';
    return (
      `${name} filesystem (${this.note}): ${formatBytes(bytes)} of metadata in ${this.frozen.count} ranges (${pct}% of the volume). ` +
      'Only writes to metadata are held; the snapshot is metadata-consistent and file contents may be newer than its start.'
    );
  }
}

function withCost(map: ProbedMap, reader: VolumeReader): MetadataMap {
  map.bytesRead = reader.totalRead;
  return map;
}

function conservativeMap(fsType: FsType, blockSize: number, size: number, why: string): ProbedMap {
  return new ProbedMap(fsType, blockSize, null, size, why);
}

/**
 * Classifies the metadata of the filesystem on a volume. `read` must return exactly the
 * requested bytes of the point-in-time image; its failures surface as IO_ERROR.
 */
export async function probeFilesystem(read: ReadFn, size: number, options: ProbeOptions = {}): Promise<MetadataMap> {
  if (!Number.isSafeInteger(size) || size < 0) throw new HoldfastError('INVALID_SIZE', `A volume size of ${size} bytes cannot be probed.`);
  const reader = new VolumeReader(read, size, options.maxReadBytes ?? DEFAULT_BUDGET);
  const out = new RangeCollector(size);
  let fsType: FsType = 'unknown';
  let blockSize = 512;
  try {
    const sb = await detectExt(reader);
    if (sb) {
      fsType = extFlavour(sb);
      blockSize = sb.blockSize || 1024;
      const r = await probeExt(reader, sb, out);
      const note = `${formatBytes(r.blockSize)} blocks, ${r.groups} groups, ${r.directories} directories` + (r.features.length ? `, ${r.features.join(', ')}` : '');
      return withCost(new ProbedMap(r.fsType, r.blockSize, out.freeze(), size, note), reader);
    }
    const exfat = await detectExfat(reader);
    if (exfat) {
      fsType = 'exfat';
      blockSize = exfat.clusterSize;
      const r = await probeExfat(reader, exfat, out);
      return withCost(new ProbedMap('exfat', exfat.clusterSize, out.freeze(), size, `${formatBytes(exfat.clusterSize)} clusters, ${r.directories} directories`), reader);
    }
    const fat = await detectFat(reader);
    if (fat) {
      fsType = 'vfat';
      blockSize = fat.clusterSize;
      const r = await probeFat(reader, fat, out);
      return withCost(new ProbedMap('vfat', fat.clusterSize, out.freeze(), size, `FAT${fat.width}, ${formatBytes(fat.clusterSize)} clusters, ${r.directories} directories`), reader);
    }
    return withCost(conservativeMap('unknown', blockSize, size, 'no ext2/3/4, FAT or exFAT signature'), reader);
  } catch (e) {
    if (e instanceof ProbeInconsistent) return withCost(conservativeMap(fsType, blockSize, size, `inconsistent structure: ${e.message}`), reader);
    if (e instanceof ProbeBudgetExceeded) return withCost(conservativeMap(fsType, blockSize, size, e.message), reader);
    throw e;
  }
}
