/**
 * A BlockExport over one image file (or block device), through the Env/BlockFile seam:
 * the like-for-like baseline the NBD benchmark compares with `qemu-nbd` / `nbdkit file`,
 * and the export the NBD tests serve. flush = fdatasync; FUA = write then fdatasync.
 * Small requests use the synchronous pread/pwrite (a page-cache hit costs less than a
 * thread-pool round trip, the same trade the journal makes); big ones go async.
 * Trim and write-zeroes punch holes (write-zeroes with NO_HOLE: zero in place) where
 * BlockFile.zeroRange can, else write zeroes (reads then see zeroes, which is stronger than
 * trim requires); block status reports everything as allocated data (status 0 is always
 * correct in base:allocation).
 * Invariant: size is a multiple of sectorSize (a trailing partial sector is not exported).
 */
import { HoldfastError } from '../../src-shared/errors';
import type { AllocationExtent, BlockExport } from '../engine/block-export';
import type { BlockFile, Env, ZeroMode } from '../engine/env/env';

export interface FileExportOptions {
  name: string;
  description?: string;
  readOnly?: boolean;
  sectorSize?: number;
  preferredBlockSize?: number;
  /** Requests up to this many bytes use synchronous I/O (default 64 KiB; 0 = always async). */
  syncIoMax?: number;
}

const ZERO_CHUNK = 1024 * 1024;
let zeroes: Buffer | null = null;
function zeroBuffer(): Buffer {
  zeroes ??= Buffer.alloc(ZERO_CHUNK);
  return zeroes;
}

export class FileExport implements BlockExport {
  readonly name: string;
  readonly description: string;
  readonly readOnly: boolean;
  readonly sectorSize: number;
  readonly preferredBlockSize: number;
  private readonly exportSize: number;
  private readonly syncIoMax: number;
  private closed = false;

  private constructor(
    private readonly file: BlockFile,
    opts: FileExportOptions,
  ) {
    this.name = opts.name;
    this.description = opts.description ?? `File ${file.path}`;
    this.readOnly = opts.readOnly ?? false;
    this.sectorSize = opts.sectorSize ?? 512;
    this.preferredBlockSize = opts.preferredBlockSize ?? 4096;
    this.syncIoMax = opts.syncIoMax ?? 64 * 1024;
    this.exportSize = file.size() - (file.size() % this.sectorSize);
  }

  static async open(env: Env, path: string, opts: FileExportOptions): Promise<FileExport> {
    const file = await env.open(path, { readOnly: opts.readOnly ?? false });
    return new FileExport(file, opts);
  }

  size(): number {
    return this.exportSize;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.check(offset, length, false);
    const buf = Buffer.allocUnsafe(length);
    const n = length <= this.syncIoMax ? this.file.readSync(buf, offset) : await this.file.read(buf, offset);
    // A block device or a file shrunk under us: past its end reads as zeroes.
    if (n < length) buf.fill(0, n);
    return buf;
  }

  async write(offset: number, data: Buffer, opts?: { fua?: boolean }): Promise<void> {
    this.check(offset, data.length, true);
    if (data.length <= this.syncIoMax) this.file.writeSync(data, offset);
    else await this.file.write(data, offset);
    if (opts?.fua) await this.file.datasync();
  }

  async writeZeroes(offset: number, length: number, opts?: { fua?: boolean; noHole?: boolean }): Promise<void> {
    this.check(offset, length, true);
    await this.zero(offset, length, opts?.noHole ? 'allocate' : 'punch');
    if (opts?.fua) await this.file.datasync();
  }

  async trim(offset: number, length: number): Promise<void> {
    this.check(offset, length, true);
    await this.zero(offset, length, 'punch');
  }

  private async zero(offset: number, length: number, mode: ZeroMode): Promise<void> {
    if (await this.file.zeroRange(offset, length, mode)) return;
    const z = zeroBuffer();
    for (let done = 0; done < length; done += ZERO_CHUNK) {
      const n = Math.min(ZERO_CHUNK, length - done);
      await this.file.write(n === ZERO_CHUNK ? z : z.subarray(0, n), offset + done);
    }
  }

  async flush(): Promise<void> {
    if (this.readOnly) return;
    await this.file.datasync();
  }

  async blockStatus(offset: number, length: number): Promise<AllocationExtent[]> {
    this.check(offset, length, false, false);
    return [{ length, hole: false, zero: false }];
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.file.close();
  }

  /** `aligned`: reads and writes; block status takes any range. */
  private check(offset: number, length: number, isWrite: boolean, aligned = true): void {
    if (this.closed) throw new HoldfastError('IO_ERROR', `Export ${this.name} is closed.`);
    if (isWrite && this.readOnly) throw new HoldfastError('READ_ONLY', `Export ${this.name} is read-only.`);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.exportSize) {
      throw new HoldfastError('OUT_OF_RANGE', `Range ${offset}+${length} is outside export ${this.name} (${this.exportSize} bytes).`);
    }
    if (aligned && (offset % this.sectorSize !== 0 || length % this.sectorSize !== 0)) {
      throw new HoldfastError('UNALIGNED', `Range ${offset}+${length} is not aligned to ${this.sectorSize} bytes.`);
    }
  }
}
