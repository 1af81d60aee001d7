/**
 * One running backup of one volume, seen from the backup application (claims 3–6, 11):
 * begin() sets the volume's backup flag through the journal, read() returns the image as of
 * begin, rangeCopied() lets the range policy release progressively, end()/abort() clear the
 * flag and release held writes in arrival order. Implements the vault's SnapshotSource.
 *
 * Invariant: after end() or abort() the session is finished and every call but state
 * queries throws BACKUP_NOT_RUNNING; the volume's flag is set iff the session is running.
 */
import type { HoldPolicy } from '../../../src-shared/contract';
import { HoldfastError } from '../../../src-shared/errors';
import { MetadataRule, UncopiedRangeRule, WholeVolumeRule, type HoldRule, type MetadataClassifier } from '../holds/policy';
import { BlockBitmap } from '../volumes/block-bitmap';
import type { CellStates } from '../volumes/cell-states';
import type { LiveVolume } from '../volumes/live-volume';
import type { ByteRange, FilePiece, SnapshotSource } from './snapshot-source';

export type SessionState = 'running' | 'completed' | 'aborted';

export class BackupSession implements SnapshotSource {
  private _state: SessionState = 'running';
  readonly changed: SnapshotSource['changed'];

  private constructor(
    readonly backupId: string,
    private readonly vol: LiveVolume,
    readonly policy: HoldPolicy,
    readonly metadataSummary: string | null,
    private readonly onFinish: (s: BackupSession) => void,
    /** Where the image of begin() is zero, from the device files' allocation maps (LiveVolume.deviceHoles). */
    private readonly holes: CellStates | null = null,
  ) {
    const c = vol.backupChangedMap();
    this.changed = c
      ? {
          granularity: c.map.granularity,
          parentSnapshotId: c.parentSnapshotId,
          isChanged: (block: number) => c.map.has(block),
          count: () => c.map.count(),
          forEachChanged: (fn: (block: number) => void) => c.map.forEachSet(fn),
        }
      : null;
  }

  /**
   * Sends the begin message. For the metadata policy `probe` classifies the volume's
   * filesystem metadata (read at the point in time, before any metadata write can land).
   */
  static async begin(
    vol: LiveVolume,
    backupId: string,
    policy: HoldPolicy,
    probe: (read: (o: number, l: number) => Promise<Buffer>, size: number) => Promise<MetadataClassifier>,
    onFinish: (s: BackupSession) => void = () => undefined,
  ): Promise<BackupSession> {
    let rule: HoldRule;
    let copied: BlockBitmap | null = null;
    let summary: string | null = null;
    if (policy === 'volume') rule = new WholeVolumeRule();
    else if (policy === 'range') {
      copied = new BlockBitmap(vol.size());
      rule = new UncopiedRangeRule(copied);
    } else {
      // Hold everything while probing so the map describes the point-in-time image, then narrow.
      const gate = new SwitchableRule();
      await vol.beginBackup(backupId, gate, null);
      let holes: CellStates | null;
      try {
        const map = await probe((o, l) => readSectors(vol, o, l), vol.size());
        summary = map.describe();
        holes = await vol.deviceHoles(); // while every write still waits: the device is the image of begin()
        gate.target = new MetadataRule(map);
      } catch (e) {
        await vol.abortBackup(backupId, `filesystem probe failed: ${(e as Error).message}`);
        throw e;
      }
      return new BackupSession(backupId, vol, policy, summary, onFinish, holes);
    }
    await vol.beginBackup(backupId, rule, copied);
    // Nothing is copied yet, so no write has reached the device since begin.
    const holes = await vol.deviceHoles().catch(() => null);
    return new BackupSession(backupId, vol, policy, summary, onFinish, holes);
  }

  get volume(): string {
    return this.vol.name;
  }
  get volumeId(): number {
    return this.vol.id;
  }
  get size(): number {
    return this.vol.size();
  }
  get state(): SessionState {
    return this._state;
  }

  private requireRunning(): void {
    if (this._state !== 'running') throw new HoldfastError('BACKUP_NOT_RUNNING', `Backup ${this.backupId} has already ${this._state === 'completed' ? 'completed' : 'been aborted'}.`);
  }

  read(offset: number, length: number): Promise<Buffer> {
    this.requireRunning();
    return this.vol.readPointInTime(offset, length);
  }

  readInto(offset: number, target: Buffer): Promise<void> {
    this.requireRunning();
    return this.vol.readPointInTimeInto(offset, target);
  }

  locate(offset: number, length: number): FilePiece[] | null {
    this.requireRunning();
    return this.vol.locatePointInTime(offset, length);
  }

  /** Device files close only after every session on them has ended (engine close, volume delete): while this one runs, located reads are good. */
  confirmLocated(): void {
    this.requireRunning();
  }

  rangeCopied(offset: number, length: number): void {
    if (this._state !== 'running') return;
    this.vol.rangeCopied(offset, length);
  }

  urgentRanges(): ByteRange[] {
    if (this._state !== 'running') return [];
    return this.vol.urgentRanges();
  }

  zeroAtBegin(offset: number, length: number): boolean {
    return this.holes?.allZero(offset, length) ?? false;
  }

  async end(snapshotId: string): Promise<void> {
    this.requireRunning();
    this._state = 'completed';
    try {
      await this.vol.endBackup(this.backupId, snapshotId);
    } finally {
      this.onFinish(this);
    }
  }

  async abort(reason: string): Promise<void> {
    if (this._state !== 'running') return;
    this._state = 'aborted';
    try {
      await this.vol.abortBackup(this.backupId, reason);
    } finally {
      this.onFinish(this);
    }
  }
}

/** Point-in-time read of any byte range: rounded out to whole sectors, then sliced (filesystem probes read odd sizes). */
async function readSectors(vol: LiveVolume, offset: number, length: number): Promise<Buffer> {
  const start = Math.floor(offset / vol.sectorSize) * vol.sectorSize;
  const end = Math.min(vol.size(), Math.ceil((offset + length) / vol.sectorSize) * vol.sectorSize);
  const buf = await vol.readPointInTime(start, end - start);
  return buf.subarray(offset - start, offset - start + length);
}

/** Holds every write until `target` is set (used while the metadata probe runs). */
class SwitchableRule implements HoldRule {
  target: MetadataRule | null = null;
  get policy(): HoldPolicy {
    return 'metadata';
  }
  mustHold(offset: number, length: number): boolean {
    return this.target ? this.target.mustHold(offset, length) : true;
  }
}
