/**
 * What the NBD server (and anything else that speaks block I/O) sees of a volume or a
 * read-only snapshot. The engine's volumes implement it through the journaled write path;
 * snapshots implement it read-only from the vault. Offsets and lengths are validated by the
 * protocol layer against size() and sectorSize before they arrive here; implementations still
 * throw HoldfastError (OUT_OF_RANGE, UNALIGNED, READ_ONLY) when handed bad input.
 */
export interface AllocationExtent {
  length: number;
  /** NBD_STATE_HOLE: not allocated. */
  hole: boolean;
  /** NBD_STATE_ZERO: reads as zeroes. */
  zero: boolean;
}

export interface WriteOptions {
  fua?: boolean;
  stable?: boolean;
}

export interface BlockExport {
  readonly name: string;
  readonly description: string;
  readonly readOnly: boolean;
  /** Minimum I/O alignment in bytes (512). */
  readonly sectorSize: number;
  /** Preferred I/O size in bytes (4096). */
  readonly preferredBlockSize: number;
  size(): number;
  read(offset: number, length: number): Promise<Buffer>;
  /**
   * Resolves when the write is acknowledged under the volume's ack mode; with fua, also durable.
   * `stable`: the caller never changes `data` afterwards, so the export may keep it without a copy.
   */
  write(offset: number, data: Buffer, opts?: WriteOptions): Promise<void>;
  writeZeroes(offset: number, length: number, opts?: { fua?: boolean; noHole?: boolean }): Promise<void>;
  trim(offset: number, length: number): Promise<void>;
  /** Makes every write acknowledged before this call durable. */
  flush(): Promise<void>;
  /**
   * Consecutive extents from offset, at most `maxExtents` (REQ_ONE asks for 1); they may cover
   * less than `length` (the client asks again from where they end), never more.
   */
  blockStatus(offset: number, length: number, maxExtents?: number): Promise<AllocationExtent[]>;
  /**
   * Parts of [offset, offset + length) known to read as zeroes without any I/O (in offset order,
   * inside the range; empty when nothing is known). The server sends them as holes and reads only
   * the rest (structured replies without DF), as qemu-nbd does.
   */
  knownZeroes?(offset: number, length: number): ByteRange[];
  /** read() into the caller's memory (offset and length aligned as for read). */
  readInto?(offset: number, target: Buffer): Promise<void>;
}

export interface ByteRange {
  offset: number;
  length: number;
}

/** A handle on an open export; the server closes it when the client disconnects. */
export interface ExportLease {
  readonly export: BlockExport;
  /** Called by the owner (e.g. restore over a volume) to make the server drop this client. */
  onRevoke(cb: () => void): void;
  close(): void;
}

export interface ExportRegistry {
  list(): Array<{ name: string; description: string }>;
  /** Throws HoldfastError NOT_FOUND for an unknown name. */
  open(name: string): ExportLease;
}
