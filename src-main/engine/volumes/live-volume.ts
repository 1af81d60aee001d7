/**
 * A live logical volume: the write path of DESIGN.md §3 and claims 1–11.
 *
 *   write(offset, data) → validate → decide (backup flag + hold rule + overlap with held)
 *     → journal "being submitted" record (data included iff held and acknowledged early)
 *     → held: append to the hold queue (not forwarded to the device)
 *     → not held: forward to the device after any overlapping in-flight write, then mark
 *       the changed-block map (claim 9: only applied writes advance it).
 *   release (backup end, or range policy as ranges are copied) → device in arrival order
 *     → APPLIED record → unlink from the queue → changed-block map.
 *
 * Invariants:
 * - No write reaches the device before its journal record was appended.
 * - A write that overlaps a queued (held) write is held too, whatever the policy, and a
 *   write that overlaps an in-flight device write waits for it: no write overtakes an
 *   earlier one to the same bytes.
 * - While the backup flag is set, the device bytes of every block the hold rule protects are
 *   exactly those at begin(): the point-in-time image (claim 5).
 * - The changed-block map and the checkpoint advance only over applied writes.
 * - Holding never touches other volumes: each volume owns its journal, queue and flag.
 */
import type { AckMode, HoldPolicy, HoldState } from '../../../src-shared/contract';
import { HoldfastError, invariant } from '../../../src-shared/errors';
import type { AllocationExtent, BlockExport, ByteRange, WriteOptions } from '../block-export';
import type { BlockFile, Env, ZeroMode } from '../env/env';
import { crc32, decodeSeqList, HEADER_SIZE, RecordType, type JournalRecord } from '../journal/format';
import { VolumeJournal, type JournalOptions } from '../journal/journal';
import { applyOverlay, HeldWrite, HoldQueue, regionSpan } from '../holds/hold-queue';
import type { HoldRule } from '../holds/policy';
import { BlockBitmap } from './block-bitmap';
import { decodeCbtState, encodeCbtState } from './cbt-state';
import { GroupSync } from './group-sync';
import { CACHED_GUESS_MS, RecentRegions } from './recent-regions';
import { WRITE_PIECE_BYTES, writePieces } from './small-folio-writes';
import { CellStates } from './cell-states';
import { scanBlockStatus } from './zero-scan';

export const SECTOR = 512;
const ZERO_CHUNK = Buffer.alloc(1 << 20);
const RELEASE_BATCH_BYTES = 8 << 20;
/** How long block status waits for a device file's allocation map before it reads instead. */
const ALLOCATION_MAP_WAIT_MS = 2000;
const RELEASE_BATCH_COUNT = 256;
/** Entries per batch counting superseded ones (no device write; 8 bytes each in the APPLIED record). */
const RELEASE_BATCH_MAX = 4096;
/**
 * A range-policy pass takes more: its writes are mostly those of one copied chunk, and the
 * denser the batch, the more of them coalesce into one device write (see writeBatch). Writers in
 * ack mode `device` already waited for the backup to copy their blocks; a batch is applied
 * within tens of milliseconds.
 */
const RANGE_BATCH_COUNT = 2048;
const RANGE_BATCH_BYTES = 16 << 20;
/**
 * Candidates a range-policy pick offers per event-loop turn (an offer costs ~0.1–0.3 µs); a
 * batch with room left goes on offering after a turn.
 */
const PICK_OFFERS_PER_TURN = 1024;
/**
 * Pending regions one pick takes at most (4 MiB, one copied chunk): a backup copying faster
 * than its releases drain leaves many pending, and collecting their entries (merged by arrival)
 * is one synchronous step: with 100k writes held, all ~100 pending regions stalled the event
 * loop for 75 ms, 16 of them 0.5–2.3 ms, 4 of them mostly under 0.3 ms.
 */
const PICK_REGIONS = 4;
/** Adjacent released writes coalesce into one device write of at most this many bytes. */
const RELEASE_RUN_BYTES = 64 << 10;
/**
 * Applied entries taken out of the queue per event-loop turn (~0.3–0.5 µs each): a range batch
 * of 2048 taken out at once kept a client's request waiting ~1 ms, up to 7 ms.
 */
const RETIRE_PER_TURN = 128;

/**
 * A release pass's batch, built from entries offered in arrival order (claim 8's decision,
 * shared by both ways of picking): an entry is taken when it may go to the device and
 * overlaps neither an earlier entry that stays nor one already taken.
 *
 * A range-policy pick offers its candidates over several passes (`nextPass` starts a new batch
 * and keeps what the walk learnt): `blocked` and `inBatch` then also hold entries of earlier
 * passes, which only makes the decision more cautious — an entry behind one taken by an earlier
 * pass (already applied) waits for the next pick, as it would behind one of this batch.
 */
class ReleaseBatch {
  /** Taken entries in arrival order (this pass). */
  batch: HeldWrite[] = [];
  /** The taken entries that write (superseded ones are no-ops) (this pass). */
  writes: HeldWrite[] = [];
  /** Blocks of taken writes that share a block with another queued entry. */
  readonly inBatch = new BlockSet();
  /** Blocks of entries that stay and share a block with another queued entry. */
  readonly blocked = new BlockSet();
  private bytes = 0;

  constructor(
    private readonly queue: HoldQueue,
    /** The flag/copied rule plus the `blocked` check (LiveVolume.releasable). */
    private readonly releasable: (w: HeldWrite, blocked: BlockSet, alone: boolean) => boolean,
    private readonly maxWrites = RELEASE_BATCH_COUNT,
    private readonly maxBytes = RELEASE_BATCH_BYTES,
  ) {}

  get full(): boolean {
    return this.writes.length >= this.maxWrites || this.bytes >= this.maxBytes || this.batch.length >= RELEASE_BATCH_MAX;
  }

  /** The next pass's batch: the taken entries were applied; the walk's sets stay. */
  nextPass(): void {
    this.batch = [];
    this.writes = [];
    this.bytes = 0;
  }

  /** 'taken'; 'stays'; or 'behind-batch': it overlaps a taken entry and must wait for a later pass. */
  offer(w: HeldWrite): 'taken' | 'stays' | 'behind-batch' {
    if (w.superseded) {
      // A later queued write covers it and is applied after it: nothing to write, whatever
      // the backup still needs (the device is not touched), so it leaves with this batch.
      this.batch.push(w);
      return 'taken';
    }
    // Most held writes share no block with any other: then neither set needs a look, and
    // an offer costs one counter lookup.
    const alone = this.queue.alone(w);
    const overlapsBatch = !alone && this.inBatch.overlaps(w.offset, w.length);
    if (!overlapsBatch && this.releasable(w, this.blocked, alone)) {
      this.batch.push(w);
      this.writes.push(w);
      w.releasing = true;
      if (!alone) this.inBatch.add(w.offset, w.length);
      this.bytes += w.length;
      return 'taken';
    }
    // It stays: later writes that overlap it wait behind it.
    if (!alone) this.blocked.add(w.offset, w.length);
    return overlapsBatch ? 'behind-batch' : 'stays';
  }
}

/**
 * A range-policy pick: the candidates of the regions that were pending, collected once and
 * offered in arrival order over as many passes as they need (see newRangePick).
 */
interface RangePick {
  readonly cands: HeldWrite[];
  /** The next candidate to offer. */
  at: number;
  readonly walk: ReleaseBatch;
}

/** Resolves (with false: nothing written since) after the event loop's next turn. */
function nextTurn(): Promise<false> {
  return new Promise((r) => setImmediate(() => r(false)));
}

/**
 * A batch's writes in offset order. They share no 4 KiB block (the batch's rule), so their first
 * blocks differ, and a released chunk's writes are dense in it: each goes to its first block's
 * slot and one scan reads them out, in time linear in the batch (a comparison sort of 2048 took
 * ~0.2–0.8 ms in one event-loop turn). Writes spread thinly over a wide span (the batches of a
 * backup's end) are few and get a comparison sort, as does a batch that breaks the rule.
 */
export function inOffsetOrder(writes: HeldWrite[]): HeldWrite[] {
  const n = writes.length;
  if (n < 2) return writes;
  let lo = Infinity;
  let hi = -Infinity;
  for (const w of writes) {
    const b = Math.floor(w.offset / 4096);
    if (b < lo) lo = b;
    if (b > hi) hi = b;
  }
  const span = hi - lo + 1;
  const byComparison = (): HeldWrite[] => writes.slice().sort((a, b) => a.offset - b.offset);
  if (span > 8 * n) return byComparison();
  const slots = new Int32Array(span); // index + 1 of the write whose first block it is
  for (let i = 0; i < n; i++) {
    const s = Math.floor(writes[i]!.offset / 4096) - lo;
    if (slots[s] !== 0) return byComparison();
    slots[s] = i + 1;
  }
  const out = new Array<HeldWrite>(n);
  let k = 0;
  for (let s = 0; s < span; s++) if (slots[s] !== 0) out[k++] = writes[slots[s]! - 1]!;
  return out;
}

/** Does [offset, offset + length) overlap a batch entry? inBatch holds only the entries that were not alone. */
function batchOverlaps(batch: HeldWrite[], inBatch: BlockSet, offset: number, length: number): boolean {
  if (inBatch.overlaps(offset, length)) return true;
  const end = offset + length;
  for (const w of batch) if (w.offset < end && offset < w.offset + w.length) return true;
  return false;
}

/** The 4 KiB blocks some byte ranges touch: overlap tests in time linear in the range's blocks. */
class BlockSet {
  private readonly blocks = new Set<number>();
  add(offset: number, length: number): void {
    for (let b = Math.floor(offset / 4096), end = Math.ceil((offset + length) / 4096); b < end; b++) this.blocks.add(b);
  }
  overlaps(offset: number, length: number): boolean {
    if (this.blocks.size === 0) return false;
    for (let b = Math.floor(offset / 4096), end = Math.ceil((offset + length) / 4096); b < end; b++) if (this.blocks.has(b)) return true;
    return false;
  }
}
/**
 * Device I/O up to this size is done synchronously (page-cache copies); larger I/O uses the
 * thread pool, in pieces of WRITE_PIECE_BYTES (small-folio-writes.ts), which no synchronous
 * write exceeds.
 */
const SYNC_IO_MAX = 64 << 10;
invariant(SYNC_IO_MAX <= WRITE_PIECE_BYTES && RELEASE_RUN_BYTES <= SYNC_IO_MAX, 'synchronous device writes are small-folio pieces already');

export interface MappedExtent {
  volumeOffset: number;
  length: number;
  deviceId: number;
  deviceOffset: number;
}

export interface LiveVolumeConfig {
  id: number;
  name: string;
  size: number;
  ackMode: AckMode;
  extents: MappedExtent[];
  /** Opened device handles, by device id. */
  fileFor(deviceId: number): BlockFile;
  journalDir: string;
  journalOptions: JournalOptions;
  env: Env;
  /** Identifies this boot; a different one at open after an unclean close means power loss. */
  bootId: string;
}

export interface RecoveryReport {
  volume: string;
  recordsScanned: number;
  redone: number;
  markedChanged: number;
  discarded: string | null;
  interruptedBackupId: string | null;
  powerLoss: boolean;
}

interface InflightWrite {
  seq: number;
  offset: number;
  length: number;
  done: Promise<void>;
}

interface ActiveBackup {
  id: string;
  rule: HoldRule;
  /** Range policy: blocks the backup has copied. */
  copied: BlockBitmap | null;
  /** Changed-since-parent map frozen at begin (null until the drain finished). */
  taken: BlockBitmap | null;
  /** Ranges applied between flag-set and the map swap; they also belong to the new map. */
  drainMarks: Array<[number, number]> | null;
  startedAt: number;
}

export class LiveVolume implements BlockExport {
  readonly sectorSize = SECTOR;
  readonly preferredBlockSize = 4096;
  readonly readOnly = false;
  private _size: number;
  private extents: MappedExtent[];
  private readonly queue: HoldQueue;
  /** Ack mode device: the writers of held writes, acknowledged when their write is applied. */
  private readonly deviceAckWaiters = new Map<HeldWrite, () => void>();
  /** Where released small writes are gathered from the journal for one device write (RELEASE_RUN_BYTES). */
  private releaseRun: Buffer | null = null;
  private readonly inflight = new Set<InflightWrite>();
  private backup: ActiveBackup | null = null;
  private cbt: BlockBitmap;
  private parentSnapshotId: string | null = null;
  private cbtThroughSeq = 0;
  private journalSync: GroupSync;
  private deviceSyncs = new Map<number, GroupSync>();
  private releasing: Promise<void> | null = null;
  /** Range policy: hold-queue regions the next pick looks at (see newRangePick). */
  private readonly releasePending = new Set<number>();
  /** Range policy: the pick whose candidates the next passes offer, until they are all offered. */
  private rangePick: RangePick | null = null;
  private checkpointing: Promise<void> | null = null;
  private closed = false;
  /** A release that failed on the device; thrown by the end/abort that waits for the release. */
  private lastError: Error | null = null;
  /** Called on every hold-queue change; the engine coalesces before emitting events. */
  onHoldChange: (() => void) | null = null;
  /**
   * Writes (write, write-zeroes, trim) acknowledged since open, and their bytes: two number
   * increments per write, nothing allocated. The engine samples them once a second for the
   * live write rate.
   */
  writesAcked = 0;
  bytesAcked = 0;
  /** Regions read or written lately: what a backup reads through the page cache (the rest uncached). */
  private readonly recent: RecentRegions;
  /** What block status learnt of each cell's content (cell-states.ts); writes update it when submitted. */
  private readonly cells: CellStates;
  /** Per device: the filesystem's allocation map of its file, read into `cells` once (block status). */
  private readonly allocationLoads = new Map<number, Promise<void>>();
  /** Devices whose allocationLoads entry has settled. */
  private readonly allocationLoaded = new Set<number>();

  private constructor(
    private readonly cfg: LiveVolumeConfig,
    readonly journal: VolumeJournal,
  ) {
    this._size = cfg.size;
    this.recent = new RecentRegions(cfg.size, () => cfg.env.monotonic());
    // Superseding held writes needs their data in the journal (ack mode journal); see HoldQueue.
    this.queue = new HoldQueue(cfg.ackMode === 'journal');
    this.extents = [...cfg.extents].sort((a, b) => a.volumeOffset - b.volumeOffset);
    this.cbt = new BlockBitmap(cfg.size);
    this.cells = new CellStates(cfg.size);
    this.journalSync = new GroupSync(() => this.journal.sync());
    // Soft pressure (the journal filling up) only when the checkpoint would free a segment: a
    // backup's oldest held write can pin them all, and a device sync that frees nothing only
    // slows the volume's clients.
    this.journal.onPressure = (hard) => {
      if (hard || this.journal.wouldDrop(this.checkpointThrough())) void this.checkpoint().catch(() => undefined);
    };
    // A journal batch that failed to commit: its held writes were never logged, so they leave the
    // queue again (their writers are rejected with the batch).
    this.journal.onCommitFailed = (first, last) => {
      if (this.queue.dropSeqs(first, last) === 0) return;
      // Reads saw those writes while they were queued (and block status may have learnt from them).
      this.cells.allData();
      // Their writers were rejected with the batch: nobody waits for them to be applied.
      for (const w of this.deviceAckWaiters.keys()) if (!w.queued) this.deviceAckWaiters.delete(w);
      // A write they had superseded is back in the queue, perhaps in a region already copied.
      if (this.backup?.copied) {
        this.markReleasePending(0, this._size);
        this.kickRelease();
      }
      this.onHoldChange?.();
    };
    this.assertExtents();
  }

  get id(): number {
    return this.cfg.id;
  }
  get name(): string {
    return this.cfg.name;
  }
  get description(): string {
    return `Holdfast volume ${this.cfg.name}`;
  }
  get ackMode(): AckMode {
    return this.cfg.ackMode;
  }
  size(): number {
    return this._size;
  }
  get backupId(): string | null {
    return this.backup?.id ?? null;
  }
  get backupPolicy(): HoldPolicy | null {
    return this.backup?.rule.policy ?? null;
  }

  private assertExtents(): void {
    let at = 0;
    for (const e of this.extents) {
      invariant(e.volumeOffset === at && e.length > 0, `extents of ${this.cfg.name} are contiguous from 0`);
      at += e.length;
    }
    invariant(at === this._size, `extents of ${this.cfg.name} sum to its size`);
  }

  // ---------------------------------------------------------------- open + recovery

  /** Opens the volume's journal and runs crash recovery (idempotent). */
  static async open(cfg: LiveVolumeConfig): Promise<{ volume: LiveVolume; report: RecoveryReport }> {
    const env = cfg.env;
    await env.mkdir(cfg.journalDir);
    const cbtPath = `${cfg.journalDir}/cbt.bin`;
    const markerPath = `${cfg.journalDir}/open.json`;
    let state = null as ReturnType<typeof decodeCbtState> | null;
    if (await env.stat(cbtPath)) {
      try {
        state = decodeCbtState(await env.readFile(cbtPath));
      } catch {
        state = null; // damaged map: unknown changes ⇒ next backup full
      }
    }
    let powerLoss = false;
    if (await env.stat(markerPath)) {
      const m = JSON.parse((await env.readFile(markerPath)).toString()) as { bootId: string };
      powerLoss = m.bootId !== cfg.bootId;
    }
    const { journal, records, discarded } = await VolumeJournal.open(cfg.journalDir, env, cfg.journalOptions, (state?.throughSeq ?? 0) + 1);
    const v = new LiveVolume(cfg, journal);
    if (state && state.current.volumeSize === cfg.size) {
      v.cbt = state.current;
      v.parentSnapshotId = state.parentSnapshotId;
      v.cbtThroughSeq = state.throughSeq;
    } else if (state) {
      v.cbt = state.current.resized(cfg.size);
      v.parentSnapshotId = state.parentSnapshotId;
      v.cbtThroughSeq = state.throughSeq;
    }
    let taken = state?.taken ? (state.taken.volumeSize === cfg.size ? state.taken : state.taken.resized(cfg.size)) : null;
    let active = state?.activeBackupId ?? null;
    if (!state) v.parentSnapshotId = null;

    const report: RecoveryReport = {
      volume: cfg.name,
      recordsScanned: records.length,
      redone: 0,
      markedChanged: 0,
      discarded,
      interruptedBackupId: null,
      powerLoss,
    };
    const applied = new Set<number>();
    for (const r of records) if (r.type === RecordType.APPLIED) for (const s of decodeSeqList(r.payload)) applied.add(s);
    const redo: JournalRecord[] = [];
    for (const r of records) {
      if (r.seq <= v.cbtThroughSeq) continue;
      switch (r.type) {
        case RecordType.SUBMIT:
        case RecordType.SUBMIT_ZERO:
        case RecordType.SUBMIT_DATA:
          if (r.offset + r.length <= cfg.size) v.cbt.mark(r.offset, r.length);
          report.markedChanged++;
          if ((r.type === RecordType.SUBMIT_DATA || (r.type === RecordType.SUBMIT_ZERO && r.dataCrc === HELD_ZERO)) && !applied.has(r.seq)) redo.push(r);
          break;
        case RecordType.BACKUP_BEGIN: {
          const info = JSON.parse(r.payload.toString()) as { backupId: string };
          active = info.backupId;
          taken = v.cbt;
          v.cbt = new BlockBitmap(cfg.size);
          break;
        }
        case RecordType.BACKUP_END: {
          const info = JSON.parse(r.payload.toString()) as { backupId: string; snapshotId: string };
          if (active === info.backupId) {
            v.parentSnapshotId = info.snapshotId;
            taken = null;
            active = null;
          }
          break;
        }
        case RecordType.BACKUP_ABORT: {
          const info = JSON.parse(r.payload.toString()) as { backupId: string };
          if (active === info.backupId) {
            if (taken) v.cbt.or(taken);
            taken = null;
            active = null;
          }
          break;
        }
      }
    }
    // Redo journaled-with-data writes that never reached the device, in arrival order.
    for (const r of redo) {
      if (r.offset + r.length > cfg.size) continue;
      if (r.type === RecordType.SUBMIT_DATA) {
        invariant(crc32(r.payload) === r.dataCrc, 'journaled data matches its checksum');
        await v.deviceWrite(r.offset, r.payload);
      } else await v.deviceZero(r.offset, r.length);
      report.redone++;
    }
    await journal.ready();
    if (redo.length > 0) {
      await v.syncDevices(); // the redone bytes are durable before the record that says so
      journal.appendApplied(redo.map((r) => r.seq));
    }
    if (active !== null) {
      // The backup application died with the flag set: fail it, drop the flag, keep its changes.
      report.interruptedBackupId = active;
      if (taken) v.cbt.or(taken);
      journal.appendBackup(RecordType.BACKUP_ABORT, { backupId: active, reason: 'interrupted: Holdfast stopped while the backup ran' });
    }
    if (powerLoss) v.parentSnapshotId = null; // unsynced device writes may lack their records
    await v.checkpoint(true);
    await env.writeFileAtomic(markerPath, JSON.stringify({ bootId: cfg.bootId, pid: process.pid }));
    v.learnHolesSoon();
    return { volume: v, report };
  }

  // ---------------------------------------------------------------- validation

  private checkRange(offset: number, length: number): void {
    this.checkBounds(offset, length);
    if (offset % SECTOR !== 0 || length % SECTOR !== 0)
      throw new HoldfastError('UNALIGNED', `Offset ${offset} and length ${length} must be multiples of ${SECTOR} bytes.`, { offset, length });
  }

  /** Inside the volume (block status takes any range: it reads no less than the bytes asked for). */
  private checkBounds(offset: number, length: number): void {
    if (this.closed) throw new HoldfastError('NOT_FOUND', `Volume ${this.name} is closed.`);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0)
      throw new HoldfastError('OUT_OF_RANGE', `Offset ${offset} and length ${length} must be non-negative integers.`);
    if (offset + length > this._size)
      throw new HoldfastError('OUT_OF_RANGE', `Range ${offset}+${length} is past the end of volume ${this.name} (${this._size} bytes).`, {
        offset,
        length,
        size: this._size,
      });
  }

  // ---------------------------------------------------------------- device I/O through extents

  private *pieces(offset: number, length: number): IterableIterator<{ file: BlockFile; pos: number; at: number; len: number; deviceId: number }> {
    let at = 0;
    for (let i = this.extentIndexAt(offset); i < this.extents.length && at < length; i++) {
      const e = this.extents[i]!;
      const start = offset + at;
      const within = start - e.volumeOffset;
      invariant(within >= 0 && within < e.length, 'extent lookup covers the offset');
      const len = Math.min(length - at, e.length - within);
      yield { file: this.cfg.fileFor(e.deviceId), pos: e.deviceOffset + within, at, len, deviceId: e.deviceId };
      at += len;
    }
  }

  /**
   * Small writes land in the page cache in a few microseconds; a thread-pool round trip costs
   * ten times that (and is what limits queue-depth-1 writers). data.length ≤ SYNC_IO_MAX.
   */
  private deviceWriteSync(offset: number, data: Buffer): void {
    this.recent.touch(offset, data.length);
    const e = this.extentHolding(offset, data.length);
    if (e) {
      // One extent (the common case): no iterator, no piece objects.
      this.cfg.fileFor(e.deviceId).writeSync(data, e.deviceOffset + (offset - e.volumeOffset));
      return;
    }
    for (const p of this.pieces(offset, data.length)) p.file.writeSync(data.subarray(p.at, p.at + p.len), p.pos);
  }

  /**
   * deviceWriteSync of a held write's bytes straight from the journal file (HeldWrite.copyInto):
   * false, having written nothing, where they are in memory, the write spans extents, or the
   * files cannot (the caller writes them from a buffer).
   */
  private deviceCopySync(w: HeldWrite): boolean {
    const e = this.extentHolding(w.offset, w.length);
    if (!e || !w.copyInto(this.cfg.fileFor(e.deviceId), e.deviceOffset + (w.offset - e.volumeOffset))) return false;
    this.recent.touch(w.offset, w.length);
    return true;
  }

  /** The extent holding all of [offset, offset + length), if one does. */
  private extentHolding(offset: number, length: number): MappedExtent | undefined {
    const e = this.extentAt(offset);
    return e && offset + length <= e.volumeOffset + e.length ? e : undefined;
  }

  private extentAt(offset: number): MappedExtent | undefined {
    return this.extents[this.extentIndexAt(offset)];
  }

  /** Index of the extent holding offset (binary search; extents are sorted by volume offset). */
  private extentIndexAt(offset: number): number {
    let lo = 0;
    let hi = this.extents.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.extents[mid]!.volumeOffset <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  private async deviceWrite(offset: number, data: Buffer): Promise<void> {
    if (data.length <= SYNC_IO_MAX) {
      this.deviceWriteSync(offset, data);
      return;
    }
    this.recent.touch(offset, data.length);
    const ps = [...this.pieces(offset, data.length)];
    if (ps.length === 1) return writePieces(ps[0]!.file, data, ps[0]!.pos);
    await Promise.all(ps.map((p) => writePieces(p.file, data.subarray(p.at, p.at + p.len), p.pos)));
  }

  /**
   * Makes [offset, offset + length) read as zeroes on the device: by fallocate where the device
   * file allows (`punch` gives the space back to the file system, as `qemu-nbd --discard=unmap`
   * and nbdkit's file plugin do; `allocate` keeps it allocated, for NO_HOLE), else by writing
   * zeroes (block devices, file systems without the mode, no addon).
   */
  private async deviceZero(offset: number, length: number, mode: ZeroMode = 'punch'): Promise<void> {
    this.recent.touch(offset, length);
    for (const p of this.pieces(offset, length)) {
      if (await p.file.zeroRange(p.pos, p.len, mode)) continue;
      for (let done = 0; done < p.len; done += ZERO_CHUNK.length) {
        const n = Math.min(ZERO_CHUNK.length, p.len - done);
        await writePieces(p.file, n === ZERO_CHUNK.length ? ZERO_CHUNK : ZERO_CHUNK.subarray(0, n), p.pos + done);
      }
    }
  }

  private async deviceRead(offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    await this.deviceReadInto(offset, buf);
    return buf;
  }

  /**
   * Reads buf.length bytes at offset into buf (the caller's memory: no allocation here).
   * `uncached`: a bulk read nobody reads again soon (a backup's), kept out of the page cache
   * where the files allow (BlockFile.readUncached).
   */
  private async deviceReadInto(offset: number, buf: Buffer, uncached = false): Promise<void> {
    const length = buf.length;
    if (!uncached) this.recent.touch(offset, length);
    if (length <= SYNC_IO_MAX && !uncached) {
      for (const p of this.pieces(offset, length)) {
        const part = buf.subarray(p.at, p.at + p.len);
        const n = p.file.readSync(part, p.pos);
        if (n < part.length) part.fill(0, n);
      }
      return;
    }
    const reads: Promise<void>[] = [];
    for (const p of this.pieces(offset, length)) {
      const part = buf.subarray(p.at, p.at + p.len);
      reads.push(
        (uncached ? p.file.readUncached(part, p.pos) : p.file.read(part, p.pos)).then((n) => {
          if (n < part.length) part.fill(0, n); // sparse image shorter than the extent reads as zeroes
        }),
      );
    }
    await Promise.all(reads);
  }

  private deviceSync(deviceId: number): GroupSync {
    let s = this.deviceSyncs.get(deviceId);
    if (!s) {
      s = new GroupSync(() => this.cfg.fileFor(deviceId).datasync());
      this.deviceSyncs.set(deviceId, s);
    }
    return s;
  }

  private async syncDevices(): Promise<void> {
    const ids = new Set(this.extents.map((e) => e.deviceId));
    await Promise.all([...ids].map((id) => this.deviceSync(id).sync()));
  }

  // ---------------------------------------------------------------- the write path

  async write(offset: number, data: Buffer, opts?: WriteOptions): Promise<void> {
    this.checkRange(offset, data.length);
    if (data.length === 0) return;
    await this.submit(offset, data.length, data, opts?.fua === true, opts?.stable === true, false);
    this.writesAcked++;
    this.bytesAcked += data.length;
  }

  /** `noHole`: the range stays allocated (NBD_CMD_FLAG_NO_HOLE); otherwise it may become a hole. */
  async writeZeroes(offset: number, length: number, opts?: { fua?: boolean; noHole?: boolean }): Promise<void> {
    this.checkRange(offset, length);
    if (length === 0) return;
    await this.submit(offset, length, null, opts?.fua === true, false, opts?.noHole === true);
    this.writesAcked++;
    this.bytesAcked += length;
  }

  /** Trim reads back as zeroes afterwards (safe for every client and for backups). */
  trim(offset: number, length: number): Promise<void> {
    return this.writeZeroes(offset, length);
  }

  private submit(offset: number, length: number, data: Buffer | null, fua: boolean, stable: boolean, noHole: boolean): Promise<void> {
    const recordBytes = HEADER_SIZE + (data ? length : 0);
    if (this.journal.needsSpace(recordBytes) || this.journal.waitingForSpace > 0 || this.journal.prepareAppend() !== null)
      return this.submitAfterWait(offset, length, data, fua, stable, noHole, recordBytes);
    return this.submitNow(offset, length, data, fua, stable, noHole);
  }

  private async submitAfterWait(offset: number, length: number, data: Buffer | null, fua: boolean, stable: boolean, noHole: boolean, recordBytes: number): Promise<void> {
    if (this.journal.needsSpace(recordBytes) || this.journal.waitingForSpace > 0) await this.journal.waitForSpace(recordBytes);
    const prep = this.journal.prepareAppend();
    if (prep) await prep;
    return this.submitNow(offset, length, data, fua, stable, noHole);
  }

  /**
   * The journal batch the records staged so far belong to, with OS errors mapped once per
   * batch (every write of an event-loop turn shares one commit and one promise).
   */
  private logged(): Promise<void> {
    const raw = this.journal.committed();
    if (raw !== this.loggedRaw) {
      this.loggedRaw = raw;
      this.loggedMapped = raw.catch((e: unknown) => {
        throw ioError(e, `Logging writes to volume ${this.name}`);
      });
      this.loggedMapped.catch(() => undefined);
      // Entries superseded by writes of this batch can be let go once it is in the file.
      raw.then(() => this.queue.confirm(this.journal.committedSeq), () => undefined);
    }
    return this.loggedMapped;
  }

  private loggedRaw: Promise<void> | null = null;
  private loggedMapped: Promise<void> = Promise.resolve();

  /**
   * Decides and stages the record synchronously (the decision and the record agree, and seqs
   * follow arrival order); the record reaches the journal file with the rest of this turn's
   * batch, before the write is forwarded to the device or acknowledged. `stable`: a write's
   * buffer is not reused after the acknowledgement; `noHole`: a write-zeroes keeps its range
   * allocated (a held one, released later, may become a hole: reads see zeroes either way).
   */
  private submitNow(offset: number, length: number, data: Buffer | null, fua: boolean, stable: boolean, noHole: boolean): Promise<void> {
    if (this.closed) return Promise.reject(new HoldfastError('NOT_FOUND', `Volume ${this.name} was closed while the write waited.`));
    // Write-zeroes over cells known to read as zeroes already need not touch the device there:
    // a trim of a whole new volume (mkfs discards first) or an import's zero extents keep a sparse
    // image sparse. Taken before the cells change.
    const alreadyZero = data ? null : this.cells.zeroRuns(offset, length);
    if (data) this.cells.written(offset, length);
    else this.cells.zeroed(offset, length);
    const b = this.backup;
    const hold = (b !== null && b.rule.mustHold(offset, length)) || this.queue.overlaps(offset, length);
    if (hold) {
      const early = this.cfg.ackMode === 'journal';
      // The caller may reuse a buffer that is not stable once its write is acknowledged; the
      // journal writes it (in ack mode journal) before that, and the entry keeps it in memory
      // only until then, so only an unstable one is copied.
      const payload = data && !stable ? Buffer.from(data) : data;
      let seq: number;
      let entry: HeldWrite;
      try {
        if (payload && early) {
          seq = this.journal.stageData(offset, payload, crc32(payload));
          const end = this.journal.stagedEnd;
          entry = new HeldWrite(seq, offset, length, payload, this.cfg.env.monotonic(), this.journal.stagedFile, end - length);
        } else {
          seq = payload ? this.journal.stageIntent(offset, length) : this.journal.stageZero(offset, length, early ? HELD_ZERO : 0);
          entry = new HeldWrite(seq, offset, length, payload, this.cfg.env.monotonic());
        }
      } catch (e) {
        return Promise.reject(ioError(e, `Logging a held write to volume ${this.name}`));
      }
      // If the batch fails to commit, onCommitFailed takes the entry out of the queue again.
      this.queue.push(entry);
      this.onHoldChange?.();
      let done = this.logged();
      if (!early) {
        const applied = new Promise<void>((res) => this.deviceAckWaiters.set(entry, res));
        done = done.then(() => applied);
      }
      return fua ? done.then(() => this.flush()) : done;
    }

    let seq: number;
    try {
      // Intent records carry no data, so no data checksum: recovery can only mark them changed,
      // and checksumming every forwarded write would cost ~1 ms per MiB on the hot path.
      seq = data ? this.journal.stageIntent(offset, length) : this.journal.stageZero(offset, length, 0);
    } catch (e) {
      return Promise.reject(ioError(e, `Logging a write to volume ${this.name}`));
    }
    const applied = this.applyOrdered(seq, offset, length, data, this.logged(), alreadyZero, noHole ? 'allocate' : 'punch');
    return fua ? applied.then(() => this.flush()) : applied;
  }

  /**
   * Forwards one write to the device once its record is in the journal file and every
   * overlapping in-flight write finished, then marks it changed. It joins `inflight` at once,
   * so later overlapping writes (and a backup's drain) wait for it.
   */
  private async applyOrdered(seq: number, offset: number, length: number, data: Buffer | null, logged: Promise<void>, alreadyZero: ByteRange[] | null, zeroMode: ZeroMode): Promise<void> {
    let before: Promise<void>[] | null = null;
    if (this.inflight.size > 0) {
      const end = offset + length;
      for (const w of this.inflight) if (w.offset < end && offset < w.offset + w.length) (before ??= []).push(w.done);
    }
    let finish!: () => void;
    const op: InflightWrite = { seq, offset, length, done: new Promise<void>((r) => (finish = r)) };
    this.inflight.add(op);
    try {
      await logged;
      if (before) await Promise.all(before);
      if (data) {
        if (data.length <= SYNC_IO_MAX) this.deviceWriteSync(offset, data);
        else await this.deviceWrite(offset, data);
      } else {
        // Only where the volume does not read as zeroes already (sorted runs inside the range).
        let pos = offset;
        for (const z of alreadyZero ?? []) {
          if (z.offset > pos) await this.deviceZero(pos, z.offset - pos, zeroMode);
          pos = z.offset + z.length;
        }
        if (pos < offset + length) await this.deviceZero(pos, offset + length - pos, zeroMode);
      }
      this.markChanged(offset, length);
    } catch (e) {
      // It may have landed in part (write-zeroes over data): data, as far as block status knows.
      this.cells.written(offset, length);
      throw ioError(e, `Writing ${length} bytes at ${offset} to volume ${this.name}`);
    } finally {
      this.inflight.delete(op);
      finish();
    }
  }

  private markChanged(offset: number, length: number): void {
    this.cbt.mark(offset, length);
    const b = this.backup;
    if (b && b.drainMarks) b.drainMarks.push([offset, length]);
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    await this.readInto(offset, buf);
    return buf;
  }

  /** read() into the caller's memory (the NBD server reuses its reply buffers). */
  async readInto(offset: number, target: Buffer): Promise<void> {
    const length = target.length;
    this.checkRange(offset, length);
    // Reads see held writes (read-your-writes). Taken before the device read: a release may
    // apply an entry and drop it from the queue while the read is in flight.
    try {
      await this.readVisible(offset, target);
    } catch (e) {
      throw ioError(e, `Reading ${length} bytes at ${offset} from volume ${this.name}`);
    }
  }

  /** The device's bytes with held writes laid over them, as readers see the volume. */
  private async readVisible(offset: number, target: Buffer, uncached = false): Promise<void> {
    const held = this.queue.overlayOf(offset, target.length);
    await this.deviceReadInto(offset, target, uncached);
    if (held) applyOverlay(held, offset, target);
  }

  /** Makes every acknowledged write durable: journal first (held data, intents), then devices. */
  async flush(): Promise<void> {
    try {
      await this.journalSync.sync();
      await this.syncDevices();
    } catch (e) {
      throw ioError(e, `Flushing volume ${this.name}`);
    }
  }

  /**
   * Which parts of [offset, offset + length) read as zeroes (zero-scan.ts). Ranges on block
   * devices and fully allocated files are data, unread. On a file with holes, `cells` is first
   * filled from the filesystem's allocation map (holes and unwritten extents zero, the rest
   * data), and the cells it does not know (written with zeroes since) are read, with held writes
   * laid over them as reads see them.
   */
  async blockStatus(offset: number, length: number, maxExtents = Number.MAX_SAFE_INTEGER): Promise<AllocationExtent[]> {
    this.checkBounds(offset, length);
    const holey = new Set<number>();
    let plain = false; // some of the range is on a device file without holes
    try {
      for (const p of this.pieces(offset, length)) {
        if (holey.has(p.deviceId)) continue;
        if (hasHoles(p.file)) holey.add(p.deviceId);
        else plain = true;
      }
      // Once a device's map is in (the usual case), no wait: a walk over a volume (qemu-img map
      // asks for one extent at a time) costs microseconds per request.
      let waits: Promise<void>[] | null = null;
      for (const id of holey) if (!this.allocationLoaded.has(id)) (waits ??= []).push(this.loadAllocation(id));
      if (waits) await inTime(Promise.all(waits), null);
      return await scanBlockStatus(
        {
          cells: this.cells,
          // Without walking the extents where the answer is the same everywhere (one device, or all alike).
          onHoleyFiles:
            holey.size === 0
              ? () => false
              : !plain
                ? () => true
                : (pos, len) => {
                    for (const p of this.pieces(pos, len)) if (holey.has(p.deviceId)) return true;
                    return false;
                  },
          cachedLately: (pos, len) => this.recent.recent(pos, len, CACHED_GUESS_MS),
          readVisible: (pos, buf, uncached) => this.readVisible(pos, buf, uncached),
        },
        offset,
        length,
        maxExtents,
      );
    } catch (e) {
      throw ioError(e, `Reading the block status of ${length} bytes at ${offset} of volume ${this.name}`);
    }
  }

  /** Whether all of [offset, offset + length) is known to read as zeroes (no I/O). */
  readsZero(offset: number, length: number): boolean {
    return this.cells.allZero(offset, length);
  }

  /** Resolves once the device files' allocation maps asked for at open are in `cells` (at most ALLOCATION_MAP_WAIT_MS). */
  async holesLearnt(): Promise<void> {
    await inTime(Promise.all(this.allocationLoads.values()), null);
  }

  /** Cells known zero in [offset, offset + length) (reads send them as holes). */
  knownZeroes(offset: number, length: number): ByteRange[] {
    if (this.closed) return []; // the read itself reports the closed volume
    return this.cells.zeroRuns(offset, length);
  }

  /**
   * The cells that lie in holes (or unwritten extents) of the volume's device files now, from
   * fresh allocation maps (not what `cells` learnt: that is the visible content, held writes
   * included); null when no file has holes or no map is to be had in time. Called by a backup
   * after begin, before anything is copied, this is where the point-in-time image is zero: the
   * hold rule keeps every write from uncopied blocks of the device, and nothing ever turns
   * allocated space back into a hole.
   */
  async deviceHoles(): Promise<CellStates | null> {
    const holes = new CellStates(this._size);
    let any = false;
    for (const id of new Set(this.extents.map((e) => e.deviceId))) {
      const file = this.cfg.fileFor(id);
      if (!hasHoles(file) || !file.allocation) continue;
      const ranges = await inTime(file.allocation().catch(() => null), null);
      if (!ranges) continue;
      holes.learnFileMap(this.extents.filter((e) => e.deviceId === id), ranges);
      any = true;
    }
    return any ? holes : null;
  }

  /**
   * Reads the allocation maps of the volume's device files with holes in the background (after
   * recovery, so redone writes are in them; again after the volume grows), so a client's first
   * block status or big read already knows the holes.
   */
  private learnHolesSoon(): void {
    for (const id of new Set(this.extents.map((e) => e.deviceId))) if (hasHoles(this.cfg.fileFor(id))) void this.loadAllocation(id);
  }

  /**
   * Fills `cells` from the allocation map of a device's file, once per device (and again after
   * the volume grows). Where the map is not to be had, block status reads instead.
   */
  private loadAllocation(deviceId: number): Promise<void> {
    let p = this.allocationLoads.get(deviceId);
    if (!p) {
      const file = this.cfg.fileFor(deviceId);
      const loading: Promise<void> = (file.allocation?.() ?? Promise.resolve(null))
        .then(
          (ranges) => {
            if (ranges && !this.closed) this.cells.learnFileMap(this.extents.filter((e) => e.deviceId === deviceId), ranges);
          },
          () => undefined,
        )
        .then(() => {
          if (this.allocationLoads.get(deviceId) === loading) this.allocationLoaded.add(deviceId);
        });
      p = loading;
      this.allocationLoads.set(deviceId, p);
    }
    return p;
  }

  // ---------------------------------------------------------------- backup messages (claims 3–6, 11)

  /**
   * Sets the backup flag (claims 3–4): from now on the rule decides which writes wait.
   * Resolves once every write issued before the flag reached the device, so device reads
   * return the point-in-time image.
   */
  async beginBackup(id: string, rule: HoldRule, copied: BlockBitmap | null): Promise<void> {
    if (this.backup) throw new HoldfastError('BACKUP_RUNNING', `Volume ${this.name} is already being backed up (backup ${this.backup.id}).`);
    // Writes still held after the last backup (its release failed on the device) were
    // acknowledged before this point in time, but the backup reads the device: they go there
    // first, or the backup does not begin.
    if (this.queue.count > 0 || this.releasing) {
      try {
        await this.releaseAll();
      } catch (e) {
        const err = ioError(e, `Releasing held writes to volume ${this.name}`);
        throw new HoldfastError(err.code, `Backup of volume ${this.name} cannot begin: ${this.queue.count} writes held since the last backup could not be written to its device. ${err.message}`, err.details);
      }
      if (this.backup) throw new HoldfastError('BACKUP_RUNNING', `Volume ${this.name} is already being backed up (backup ${(this.backup as ActiveBackup).id}).`);
    }
    const prep = this.journal.prepareAppend();
    if (prep) await prep;
    if (this.backup) throw new HoldfastError('BACKUP_RUNNING', `Volume ${this.name} is already being backed up (backup ${(this.backup as ActiveBackup).id}).`);
    this.journal.appendBackup(RecordType.BACKUP_BEGIN, { backupId: id, policy: rule.policy });
    const b: ActiveBackup = { id, rule, copied, taken: null, drainMarks: [], startedAt: this.cfg.env.monotonic() };
    this.backup = b;
    this.releasePending.clear();
    this.rangePick = null;
    this.queue.queuedTotal = 0;
    this.queue.releasedTotal = 0;
    const before = [...this.inflight].map((w) => w.done);
    await Promise.all(before);
    // Swap the changed-block map: what changed up to the point in time goes with this backup.
    b.taken = this.cbt;
    this.cbt = new BlockBitmap(this._size);
    for (const [o, l] of b.drainMarks!) this.cbt.mark(o, l);
    b.drainMarks = null;
    this.onHoldChange?.();
  }

  /** The volume as of begin() for ranges the backup has not reported copied. */
  readPointInTime(offset: number, length: number): Promise<Buffer> {
    this.checkRange(offset, length);
    invariant(this.backup !== null, 'point-in-time reads need a running backup');
    return this.deviceRead(offset, length);
  }

  /** readPointInTime into the caller's buffer (target.length bytes at offset). */
  readPointInTimeInto(offset: number, target: Buffer): Promise<void> {
    this.checkRange(offset, target.length);
    invariant(this.backup !== null, 'point-in-time reads need a running backup');
    return this.deviceReadInto(offset, target, !this.recent.recent(offset, target.length, CACHED_GUESS_MS));
  }

  /**
   * Where [offset, offset + length) of the point-in-time image lives on the devices, for a reader
   * on another thread; null if a device file has no descriptor to share (fault injection). Good
   * for the same ranges as readPointInTime (held writes keep those device bytes as of begin()).
   */
  locatePointInTime(offset: number, length: number): { fd: number; uncachedFd: number | null; position: number; length: number }[] | null {
    this.checkRange(offset, length);
    invariant(this.backup !== null, 'point-in-time reads need a running backup');
    const out: { fd: number; uncachedFd: number | null; position: number; length: number }[] = [];
    for (const p of this.pieces(offset, length)) {
      if (p.file.fd === undefined) return null;
      const uncachedFd = this.recent.recent(offset + p.at, p.len, CACHED_GUESS_MS) ? null : (p.file.uncachedFd?.() ?? null);
      out.push({ fd: p.file.fd, uncachedFd, position: p.pos, length: p.len });
    }
    return out;
  }

  /** Changed-since-parent map frozen at begin(), and the snapshot it is relative to. */
  backupChangedMap(): { map: BlockBitmap; parentSnapshotId: string | null } | null {
    const b = this.backup;
    if (!b || !b.taken) return null;
    return { map: b.taken, parentSnapshotId: this.parentSnapshotId };
  }

  /** Range policy: [offset, offset+length) is copied; release held writes that no longer need to wait. */
  rangeCopied(offset: number, length: number): void {
    const b = this.backup;
    if (!b || !b.copied) return;
    b.copied.markWhole(offset, length);
    this.markReleasePending(offset, length);
    this.kickRelease();
  }

  /** Ranges of held writes whose blocks are not yet copied (the backup copies these first). */
  urgentRanges(limit = 64): Array<{ offset: number; length: number }> {
    const b = this.backup;
    if (!b || !b.copied) return [];
    const out: Array<{ offset: number; length: number }> = [];
    for (let w = this.queue.first; w && out.length < limit; w = w.next) {
      if (!b.copied.allIn(w.offset, w.length)) out.push({ offset: w.offset, length: w.length });
    }
    return out;
  }

  /** Completion message (claim 6): journal BACKUP_END, clear the flag, release every held write in arrival order. */
  async endBackup(id: string, snapshotId: string): Promise<void> {
    this.requireBackup(id);
    const prep = this.journal.prepareAppend();
    if (prep) await prep;
    this.journal.appendBackup(RecordType.BACKUP_END, { backupId: id, snapshotId });
    this.parentSnapshotId = snapshotId;
    this.backup = null;
    this.releasePending.clear();
    this.rangePick = null;
    await this.releaseAll();
  }

  /** Failure or cancel: the flag is dropped, held writes are released, and the changes stay marked for the next backup. */
  async abortBackup(id: string, reason: string): Promise<void> {
    const b = this.requireBackup(id);
    const prep = this.journal.prepareAppend();
    if (prep) await prep;
    this.journal.appendBackup(RecordType.BACKUP_ABORT, { backupId: id, reason });
    if (b.taken) this.cbt.or(b.taken);
    this.backup = null;
    this.releasePending.clear();
    this.rangePick = null;
    await this.releaseAll();
  }

  private requireBackup(id: string): ActiveBackup {
    const b = this.backup;
    if (!b || b.id !== id) throw new HoldfastError('BACKUP_NOT_RUNNING', `Backup ${id} is not running on volume ${this.name}.`);
    return b;
  }

  private async releaseAll(): Promise<void> {
    this.kickRelease();
    while (this.releasing) await this.releasing;
    if (this.lastError) {
      const e = this.lastError;
      this.lastError = null;
      throw e;
    }
    this.onHoldChange?.();
    await this.checkpoint().catch(() => undefined);
  }

  private kickRelease(): void {
    if (this.releasing || this.queue.count === 0) return;
    let failed = false;
    this.releasing = this.releaseLoop()
      .catch((e) => {
        // The entries stay queued (and journaled): reads still see them, later overlapping
        // writes wait behind them, and recovery redoes them on the next open.
        failed = true;
        this.lastError = ioError(e, `Releasing held writes to volume ${this.name}`);
      })
      .finally(() => {
        this.releasing = null;
        // Writes that arrived (and were held by overlap) during the loop get their turn.
        if (!failed && this.releaseDue()) this.kickRelease();
      });
  }

  /** Whether a release pass could find work now. */
  private releaseDue(): boolean {
    if (this.queue.count === 0) return false;
    if (this.backup?.copied) return this.rangePick !== null || this.releasePending.size > 0;
    return this.releasable(this.queue.first!, new BlockSet(), this.queue.alone(this.queue.first!));
  }

  /**
   * A held entry may go to the device when the flag is clear or its blocks are copied, and no
   * earlier held write that stays overlaps it (`blocked`; only consulted when another queued
   * entry shares a block with it — `alone` says none does).
   */
  private releasable(w: HeldWrite, blocked: BlockSet, alone: boolean): boolean {
    const b = this.backup;
    if (b) {
      if (!b.copied || !b.copied.allIn(w.offset, w.length)) return false;
    }
    return alone || !blocked.overlaps(w.offset, w.length);
  }

  /**
   * Claim 8: released in arrival order (among writes that share a block; writes that do not
   * overlap are independent). Each pass picks a batch of mutually non-overlapping releasable
   * entries — walking the whole list once the flag is clear, only the entries of regions that
   * may have become releasable while a range-policy backup runs — and applies it; one APPLIED
   * record per batch is appended before the entries leave the queue (so later overlapping
   * writes, which wait on the queue, reach the device only after it).
   */
  private async releaseLoop(): Promise<void> {
    // Small released writes are synchronous copies (writeBatch): the event loop gets a turn
    // before every one (or run of adjacent ones) but the first, so a client's request that
    // arrives meanwhile waits for at most one, not a slice of them (16 separate writes per turn
    // cost a queue-depth-1 writer's p99 about 100 µs more during range backups). Every other
    // step that costs (collecting a pick, offering its share, sorting a batch) ends its turn as
    // well, and the loop starts in a turn of its own: it is kicked from where a backup marks a
    // chunk copied, and collect + offer + the first write in that same turn held the engine
    // thread 0.3-1 ms per chunk (bench/results/nbd-latency-session36.txt).
    let wroteSync = true;
    for (;;) {
      if (wroteSync) wroteSync = await nextTurn();
      // Every queued entry's record is in the file before any of them reaches the device.
      this.journal.commit();
      const copied = this.backup?.copied ?? null;
      let picked: ReleaseBatch;
      if (copied) {
        let pick = this.rangePick;
        if (!pick) {
          pick = this.newRangePick();
          if (!pick) return;
          wroteSync = await nextTurn();
          if (this.rangePick !== pick) continue; // the backup ended meanwhile: look again
          this.journal.commit();
        }
        picked = pick.walk;
        picked.nextPass();
        // The batch fills over as many turns as its walk needs (one share per turn).
        while (this.offerFromPick(pick) && !picked.full) {
          await nextTurn();
          if (this.rangePick !== pick) break; // the backup ended meanwhile: apply what was taken
          this.journal.commit();
        }
        wroteSync = true; // the offers took this turn
        if (picked.batch.length === 0) continue; // the pick's next candidates, a new pick, or done
      } else {
        picked = this.pickInArrivalOrder();
        if (picked.batch.length === 0) return;
      }
      const { batch, writes, inBatch } = picked;
      const waits: Promise<void>[] = [];
      if (writes.length > 0) for (const w of this.inflight) if (batchOverlaps(writes, inBatch, w.offset, w.length)) waits.push(w.done);
      if (waits.length) await Promise.all(waits);
      // The entries stay queued (reads see them, overlapping writes wait) until the batch's
      // APPLIED record is staged.
      wroteSync = await this.writeBatch(writes, wroteSync);
      // The APPLIED record tells recovery not to redo these writes from the journal's DATA
      // records. It may reach the disk at any time once staged (the next FLUSH syncs the journal,
      // the kernel writes dirty journal pages back), so where a FLUSH (or FUA) has made one of
      // them durable in the journal (ack mode journal), the device is synced first: otherwise a
      // power loss can keep the record, lose the device's bytes, and lose a write promised
      // durable. Writes not flushed yet carry no such promise until the next FLUSH completes,
      // and that one syncs the device too.
      if (this.cfg.ackMode === 'journal' && batch.some((w) => w.seq <= this.journal.durableSeq)) await this.syncDevices();
      const prep = this.journal.prepareAppend();
      if (prep) await prep;
      // Staged, not written at once: it reaches the file with (or before) the record of any
      // later write that overlaps these entries, and that write goes to the device only after
      // its own record is in the file. A crash that loses it only redoes these writes again.
      this.journal.stageApplied(batch.map((w) => w.seq));
      wroteSync = await this.retire(batch, wroteSync);
      this.onHoldChange?.();
    }
  }

  /**
   * Takes a batch whose APPLIED record is staged out of the queue, in arrival order, at most
   * RETIRE_PER_TURN entries per event-loop turn (after a turn if `wroteSync`, as writeBatch).
   * Until an entry is taken out it stays what any queued entry is: reads overlay its bytes (the
   * same the device now has) and a write that overlaps it is held behind it, to be released
   * by a later pass. No other pass runs meanwhile (this is the release loop), so no entry is
   * written twice. Returns true (it ends with synchronous work).
   */
  private ackApplied(w: HeldWrite): void {
    const ack = this.deviceAckWaiters.get(w);
    if (!ack) return;
    this.deviceAckWaiters.delete(w);
    ack();
  }

  private async retire(batch: HeldWrite[], wroteSync: boolean): Promise<boolean> {
    for (let i = 0; i < batch.length; ) {
      if (wroteSync) await nextTurn();
      const end = Math.min(batch.length, i + RETIRE_PER_TURN);
      const ranged = this.backup?.copied != null;
      for (; i < end; i++) {
        const w = batch[i]!;
        this.queue.remove(w);
        this.cbt.mark(w.offset, w.length);
        if (this.deviceAckWaiters.size > 0) this.ackApplied(w);
        // A queued write that shares a block with this one may have waited for it: look again.
        if (ranged && !w.superseded && this.queue.overlaps(w.offset, w.length)) this.markReleasePending(w.offset, w.length);
      }
      wroteSync = true;
    }
    return true;
  }

  /** Regions whose entries the next range-policy release pass looks at. */
  private markReleasePending(offset: number, length: number): void {
    for (const r of this.queue.regionsWithEntries(offset, length)) this.releasePending.add(r);
  }

  /**
   * Flag clear (or a policy without a copied map): one walk over the whole list in arrival
   * order. Block sets keep the walk linear in the queue length (pairwise range checks were
   * quadratic: thousands of held writes blocked the thread for tens of milliseconds).
   */
  private pickInArrivalOrder(): ReleaseBatch {
    const b = new ReleaseBatch(this.queue, (w, blocked, alone) => this.releasable(w, blocked, alone));
    for (let w = this.queue.first; w && !b.full; w = w.next) {
      if (b.offer(w) === 'behind-batch') break; // keep arrival order among overlapping writes: next pass
    }
    return b;
  }

  /**
   * Range policy while the backup runs: only entries in regions where something changed since
   * the last pick (blocks copied, or a write they waited for was applied) can have become
   * releasable, so a pick costs those regions' entries, not the whole queue (a walk over 20k
   * held writes per copied chunk stalled clients' writes by a millisecond each time).
   * The candidate set is closed under overlap — every region of a candidate that shares a
   * block with another entry is included — so every queued write overlapping a candidate is a
   * candidate too, and walking the candidates in arrival order decides exactly as a walk over
   * the whole list would.
   *
   * A pick is collected once and offered over as many passes as it takes (a 4 MiB chunk copied
   * late in a queue-depth-16 backup releases ~5000 writes: collecting them again for each pass
   * of 256 took most of the release's time). Writes that arrive meanwhile come after every
   * candidate in arrival order, so they cannot change a candidate's decision; one that
   * supersedes a candidate not yet offered turns it into a no-op, as in any pass.
   */
  private newRangePick(): RangePick | null {
    if (this.releasePending.size === 0) return null;
    const walk = new ReleaseBatch(this.queue, (w, blocked, alone) => this.releasable(w, blocked, alone), RANGE_BATCH_COUNT, RANGE_BATCH_BYTES);
    return (this.rangePick = { cands: this.collectPending(), at: 0, walk });
  }

  /**
   * Offers the pick's next candidates (one turn's share, or until the batch is full) to its
   * batch. Returns whether candidates are left; the pick is dropped once none are.
   */
  private offerFromPick(pick: RangePick): boolean {
    const { cands, walk } = pick;
    const stop = Math.min(cands.length, pick.at + PICK_OFFERS_PER_TURN);
    while (pick.at < stop && !walk.full) {
      const w = cands[pick.at++]!;
      if (!w.queued) continue;
      // Behind an entry taken by this pick: look again in the next pick. Behind one that
      // stays: looked at again when that one is applied (see releaseLoop).
      if (walk.offer(w) === 'behind-batch') this.markReleasePending(w.offset, w.length);
    }
    if (pick.at < cands.length) return true;
    if (this.rangePick === pick) this.rangePick = null;
    return false;
  }

  /**
   * Writes a batch's entries to the device. They share no block with each other (the batch's
   * rule), so the order of their device writes changes nothing (they still leave the queue, and
   * are acknowledged, in arrival order; a crash before the batch's APPLIED record redoes them
   * all). Sorted by offset, adjacent small ones are gathered into one device write: a released
   * chunk's writes are dense (~1000 random 4 KiB writes in its 1024 blocks), and one write each
   * cost ~10 µs on the 2-vCPU bench VM, in runs of up to 16 ~1.4 µs per write.
   * The event loop gets a turn before each small write but the first (`wroteSync`: whether the
   * last thing done was one), so a client's request waits for at most one of them. Returns
   * whether it ended with one.
   */
  private async writeBatch(writes: HeldWrite[], wroteSync: boolean): Promise<boolean> {
    const big: Promise<void>[] = [];
    const smallWrites: HeldWrite[] = [];
    for (const w of writes) {
      if (w.hasData && w.length <= SYNC_IO_MAX) smallWrites.push(w);
      else if (w.hasData) big.push(w.load().then((data) => this.deviceWrite(w.offset, data!)));
      else big.push(this.deviceZero(w.offset, w.length));
    }
    const small = inOffsetOrder(smallWrites);
    for (let i = 0; i < small.length; ) {
      const first = small[i]!;
      let end = first.offset + first.length;
      let j = i + 1;
      while (j < small.length && small[j]!.offset === end && end + small[j]!.length - first.offset <= RELEASE_RUN_BYTES) end += small[j++]!.length;
      if (wroteSync) wroteSync = await nextTurn();
      wroteSync = true;
      // A write alone (most held writes of a random writer): from the journal's page cache to
      // the image's in one copy_file_range where it can, instead of a pread and a pwrite.
      if (j === i + 1 && this.deviceCopySync(first)) {
        i = j;
        continue;
      }
      // Gathered into one buffer: from the journal (where a held write's bytes are once its
      // record is committed), or from memory.
      const run = (this.releaseRun ??= Buffer.allocUnsafeSlow(RELEASE_RUN_BYTES)).subarray(0, end - first.offset);
      for (let k = i; k < j; k++) small[k]!.copyTo(run, small[k]!.offset - first.offset, 0, small[k]!.length);
      this.deviceWriteSync(first.offset, run);
      i = j;
    }
    await Promise.all(big);
    return wroteSync;
  }

  /**
   * The queued entries of up to PICK_REGIONS pending regions (the longest pending first; the
   * rest stay pending for the next pick), closed under overlap, in arrival order.
   */
  private collectPending(): HeldWrite[] {
    const regions = new Set<number>();
    for (const r of this.releasePending) {
      regions.add(r);
      this.releasePending.delete(r);
      if (regions.size === PICK_REGIONS) break;
    }
    let cands = this.queue.inRegions(regions);
    for (let grew = true; grew; ) {
      grew = false;
      for (const w of cands) {
        if (w.superseded || this.queue.alone(w)) continue;
        const [r0, r1] = regionSpan(w.offset, w.length);
        for (let r = r0; r <= r1; r++) {
          if (regions.has(r)) continue;
          regions.add(r);
          grew = true;
        }
      }
      if (grew) cands = this.queue.inRegions(regions);
    }
    return cands;
  }

  // ---------------------------------------------------------------- checkpoint, state, close

  /**
   * Advances the checkpoint to just before the oldest write not yet applied: devices are
   * synced, the changed-block map persisted with that seq, then older journal segments dropped.
   */
  checkpoint(force = false): Promise<void> {
    // A checkpoint already running computed its seq before this call: chain one more run
    // (shared by every caller that arrives meanwhile) so nobody gets a stale checkpoint.
    if (this.checkpointing) {
      this.checkpointAgain ??= this.checkpointing.catch(() => undefined).then(() => {
        this.checkpointAgain = null;
        return this.checkpoint(force);
      });
      return this.checkpointAgain;
    }
    this.checkpointing = this.doCheckpoint(force).finally(() => {
      this.checkpointing = null;
    });
    return this.checkpointing;
  }

  private checkpointAgain: Promise<void> | null = null;

  /** The seq a checkpoint now could advance to: just before the oldest write not yet applied. */
  private checkpointThrough(): number {
    let needed = this.journal.lastSeq + 1;
    if (this.queue.first) needed = Math.min(needed, this.queue.first.seq);
    for (const w of this.inflight) needed = Math.min(needed, w.seq);
    return needed - 1;
  }

  private async doCheckpoint(force: boolean): Promise<void> {
    const through = this.checkpointThrough();
    if (!force && through <= this.cbtThroughSeq) return;
    await this.syncDevices();
    const b = this.backup;
    const state = encodeCbtState({
      throughSeq: through,
      parentSnapshotId: this.parentSnapshotId,
      activeBackupId: b && b.taken ? b.id : null,
      current: this.cbt,
      taken: b && b.taken ? b.taken : null,
    });
    if (b && !b.taken) return; // mid-drain: the maps are about to swap; try again later
    await this.cfg.env.writeFileAtomic(`${this.cfg.journalDir}/cbt.bin`, state);
    this.cbtThroughSeq = through;
    await this.journal.dropThrough(through);
  }

  /** Range policy: the copied map of the running backup (null otherwise). */
  copiedMap(): BlockBitmap | null {
    return this.backup?.copied ?? null;
  }

  /** Cells of `cellBytes` that queued writes touch (the UI block map), without walking the queue. */
  forEachHeldCell(cellBytes: number, mark: (cell: number) => void): void {
    this.queue.forEachHeldCell(cellBytes, mark);
  }

  /** Changed-block map since `parentSnapshotId` (null parent ⇒ unknown ⇒ full). */
  changedSinceParent(): { map: BlockBitmap; parentSnapshotId: string | null } {
    return { map: this.cbt, parentSnapshotId: this.parentSnapshotId };
  }

  /**
   * Held data against the journal's capacity: held writes stay in the journal until released,
   * and the journal frees space only up to its oldest held write, so a hold queue that nears
   * the capacity stalls every write to the volume.
   */
  holdFill(): number {
    return this.queue.bytes / this.journal.options.capacity;
  }

  holdState(): HoldState {
    const b = this.backup;
    const oldest = this.queue.oldestHeldAt();
    return {
      volume: this.name,
      backupFlag: b !== null,
      policy: b?.rule.policy ?? null,
      heldCount: this.queue.count,
      heldBytes: this.queue.bytes,
      oldestHeldAgeMs: oldest === null ? null : Math.max(0, this.cfg.env.monotonic() - oldest),
      queuedTotal: this.queue.queuedTotal,
      releasedTotal: this.queue.releasedTotal,
      copiedBytes: b?.copied ? Math.min(this._size, b.copied.count() * b.copied.granularity) : 0,
      journalBytes: this.journal.liveBytes,
      journalCapacity: this.journal.options.capacity,
    };
  }

  /** Grows the volume onto new extents (the manager allocated them). */
  grow(newSize: number, extents: MappedExtent[]): void {
    invariant(newSize >= this._size, 'volumes only grow');
    if (this.backup) throw new HoldfastError('BACKUP_RUNNING', `Volume ${this.name} cannot grow while it is being backed up.`);
    this._size = newSize;
    this.extents = [...extents].sort((a, b) => a.volumeOffset - b.volumeOffset);
    this.assertExtents();
    this.cbt = this.cbt.resized(newSize);
    this.cells.resize(newSize);
    this.allocationLoads.clear();
    this.allocationLoaded.clear();
    this.learnHolesSoon(); // the new extents too
  }

  rename(name: string): void {
    (this.cfg as { name: string }).name = name;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Clean close: no backup may run; everything applied, synced, checkpointed. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.backup) await this.abortBackup(this.backup.id, 'Holdfast is shutting down').catch(() => undefined);
    while (this.releasing) await this.releasing;
    await Promise.all([...this.inflight].map((w) => w.done));
    await this.checkpoint(true).catch(() => undefined);
    await this.flush().catch(() => undefined);
    this.closed = true;
    await this.journal.close();
    await this.cfg.env.unlink(`${this.cfg.journalDir}/open.json`);
  }

  /** Test hook for crash tests: stop without flushing or checkpointing (like a killed process would). */
  async abandon(): Promise<void> {
    this.closed = true;
  }
}

/** Turns an OS error into a HoldfastError a person can act on; HoldfastErrors pass through. */
/** A regular file with fewer bytes allocated than its size (drives, and files nothing is known of: no). */
function hasHoles(file: BlockFile): boolean {
  const allocated = file.allocatedBytes?.() ?? null;
  return allocated !== null && allocated < file.size();
}

/** `p`'s value, or `late` after ALLOCATION_MAP_WAIT_MS: a filesystem slow to give its allocation map holds nobody up. */
async function inTime<T, L>(p: Promise<T>, late: L): Promise<T | L> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<L>((resolve) => (timer = setTimeout(() => resolve(late), ALLOCATION_MAP_WAIT_MS)))]);
  } finally {
    clearTimeout(timer);
  }
}

function ioError(e: unknown, what: string): HoldfastError {
  if (e instanceof HoldfastError) return e;
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOSPC') return new HoldfastError('NO_SPACE', `${what} failed: the disk holding it is full. Free space, then retry.`);
  if (err.code === 'EROFS' || err.code === 'EACCES' || err.code === 'EPERM') return new HoldfastError('READ_ONLY', `${what} failed: the file or drive is read-only or not permitted (${err.code}).`);
  return new HoldfastError('IO_ERROR', `${what} failed: ${err.message ?? String(e)}`, { errno: err.code });
}

/** dataCrc marker on SUBMIT_ZERO records of held writes (those are redone on recovery). */
export const HELD_ZERO = 0x48454c44;
