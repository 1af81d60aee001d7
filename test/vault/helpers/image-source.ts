/**
 * A SnapshotSource over a real image file, for vault tests: the point-in-time image is the file
 * as it is, and a test "writer" may change it only the way a real backup session permits —
 * under `volume` (and `metadata`, treated the same here) every write is held until end/abort;
 * under `range` a write lands at once if every byte it touches is already reported copied,
 * otherwise it is held (and listed in urgentRanges) until its ranges are copied. Held writes
 * are released in arrival order, and a write overlapping an earlier held write stays held.
 * It also enforces the SnapshotSource contract on the consumer: no read of a copied range,
 * nothing after end/abort, end/abort once.
 */
import fs from 'node:fs';
import type { HoldPolicy } from '../../../src-shared/contract';
import type { ByteRange, SnapshotSource } from '../../../src-main/engine/backup/snapshot-source';

interface HeldWrite {
  offset: number;
  data: Buffer;
}

export interface ImageSourceOptions {
  volume?: string;
  volumeId?: number;
  policy?: HoldPolicy;
  backupId?: string;
  /** Changed blocks since parentSnapshotId, at `granularity` bytes per block. */
  changed?: { granularity: number; parentSnapshotId: string | null; blocks: Iterable<number> } | null;
  /** Offer locate(): the chunk workers then read the image file themselves, as with engine volumes. */
  locate?: boolean;
}

export class ImageSnapshotSource implements SnapshotSource {
  readonly backupId: string;
  readonly volume: string;
  readonly volumeId: number;
  readonly size: number;
  readonly policy: HoldPolicy;
  readonly changed: SnapshotSource['changed'];
  readonly copied: ByteRange[] = [];
  readonly held: HeldWrite[] = [];
  readonly log: string[] = [];
  state: 'running' | 'ended' | 'aborted' = 'running';
  endedWith: string | null = null;
  abortReason: string | null = null;
  readsOfCopied = 0;
  locates = 0;
  readonly locate?: (offset: number, length: number) => { fd: number; position: number; length: number }[];
  readonly confirmLocated?: () => void;
  private readonly fd: number;
  private readonly copiedMap: Uint8Array;
  private static readonly GRAIN = 512;

  constructor(
    readonly path: string,
    opts: ImageSourceOptions = {},
  ) {
    this.fd = fs.openSync(path, 'r+');
    this.size = fs.fstatSync(this.fd).size;
    this.volume = opts.volume ?? 'vol1';
    this.volumeId = opts.volumeId ?? 1;
    this.policy = opts.policy ?? 'volume';
    this.backupId = opts.backupId ?? `b-${Math.random().toString(16).slice(2, 10)}`;
    this.copiedMap = new Uint8Array(Math.ceil(this.size / ImageSnapshotSource.GRAIN));
    if (opts.changed) {
      const set = new Set(opts.changed.blocks);
      this.changed = {
        granularity: opts.changed.granularity,
        parentSnapshotId: opts.changed.parentSnapshotId,
        isChanged: (b) => set.has(b),
        count: () => set.size,
      };
    } else this.changed = null;
    if (opts.locate) {
      // The bytes are read later, on another thread; the range must stay uncopied (its writes held) until then.
      this.locate = (offset, length) => {
        this.checkRead('locate', offset, length);
        this.locates++;
        return [{ fd: this.fd, position: offset, length }];
      };
      this.confirmLocated = () => this.running('confirmLocated');
    }
  }

  private running(what: string): void {
    if (this.state !== 'running') throw new Error(`${what} after the session finished (${this.state})`);
  }

  private isCopied(offset: number, length: number): boolean {
    const g = ImageSnapshotSource.GRAIN;
    for (let i = Math.floor(offset / g); i < Math.ceil((offset + length) / g); i++) if (!this.copiedMap[i]) return false;
    return true;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.checkRead('read', offset, length);
    const buf = Buffer.alloc(length);
    fs.readSync(this.fd, buf, 0, length, offset);
    return buf;
  }

  private checkRead(what: string, offset: number, length: number): void {
    this.running(what);
    if (offset < 0 || length < 0 || offset + length > this.size) throw new Error(`${what} outside the image: ${offset}+${length}`);
    // A copied range may already hold newer data: reading it would break point-in-time.
    const g = ImageSnapshotSource.GRAIN;
    for (let i = Math.floor(offset / g); i < Math.ceil((offset + length) / g); i++)
      if (this.copiedMap[i] && this.policy === 'range') {
        this.readsOfCopied++;
        break;
      }
  }

  rangeCopied(offset: number, length: number): void {
    this.running('rangeCopied');
    this.copied.push({ offset, length });
    const g = ImageSnapshotSource.GRAIN;
    for (let i = Math.floor(offset / g); i < Math.ceil((offset + length) / g); i++) this.copiedMap[i] = 1;
    if (this.policy === 'range') this.releaseCopied();
  }

  urgentRanges(): ByteRange[] {
    return this.held.map((w) => ({ offset: w.offset, length: w.data.length }));
  }

  /** The test writer: a write to the live volume during the backup. */
  write(offset: number, data: Buffer): void {
    const overlapsHeld = this.held.some((h) => offset < h.offset + h.data.length && h.offset < offset + data.length);
    if (this.state === 'running' && (this.policy !== 'range' || overlapsHeld || !this.isCopied(offset, data.length))) {
      this.held.push({ offset, data: Buffer.from(data) });
      return;
    }
    fs.writeSync(this.fd, data, 0, data.length, offset);
  }

  private releaseCopied(): void {
    // In arrival order; stop at the first write that must still wait when later ones overlap it.
    for (let i = 0; i < this.held.length; ) {
      const w = this.held[i]!;
      const blockedByEarlier = this.held.slice(0, i).some((h) => w.offset < h.offset + h.data.length && h.offset < w.offset + w.data.length);
      if (!blockedByEarlier && this.isCopied(w.offset, w.data.length)) {
        fs.writeSync(this.fd, w.data, 0, w.data.length, w.offset);
        this.held.splice(i, 1);
      } else i++;
    }
  }

  private releaseAll(): void {
    for (const w of this.held.splice(0)) fs.writeSync(this.fd, w.data, 0, w.data.length, w.offset);
  }

  async end(snapshotId: string): Promise<void> {
    this.running('end');
    this.state = 'ended';
    this.endedWith = snapshotId;
    this.log.push(`end ${snapshotId}`);
    this.releaseAll();
  }

  async abort(reason: string): Promise<void> {
    this.running('abort');
    this.state = 'aborted';
    this.abortReason = reason;
    this.log.push(`abort ${reason}`);
    this.releaseAll();
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}
