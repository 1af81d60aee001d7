/**
 * Streams a disk image into a qcow2 v3 file (layout: qcow2.ts) without holding the image: it is a
 * sparse RestoreTarget, so restoreSnapshot hands it the snapshot's non-zero bytes in ascending
 * offset order and never reads the vault's zero chunks or zero blocks at all.
 *
 * Each non-zero 64 KiB guest cluster is appended as the next host cluster; an L2 table is appended
 * once the writes move past its 512 MiB span; flush() appends the L1 table, the refcount blocks and
 * the refcount table, then writes the header into cluster 0 and syncs.
 *
 * Invariants: host clusters are allocated strictly sequentially from 0 (the header) and none is
 * freed or shared, so every cluster of the file has refcount exactly 1 (and COPIED set in the
 * entries pointing at it) and the refcount structures follow from the final cluster count alone;
 * an all-zero guest cluster is never allocated (its L2 entry stays 0: reads as zeroes, there is
 * no backing file); memory is one L2 table, one partial cluster and the L1 table (8 bytes per
 * 512 MiB of disk), whatever the image size.
 */
import { invariant } from '../../../src-shared/errors';
import type { BlockFile } from '../env/env';
import {
  CLUSTER_SIZE,
  L2_ENTRIES,
  REFCOUNT_BLOCK_ENTRIES,
  encodeHeader,
  l1Entries,
  l1TableBytes,
  mappingEntry,
  refcountLayout,
  refcountTableEntry,
  diskSize,
} from './qcow2';
import type { RestoreTarget } from './restore';

export class Qcow2Writer implements RestoreTarget {
  readonly sparse = true;
  /** Bytes of the finished file (valid after flush()). */
  bytes = 0;
  private nextHost = 1; // cluster 0 is the header, written last
  private readonly l1: Buffer;
  private readonly l2 = Buffer.alloc(CLUSTER_SIZE);
  private l2Index = -1;
  private readonly partial = Buffer.alloc(CLUSTER_SIZE);
  private partialCluster = -1;
  private writtenTo = 0;
  private finished = false;

  constructor(
    private readonly file: BlockFile,
    readonly size: number,
    private readonly isZero: (b: Buffer) => boolean,
  ) {
    invariant(Number.isSafeInteger(size) && size > 0, 'a qcow2 image has a positive size');
    this.l1 = Buffer.alloc(l1TableBytes(diskSize(size)));
  }

  async write(offset: number, buf: Buffer): Promise<void> {
    invariant(!this.finished && offset >= this.writtenTo && offset + buf.length <= this.size, 'qcow2 writes arrive in ascending order inside the disk');
    const end = offset + buf.length;
    this.writtenTo = end;
    let pos = offset;
    while (pos < end) {
      const c = Math.floor(pos / CLUSTER_SIZE);
      const cStart = c * CLUSTER_SIZE;
      if (pos === cStart && cStart + CLUSTER_SIZE <= end) {
        // Whole clusters straight from the caller's buffer (no copy).
        const stop = Math.floor(end / CLUSTER_SIZE) * CLUSTER_SIZE;
        await this.commitPartial();
        await this.writeClusters(c, buf.subarray(pos - offset, stop - offset));
        pos = stop;
      } else {
        // Part of a cluster (unaligned write, or the short last cluster of the disk): gather it.
        const n = Math.min(cStart + CLUSTER_SIZE, end) - pos;
        if (this.partialCluster !== c) {
          await this.commitPartial();
          this.partialCluster = c;
        }
        buf.copy(this.partial, pos - cStart, pos - offset, pos - offset + n);
        pos += n;
      }
    }
  }

  /** Completes the image: pending data, last L2 table, L1 table, refcounts, header; then syncs. */
  async flush(): Promise<void> {
    if (this.finished) return;
    await this.commitPartial();
    await this.emitL2();
    const l1Offset = this.alloc(this.l1.length / CLUSTER_SIZE) * CLUSTER_SIZE;
    await this.file.write(this.l1, l1Offset);

    const first = this.nextHost;
    const { blocks, tableClusters, totalClusters } = refcountLayout(first);
    const block = Buffer.alloc(CLUSTER_SIZE);
    for (let k = 0; k < blocks; k++) {
      const count = Math.min(REFCOUNT_BLOCK_ENTRIES, totalClusters - k * REFCOUNT_BLOCK_ENTRIES);
      if (k === 0 || count < REFCOUNT_BLOCK_ENTRIES) {
        block.fill(0);
        for (let i = 0; i < count; i++) block.writeUInt16BE(1, i * 2);
      }
      await this.file.write(block, (first + k) * CLUSTER_SIZE);
    }
    const table = Buffer.alloc(tableClusters * CLUSTER_SIZE);
    for (let k = 0; k < blocks; k++) table.writeBigUInt64BE(refcountTableEntry((first + k) * CLUSTER_SIZE), k * 8);
    const tableOffset = (first + blocks) * CLUSTER_SIZE;
    await this.file.write(table, tableOffset);
    this.nextHost = totalClusters;

    const size = diskSize(this.size);
    await this.file.write(
      encodeHeader({ size, l1Size: l1Entries(size), l1TableOffset: l1Offset, refcountTableOffset: tableOffset, refcountTableClusters: tableClusters }),
      0,
    );
    await this.file.datasync();
    this.finished = true;
    this.bytes = totalClusters * CLUSTER_SIZE;
  }

  private alloc(n: number): number {
    const c = this.nextHost;
    this.nextHost += n;
    return c;
  }

  private async commitPartial(): Promise<void> {
    if (this.partialCluster < 0) return;
    const c = this.partialCluster;
    this.partialCluster = -1;
    await this.writeClusters(c, this.partial);
    this.partial.fill(0);
  }

  /** Writes whole guest clusters starting at guest cluster `first`, skipping all-zero ones. */
  private async writeClusters(first: number, data: Buffer): Promise<void> {
    const n = data.length / CLUSTER_SIZE;
    let i = 0;
    while (i < n) {
      if (this.isZero(data.subarray(i * CLUSTER_SIZE, (i + 1) * CLUSTER_SIZE))) {
        i++;
        continue;
      }
      // A run of non-zero clusters under one L2 table goes to consecutive host clusters in one write.
      const l2 = Math.floor((first + i) / L2_ENTRIES);
      let j = i + 1;
      while (j < n && Math.floor((first + j) / L2_ENTRIES) === l2 && !this.isZero(data.subarray(j * CLUSTER_SIZE, (j + 1) * CLUSTER_SIZE))) j++;
      await this.useL2(l2);
      const host = this.alloc(j - i);
      await this.file.write(data.subarray(i * CLUSTER_SIZE, j * CLUSTER_SIZE), host * CLUSTER_SIZE);
      for (let k = i; k < j; k++) this.l2.writeBigUInt64BE(mappingEntry((host + k - i) * CLUSTER_SIZE), ((first + k) % L2_ENTRIES) * 8);
      i = j;
    }
  }

  private async useL2(index: number): Promise<void> {
    if (index === this.l2Index) return;
    invariant(index > this.l2Index, 'L2 tables are filled in guest order');
    await this.emitL2();
    this.l2Index = index;
  }

  /** Appends the current L2 table (complete: writes never go back) and points the L1 table at it. */
  private async emitL2(): Promise<void> {
    if (this.l2Index < 0) return;
    const host = this.alloc(1) * CLUSTER_SIZE;
    await this.file.write(this.l2, host);
    this.l1.writeBigUInt64BE(mappingEntry(host), this.l2Index * 8);
    this.l2.fill(0);
    this.l2Index = -1;
  }
}
