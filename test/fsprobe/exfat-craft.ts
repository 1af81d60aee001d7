/**
 * Adds directories and files to a fresh mkfs.exfat image by writing exFAT directory entry
 * sets, allocation bitmap bits and FAT entries directly (there is no mtools for exFAT and
 * tests cannot mount). fsck.exfat then judges whether the result is a valid filesystem, so
 * the crafted layout is checked by the real tool, not by this helper's own beliefs.
 */
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { run } from './fixtures';

export interface ExfatDump {
  sectorSize: number;
  clusterSize: number;
  fatOffset: number;
  fatLength: number;
  heapOffset: number;
  clusterCount: number;
  rootCluster: number;
  bitmapCluster: number;
  bitmapSize: number;
  upcaseCluster: number;
  upcaseSize: number;
}

export function dumpExfat(image: string): ExfatDump {
  const out = run('dump.exfat', [image]);
  const num = (label: string) => {
    const m = new RegExp(`${label.replace(/[()]/g, '\\$&')}:\\s+(\\S+)`).exec(out);
    if (!m) throw new Error(`dump.exfat printed no "${label}"`);
    return Number(m[1]);
  };
  const sectorSize = 2 ** num('Sector Size Bits');
  return {
    sectorSize,
    clusterSize: sectorSize * 2 ** num('Sector per Cluster bits'),
    fatOffset: num('FAT Offset(sector offset)') * sectorSize,
    fatLength: num('FAT Length(sectors)') * sectorSize,
    heapOffset: num('Cluster Heap Offset (sector offset)') * sectorSize,
    clusterCount: num('Cluster Count'),
    rootCluster: num('Root Cluster (cluster offset)'),
    bitmapCluster: num('Bitmap start cluster'),
    bitmapSize: num('Bitmap size'),
    upcaseCluster: num('Upcase table start cluster'),
    upcaseSize: num('Upcase table size'),
  };
}

function nameHash(name: string): number {
  let h = 0;
  for (const ch of name.toUpperCase()) {
    const c = ch.charCodeAt(0);
    for (const byte of [c & 0xff, c >>> 8]) h = ((((h & 1) << 15) | (h >>> 1)) + byte) & 0xffff;
  }
  return h;
}

function setChecksum(set: Buffer): number {
  let sum = 0;
  for (let i = 0; i < set.length; i++) {
    if (i === 2 || i === 3) continue;
    sum = ((((sum & 1) << 15) | (sum >>> 1)) + set[i]!) & 0xffff;
  }
  return sum;
}

/** A file or directory entry set with one name entry (names up to 15 characters). */
function entrySet(name: string, isDir: boolean, firstCluster: number, length: number, noFatChain: boolean): Buffer {
  if (name.length > 15) throw new Error('crafted names are at most 15 characters');
  const set = Buffer.alloc(96);
  set[0] = 0x85;
  set[1] = 2;
  set.writeUInt16LE(isDir ? 0x10 : 0x20, 4);
  const ts = ((2024 - 1980) << 25) | (1 << 21) | (1 << 16); // 2024-01-01 00:00:00
  set.writeUInt32LE(ts, 8);
  set.writeUInt32LE(ts, 12);
  set.writeUInt32LE(ts, 16);
  const s = 32;
  set[s] = 0xc0;
  set[s + 1] = 0x01 | (noFatChain ? 0x02 : 0);
  set[s + 3] = name.length;
  set.writeUInt16LE(nameHash(name), s + 4);
  set.writeBigUInt64LE(BigInt(length), s + 8);
  set.writeUInt32LE(firstCluster, s + 20);
  set.writeBigUInt64LE(BigInt(length), s + 24);
  const n = 64;
  set[n] = 0xc1;
  for (let i = 0; i < name.length; i++) set.writeUInt16LE(name.charCodeAt(i), n + 2 + i * 2);
  set.writeUInt16LE(setChecksum(set), 2);
  return set;
}

export class ExfatCrafter {
  private readonly fd: number;

  constructor(
    readonly image: string,
    readonly d: ExfatDump,
  ) {
    this.fd = openSync(image, 'r+');
  }

  close(): void {
    closeSync(this.fd);
  }

  clusterOffset(c: number): number {
    return this.d.heapOffset + (c - 2) * this.d.clusterSize;
  }

  private allocate(clusters: number[], chained: boolean): void {
    for (const c of clusters) {
      const bitPos = this.d.heapOffset + (this.d.bitmapCluster - 2) * this.d.clusterSize + ((c - 2) >>> 3);
      const b = Buffer.alloc(1);
      readSync(this.fd, b, 0, 1, bitPos);
      b[0]! |= 1 << ((c - 2) & 7);
      writeSync(this.fd, b, 0, 1, bitPos);
    }
    if (!chained) return;
    clusters.forEach((c, i) => {
      const e = Buffer.alloc(4);
      e.writeUInt32LE(i + 1 < clusters.length ? clusters[i + 1]! : 0xffffffff);
      writeSync(this.fd, e, 0, 4, this.d.fatOffset + c * 4);
    });
  }

  /** Appends an entry set to the directory whose first cluster is `dirCluster` (one-cluster directories). */
  private append(dirCluster: number, set: Buffer): void {
    const base = this.clusterOffset(dirCluster);
    const buf = Buffer.alloc(this.d.clusterSize);
    readSync(this.fd, buf, 0, buf.length, base);
    let o = 0;
    while (o < buf.length && buf[o] !== 0) o += 32;
    if (o + set.length > buf.length) throw new Error('crafted directory is full');
    writeSync(this.fd, set, 0, set.length, base + o);
  }

  /** A directory in `parent` occupying `clusters` (contiguous with noFatChain, or chained through the FAT). */
  mkdir(parent: number, name: string, clusters: number[], noFatChain: boolean): void {
    this.allocate(clusters, !noFatChain);
    this.append(parent, entrySet(name, true, clusters[0]!, clusters.length * this.d.clusterSize, noFatChain));
  }

  /** A file in `parent` whose data fills `clusters` (contiguous, NoFatChain). */
  writeFile(parent: number, name: string, clusters: number[]): void {
    this.allocate(clusters, false);
    const length = clusters.length * this.d.clusterSize;
    writeSync(this.fd, Buffer.alloc(length, 0x5a), 0, length, this.clusterOffset(clusters[0]!));
    this.append(parent, entrySet(name, false, clusters[0]!, length, true));
  }
}
