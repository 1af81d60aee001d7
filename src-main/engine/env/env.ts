/**
 * The Env seam (after LevelDB's Env): every file and block-device access, fsync and clock
 * read in the engine goes through this interface, so tests swap in FaultyEnv to inject
 * EIO, ENOSPC, short and torn writes and "crash after N bytes". Production code never asks
 * whether it runs in a test.
 */
import type { ZeroMode } from './native-fs';

export type { ZeroMode };

/** Positions, lengths and memory addresses of uncached (O_DIRECT) reads are multiples of this. */
export const DIRECT_IO_ALIGN = 4096;

/** An open file or block device, addressed by byte position. */
export interface BlockFile {
  readonly path: string;
  /**
   * The OS file descriptor, for a reader on another thread (a backup's chunk workers read
   * located volume ranges with it); valid until close(). Absent where every access must go
   * through this object (fault injection).
   */
  readonly fd?: number;
  /** Current size in bytes (for block devices: the device size). */
  size(): number;
  /** Reads up to buf.length bytes at pos; returns bytes read (short only at end of file). */
  read(buf: Buffer, pos: number): Promise<number>;
  readSync(buf: Buffer, pos: number): number;
  /**
   * read() that leaves nothing in the page cache where it can: O_DIRECT (dirty cached pages of the
   * range are written back first, so it reads what read() would). Direct only when pos and
   * buf.length are multiples of DIRECT_IO_ALIGN and buf lies in aligned memory
   * (alignedSharedMemory); otherwise, or where the filesystem refuses, exactly read(). For bulk
   * reads the user will not read again (backups): buffered reads leave readahead's large folios
   * behind, which make every later small write into them dearer, and evict the user's cache.
   */
  readUncached(buf: Buffer, pos: number): Promise<number>;
  /**
   * A read-only O_DIRECT descriptor of the same file, for a reader on another thread (the
   * chunk workers), opened on first use; null where the platform or filesystem refuses it.
   * Same alignment rules and fallback as readUncached. Valid until close().
   */
  uncachedFd?(): number | null;
  /**
   * Bytes the filesystem has allocated to a regular file (st_blocks × 512), fewer than size()
   * when the file has holes; null for block devices and where unknown.
   */
  allocatedBytes?(): number | null;
  /**
   * The file's allocated ranges in offset order, as the filesystem maps them (SEEK_DATA /
   * SEEK_HOLE, or FIEMAP): the rest are holes; `zero` marks unwritten (preallocated) ranges,
   * which read as zeroes (SEEK_HOLE counts them as holes already). null where the filesystem or
   * platform does not say.
   */
  allocation?(): Promise<FileRange[] | null>;
  /** Writes all of buf at pos or throws; a short write is retried internally. */
  write(buf: Buffer, pos: number): Promise<void>;
  /** Synchronous write: for small journal appends where a thread-pool round trip costs more than the copy. */
  writeSync(buf: Buffer, pos: number): void;
  /**
   * Copies `len` bytes of the file open as `srcFd`, from `srcPos`, to this file at `pos`, inside
   * the kernel (copy_file_range: the bytes never pass through user memory; a released held write
   * goes from the journal's page cache to the image's this way). Returns false, having written
   * nothing, where it cannot (no addon, a block device, another file system); the caller copies
   * through a buffer then. Throws on I/O errors as writeSync does. Absent where every access
   * must go through this object (fault injection).
   */
  copyFromSync?(srcFd: number, srcPos: number, len: number, pos: number): boolean;
  /** Writes several buffers contiguously starting at pos (one syscall where possible). */
  writev(bufs: Buffer[], pos: number): Promise<void>;
  /** Synchronous writev: a batch of small journal records in one pwritev. */
  writevSync(bufs: Buffer[], pos: number): void;
  datasync(): Promise<void>;
  datasyncSync(): void;
  /** Grows or shrinks a regular file (sparse when growing). Not valid for block devices. */
  truncate(len: number): Promise<void>;
  /**
   * Makes [pos, pos + len) read as zeroes without writing them (fallocate): `punch` deallocates
   * it (a hole; the size is unchanged), `allocate` zeroes it in place and keeps it allocated.
   * Resolves false, having changed nothing, where the platform, the file system or the file
   * (a block device) cannot; the caller then writes zeroes itself.
   */
  zeroRange(pos: number, len: number, mode: ZeroMode): Promise<boolean>;
  close(): Promise<void>;
}

/** A byte range of a file (BlockFile.allocation). */
export interface FileRange {
  offset: number;
  length: number;
  zero: boolean;
}

export interface OpenOptions {
  /** Create the file if missing (fails with EEXIST when `exclusive`). */
  create?: boolean;
  exclusive?: boolean;
  readOnly?: boolean;
}

export interface FileStat {
  size: number;
  isFile: boolean;
  isBlockDevice: boolean;
  isDirectory: boolean;
  mtimeMs: number;
}

export interface Env {
  open(path: string, opts?: OpenOptions): Promise<BlockFile>;
  /** null when the path does not exist. */
  stat(path: string): Promise<FileStat | null>;
  mkdir(path: string): Promise<void>; // recursive, ok if it exists
  readdir(path: string): Promise<string[]>;
  readFile(path: string): Promise<Buffer>;
  /**
   * Writes a whole file durably: temp file, fsync, rename over path, fsync the directory. With
   * `durable: false` no fsync: other processes see the old file or the whole new one, but a crash
   * may lose it (for markers of live processes and probes, which mean nothing after a crash).
   */
  writeFileAtomic(path: string, data: Buffer | string, opts?: { durable?: boolean }): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>; // ok if missing
  rmdir(path: string): Promise<void>; // recursive, ok if missing
  fsyncDir(path: string): Promise<void>;
  /** Free bytes on the filesystem holding path. */
  freeSpace(path: string): Promise<number>;
  /** Wall clock, ms since epoch. */
  now(): number;
  /** Monotonic clock, ms with sub-ms precision. */
  monotonic(): number;
}
