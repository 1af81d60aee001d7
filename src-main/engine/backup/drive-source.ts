/**
 * A drive (or image file) read directly as a SnapshotSource, so the vault's backup writer can
 * image it ("image a drive into the vault", DESIGN.md §4). Holdfast does not own the drive's
 * writes, so there is no hold queue and no changed-block map: every image is a full read,
 * and unchanged 4 MiB regions cost nothing in the vault because chunks are content-addressed
 * (the previous image's chunks are reused).
 *
 * Invariants: the caller has checked the drive is not mounted and does not hold the system
 * (probeDevicePath) and opened it read-only; reads are whole or fail with IO_ERROR; the
 * session messages (rangeCopied, end, abort) have nothing to release.
 */
import path from 'node:path';
import type { HoldPolicy } from '../../../src-shared/contract';
import { HoldfastError, toErrorPayload } from '../../../src-shared/errors';
import type { BlockFile } from '../env/env';
import type { ByteRange, SnapshotSource } from './snapshot-source';

/** The vault "volume" name a drive's images are filed under: drive-<name as drive list shows it>. */
export function driveVolumeName(realPath: string): string {
  const base = path.basename(realPath).replace(/[^A-Za-z0-9._-]/g, '_');
  return `drive-${base}`.slice(0, 64);
}

export class DriveSource implements SnapshotSource {
  readonly volumeId = 0;
  readonly policy: HoldPolicy = 'volume';
  readonly changed = null;

  constructor(
    readonly backupId: string,
    readonly volume: string,
    readonly size: number,
    private readonly file: BlockFile,
  ) {}

  async read(offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    await this.readInto(offset, buf);
    return buf;
  }

  async readInto(offset: number, buf: Buffer): Promise<void> {
    const length = buf.length;
    let done = 0;
    while (done < length) {
      let n: number;
      try {
        // Uncached where the drive allows: imaging a drive would otherwise push the user's cache out.
        n = await this.file.readUncached(buf.subarray(done), offset + done);
      } catch (e) {
        const p = toErrorPayload(e);
        throw new HoldfastError('IO_ERROR', `Reading ${this.file.path} at byte ${offset + done}: ${p.message}`);
      }
      if (n === 0) throw new HoldfastError('IO_ERROR', `${this.file.path} ended at byte ${offset + done}, before its size ${this.size}; was it removed or resized while being imaged?`);
      done += n;
    }
  }

  rangeCopied(): void {}

  urgentRanges(): ByteRange[] {
    return [];
  }

  async end(): Promise<void> {}

  async abort(): Promise<void> {}
}
