/**
 * The backup application's view of a running backup session (claims 3–6): a point-in-time
 * image of one volume as of begin(), and the messages the backup sends back. The vault's
 * backup writer consumes this interface; the engine's BackupSession implements it.
 */
import type { HoldPolicy } from '../../../src-shared/contract';

export interface ByteRange {
  offset: number;
  length: number;
}

/** Bytes of a volume at a position in an open file (one of its devices). */
export interface FilePiece {
  fd: number;
  /** The same file opened for uncached reads (BlockFile.uncachedFd), null if it has none. */
  uncachedFd?: number | null;
  position: number;
  length: number;
}

export interface SnapshotSource {
  readonly backupId: string;
  readonly volume: string;
  readonly volumeId: number;
  readonly size: number;
  readonly policy: HoldPolicy;
  /**
   * Blocks changed since the parent snapshot, at `changedGranularity` bytes per bit, or null
   * when unknown (then the backup must be full). `parentSnapshotId` names the snapshot the
   * map is relative to: the writer uses it only if the vault's newest snapshot of this volume
   * has that id.
   */
  readonly changed: {
    granularity: number;
    parentSnapshotId: string | null;
    isChanged(block: number): boolean;
    count(): number;
    /** Calls fn for every changed block in ascending order (faster than asking isChanged of each). */
    forEachChanged?(fn: (block: number) => void): void;
  } | null;
  /** Reads the volume as it was at begin(). Valid for ranges not yet reported copied. */
  read(offset: number, length: number): Promise<Buffer>;
  /** read() into the caller's buffer (target.length bytes), sparing a chunk-sized allocation per read. */
  readInto?(offset: number, target: Buffer): Promise<void>;
  /**
   * Where [offset, offset + length) of the point-in-time image lives, as positions in open files
   * (in order, lengths summing to `length`), so another thread (the chunk workers) can read it
   * without a trip through this one; null when it can only be read through readInto. A located
   * range reads as the image of begin() while the session runs and the range is not reported
   * copied; a file ending inside a piece reads as zeroes past its end. The files stay open while
   * the session runs: after reading located pieces, call confirmLocated() before using the bytes.
   */
  locate?(offset: number, length: number): FilePiece[] | null;
  /** Waits, if the backup is being throttled, before `bytes` of located pieces are read (reads through readInto wait by themselves). */
  pace?(bytes: number): Promise<void>;
  /** Throws BACKUP_NOT_RUNNING once the session has ended: reads of located pieces made before this call are then not to be trusted. */
  confirmLocated?(): void;
  /** Range policy: these bytes are in the vault's hands; held writes wholly inside copied ranges are released. */
  rangeCopied(offset: number, length: number): void;
  /** Ranges that have held writes waiting on them, to copy first so the queue stays short. */
  urgentRanges(): ByteRange[];
  /**
   * Whether [offset, offset + length) of the point-in-time image is known to read as zeroes
   * without reading it (holes of the volume's image files at begin()); false when not known.
   * The writer records such a region as a zero chunk, unread.
   */
  zeroAtBegin?(offset: number, length: number): boolean;
  /** Completion message (claim 6): clear the flag, release held writes in arrival order. The id is what the vault stored. */
  end(snapshotId: string): Promise<void>;
  /** Failure or cancel: clear the flag, release, and keep the changed map for the next backup. */
  abort(reason: string): Promise<void>;
}
