/**
 * The qcow2 image format (version 3), as much of it as an exporter writes — constants, layout
 * arithmetic, header and table-entry encoding, nothing else (after QEMU's docs/interop/qcow2.txt).
 * The streaming writer is qcow2-writer.ts.
 *
 *   cluster 0                 header (+ an empty header-extension list)
 *   clusters 1…               data clusters and L2 tables, in the order they were produced
 *   then                      L1 table, refcount blocks, refcount table
 *
 * Everything is big-endian. 64 KiB clusters, 16-bit refcounts (refcount_order 4), no backing
 * file, no encryption, no compression, no internal snapshots. A guest cluster with L2 entry 0 is
 * unallocated and reads as zeroes (there is no backing file), which is how zero regions stay sparse.
 */
import { HoldfastError, invariant } from '../../../src-shared/errors';

export const QCOW2_MAGIC = 0x514649fb; // "QFI\xfb"
export const QCOW2_VERSION = 3;
export const CLUSTER_BITS = 16;
export const CLUSTER_SIZE = 1 << CLUSTER_BITS;
/** Guest clusters per L2 table (one cluster of 8-byte entries): 8192 × 64 KiB = 512 MiB of disk. */
export const L2_ENTRIES = CLUSTER_SIZE / 8;
export const REFCOUNT_ORDER = 4;
export const REFCOUNT_BYTES = (1 << REFCOUNT_ORDER) / 8;
/** Host clusters per refcount block: 32768 × 64 KiB = 2 GiB of image file. */
export const REFCOUNT_BLOCK_ENTRIES = CLUSTER_SIZE / REFCOUNT_BYTES;
/** Refcount-table entries (one per refcount block) per cluster of the table. */
export const REFCOUNT_TABLE_ENTRIES_PER_CLUSTER = CLUSTER_SIZE / 8;
/** v3 header through header_length (104) plus compression_type (0 = zlib, unused) padded to 8. */
export const HEADER_LENGTH = 112;
/** L1/L2 entry bit 63 ("COPIED"): the cluster's refcount is exactly one. */
export const OFLAG_COPIED = 1n << 63n;
/** Bits 9–55 of an L1/L2/refcount-table entry hold the host offset. */
const OFFSET_MASK = 0x00ff_ffff_ffff_fe00n;

/**
 * The virtual size recorded for `bytes` of data: whole 512-byte sectors, because qemu reads a
 * qcow2's size in sectors (rounded down) — the tail is zero padding, as `qemu-img convert`
 * produces for a raw image of such a size.
 */
export function diskSize(bytes: number): number {
  return Math.ceil(bytes / 512) * 512;
}

/** Entries of the L1 table for a disk of `size` bytes (one per L2 table). */
export function l1Entries(size: number): number {
  return Math.ceil(size / (CLUSTER_SIZE * L2_ENTRIES));
}

/** Bytes the L1 table occupies in the file: whole clusters (at least one, so the header can point at it). */
export function l1TableBytes(size: number): number {
  return Math.max(1, Math.ceil((l1Entries(size) * 8) / CLUSTER_SIZE)) * CLUSTER_SIZE;
}

/** An L1 entry (→ L2 table) or a standard L2 entry (→ data cluster) whose target has refcount 1. */
export function mappingEntry(hostOffset: number): bigint {
  invariant(hostOffset > 0 && hostOffset % CLUSTER_SIZE === 0, 'qcow2 tables point at whole host clusters after the header');
  const e = BigInt(hostOffset);
  invariant((e & ~OFFSET_MASK) === 0n, 'host offset fits in bits 9-55');
  return e | OFLAG_COPIED;
}

/** A refcount-table entry (→ refcount block); no flag bits. */
export function refcountTableEntry(hostOffset: number): bigint {
  invariant(hostOffset > 0 && hostOffset % CLUSTER_SIZE === 0, 'refcount blocks are whole host clusters');
  return BigInt(hostOffset);
}

/**
 * Refcount structures for an image whose other clusters (header, data, L2, L1) number
 * `otherClusters`, all with refcount 1 and allocated contiguously from cluster 0: the blocks and
 * the table are placed right after them and must count themselves too.
 */
export function refcountLayout(otherClusters: number): { blocks: number; tableClusters: number; totalClusters: number } {
  let blocks = 0;
  let tableClusters = 0;
  for (;;) {
    const total = otherClusters + blocks + tableClusters;
    const b = Math.ceil(total / REFCOUNT_BLOCK_ENTRIES);
    const t = Math.ceil(b / REFCOUNT_TABLE_ENTRIES_PER_CLUSTER);
    if (b === blocks && t === tableClusters) return { blocks, tableClusters, totalClusters: total };
    blocks = b;
    tableClusters = t;
  }
}

export interface Qcow2Header {
  size: number;
  l1Size: number;
  l1TableOffset: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
}

/** The header followed by the end-of-extensions marker (the rest of cluster 0 stays zero). */
export function encodeHeader(h: Qcow2Header): Buffer {
  if (!Number.isSafeInteger(h.size) || h.size <= 0) throw new HoldfastError('INVALID_SIZE', `A qcow2 image needs a positive size (got ${h.size}).`);
  const b = Buffer.alloc(HEADER_LENGTH + 8);
  b.writeUInt32BE(QCOW2_MAGIC, 0);
  b.writeUInt32BE(QCOW2_VERSION, 4);
  // 8: backing_file_offset 0, 16: backing_file_size 0
  b.writeUInt32BE(CLUSTER_BITS, 20);
  b.writeBigUInt64BE(BigInt(h.size), 24);
  // 32: crypt_method 0
  b.writeUInt32BE(h.l1Size, 36);
  b.writeBigUInt64BE(BigInt(h.l1TableOffset), 40);
  b.writeBigUInt64BE(BigInt(h.refcountTableOffset), 48);
  b.writeUInt32BE(h.refcountTableClusters, 56);
  // 60: nb_snapshots 0, 64: snapshots_offset 0, 72/80/88: incompatible/compatible/autoclear features 0
  b.writeUInt32BE(REFCOUNT_ORDER, 96);
  b.writeUInt32BE(HEADER_LENGTH, 100);
  // 104: compression_type 0 (zlib; no cluster is compressed), 105-111 padding; then extension type 0 = end
  return b;
}
