/**
 * What mtools says about a FAT image: the boot-sector layout from `minfo` and the cluster
 * list of any file or directory from `mshowfat`, turned into byte ranges.
 */
import { run } from './fixtures';

export interface FatInfo {
  sectorSize: number;
  clusterSize: number;
  reservedSectors: number;
  fats: number;
  fatSectors: number;
  rootSlots: number;
  totalSectors: number;
  rootCluster: number;
  fsInfoSector: number;
  backupBootSector: number;
  /** Byte offset of cluster 2. */
  dataOffset: number;
}

export function minfo(image: string): FatInfo {
  const out = run('minfo', ['-i', image]);
  const num = (re: RegExp, fallback?: number) => {
    const m = re.exec(out);
    if (!m) {
      if (fallback !== undefined) return fallback;
      throw new Error(`minfo printed nothing matching ${re}`);
    }
    return m[1]!.startsWith('0x') ? parseInt(m[1]!, 16) : Number(m[1]);
  };
  const sectorSize = num(/sector size: (\d+) bytes/);
  const fatSectors = num(/sectors per fat: (\d+)/) || num(/Big fatlen=(\d+)/);
  const rootSlots = num(/max available root directory slots: (\d+)/);
  const reservedSectors = num(/reserved \(boot\) sectors: (\d+)/);
  const fats = num(/fats: (\d+)/);
  const rootSectors = Math.ceil((rootSlots * 32) / sectorSize);
  return {
    sectorSize,
    clusterSize: num(/cluster size: (\d+) sectors/) * sectorSize,
    reservedSectors,
    fats,
    fatSectors,
    rootSlots,
    totalSectors: num(/small size: (\d+) sectors/) || num(/big size: (\d+) sectors/),
    rootCluster: num(/rootCluster=(\d+)/, 0),
    fsInfoSector: num(/infoSector location=(\d+)/, 0),
    backupBootSector: num(/backup boot sector=(\d+)/, 0),
    dataOffset: (reservedSectors + fats * fatSectors + rootSectors) * sectorSize,
  };
}

/** Clusters of each named path (mtools "::/path" syntax), in the order asked. */
export function mshowfat(image: string, paths: string[]): number[][] {
  const out = run('mshowfat', ['-i', image, ...paths]).split('\n').filter((l) => l.startsWith('::'));
  if (out.length !== paths.length) throw new Error(`mshowfat answered ${out.length} of ${paths.length} paths`);
  return out.map((line) => {
    const clusters: number[] = [];
    for (const m of line.matchAll(/<(\d+)(?:-(\d+))?>/g)) for (let c = Number(m[1]); c <= Number(m[2] ?? m[1]); c++) clusters.push(c);
    return clusters;
  });
}
