/**
 * The per-volume journal: an append-only sequence of CRC-protected records in segment
 * files `<dir>/<firstSeq>.log`. One journal per volume keeps "writes to other volumes
 * never wait" literally true: a full journal only applies backpressure to its own volume.
 *
 * Invariants:
 * - seqs are strictly increasing across segments; a record is appended (write syscall
 *   done) before the write it describes is forwarded to the device or acknowledged.
 * - Write-path records (`stage*`) are staged in memory and written together by `commit()`
 *   (one pwritev for every record staged in the same event-loop turn); `committed()` is the
 *   promise the write path awaits before it forwards or acknowledges. Every other append,
 *   `sync()` and every segment switch commits what is staged first, so records reach the
 *   file in seq order. A failed commit rejects that batch and rewinds to the last good
 *   record (the next commit overwrites any torn bytes).
 * - `sync()` makes every record appended before the call durable (group commit: one
 *   fdatasync covers all of them).
 * - A segment is deleted only when every record in it has seq <= the checkpoint passed
 *   to `dropThrough`, i.e. its writes are applied, durable on the device, and reflected
 *   in the persisted changed-block map.
 * - Live bytes never exceed `capacity` except by one record (a record larger than the
 *   capacity is admitted alone, so a huge write cannot deadlock).
 * - Segment files sort by name in seq order; a name is a seq no greater than the segment's
 *   first record's (the next segment is created ahead, before its first seq is known). Only
 *   the order of the names counts: on open, a segment's first seq is the one after the
 *   previous segment's last.
 */
import path from 'node:path';
import type { BlockFile, Env } from '../env/env';
import { HoldfastError, invariant } from '../../../src-shared/errors';
import { decodeRecord, encodeHeaderInto, encodeSeqList, HEADER_SIZE, RecordType, type JournalRecord, type RecordTypeValue } from './format';

export interface JournalOptions {
  /** A new segment starts once the current one exceeds this. */
  segmentBytes: number;
  /** Live bytes (all retained segments) above which appends wait for a checkpoint. */
  capacity: number;
}

export const DEFAULT_JOURNAL_OPTIONS: JournalOptions = { segmentBytes: 64 << 20, capacity: 1 << 30 };
/**
 * Live bytes (against capacity) from which a segment switch asks for a checkpoint. Waiting for a
 * full journal stopped every write to the volume until the checkpoint's device sync and segment
 * drops were done (0.8-1.5 s on the bench VM when back-to-back backups filled it).
 */
export const CHECKPOINT_FILL = 0.75;
/**
 * Share of a segment after which the next one is created (open, directory fsync) in the
 * background, so the switch costs no wait: appends waited for that fsync at every switch —
 * ~1 ms, and 110-364 ms on the bench VM while the kernel wrote back the image's dirty pages, every
 * ~3 s while a backup holds 4 KiB writes (bench/results/nbd-latency-session45.txt).
 */
const SPARE_AT = 0.5;

interface Segment {
  firstSeq: number;
  lastSeq: number; // firstSeq - 1 while empty
  file: BlockFile;
  /** Bytes of the segment's records, staged ones included. */
  bytes: number;
  /** Bytes written to the file (bytes minus what is staged). */
  written: number;
  synced: boolean;
}

/** Records staged since the last commit, and the promise their writers wait on. */
interface StagedBatch {
  bufs: Buffer[];
  bytes: number;
  firstSeq: number;
  lastSeq: number;
  promise: Promise<void>;
  resolve: () => void;
  reject: (e: Error) => void;
}

/** Headers are cut from shared slabs: one allocation per ~1600 records instead of one each. */
const HEADER_SLAB = 64 << 10;
/** A batch is written once it reaches either bound, even mid-turn (iovec limit 1024). */
const MAX_STAGED_BUFS = 512;
const MAX_STAGED_BYTES = 4 << 20;

export interface OpenedJournal {
  journal: VolumeJournal;
  /** Every valid record of the retained segments, in seq order. */
  records: JournalRecord[];
  /** Why scanning stopped early, if it did (torn or corrupt tail, which was truncated). */
  discarded: string | null;
}

const SEGMENT_RE = /^(\d{16})\.log$/;
const segName = (firstSeq: number) => `${String(firstSeq).padStart(16, '0')}.log`;

export class VolumeJournal {
  private segments: Segment[] = [];
  private nextSeq: number;
  private appendedGen = 0; // counts appends; sync() compares generations
  private syncedGen = 0;
  private syncing: Promise<void> | null = null;
  private spaceWaiters: Array<{ need: number; resolve: () => void }> = [];
  private closed = false;
  /**
   * Asked to free space (the volume runs a checkpoint): `hard` when an append would exceed
   * capacity, and before that (soft) at every segment switch once the journal is CHECKPOINT_FILL
   * full, so a steady writer's appends do not stop and wait while the checkpoint syncs the device.
   */
  onPressure: ((hard: boolean) => void) | null = null;

  private constructor(
    private readonly dir: string,
    private readonly env: Env,
    readonly options: JournalOptions,
    nextSeq: number,
  ) {
    this.nextSeq = nextSeq;
  }

  static async open(dir: string, env: Env, options: JournalOptions = DEFAULT_JOURNAL_OPTIONS, minNextSeq = 1): Promise<OpenedJournal> {
    await env.mkdir(dir);
    const names = (await env.readdir(dir)).filter((n) => SEGMENT_RE.test(n)).sort();
    const records: JournalRecord[] = [];
    const kept: Segment[] = [];
    let discarded: string | null = null;
    // Records at or below the checkpoint (minNextSeq - 1) may still be on disk when a crash hit
    // between persisting the checkpoint and dropping their segment: they are valid, just old.
    let lastSeq = 0;
    for (const name of names) {
      const p = path.join(dir, name);
      if (discarded) {
        await env.unlink(p); // everything after a corrupt point is unreachable
        continue;
      }
      const file = await env.open(p);
      const buf = Buffer.allocUnsafe(file.size());
      const n = await file.read(buf, 0);
      const data = buf.subarray(0, n);
      // The name only orders the files: a segment created ahead is named before its first seq
      // is known, so the one after the previous segment's last is its first (the first kept
      // one's is its first record's, or its name's when it is empty).
      const nameSeq = Number(SEGMENT_RE.exec(name)![1]);
      let at = 0;
      let segFirst: number | null = null;
      while (at < data.length) {
        const r = decodeRecord(data, at);
        if ('invalid' in r) {
          discarded = `${name} at byte ${at}: ${r.invalid}`;
          break;
        }
        if (r.record.seq <= lastSeq) {
          discarded = `${name} at byte ${at}: sequence ${r.record.seq} does not follow ${lastSeq}`;
          break;
        }
        // Payload views point into `data`; copy so segments can be reused/freed independently.
        records.push({ ...r.record, payload: Buffer.from(r.record.payload) });
        segFirst ??= r.record.seq;
        lastSeq = r.record.seq;
        at += r.size;
      }
      if (discarded && at < data.length) await file.truncate(at);
      if (discarded) await file.datasync();
      const prev = kept[kept.length - 1];
      const firstSeq = prev ? prev.lastSeq + 1 : (segFirst ?? nameSeq);
      kept.push({ firstSeq, lastSeq: segFirst === null ? firstSeq - 1 : lastSeq, file, bytes: at, written: at, synced: true });
    }
    const journal = new VolumeJournal(dir, env, options, Math.max(lastSeq, minNextSeq - 1) + 1);
    journal.segments = kept;
    return { journal, records, discarded };
  }

  get lastSeq(): number {
    return this.nextSeq - 1;
  }

  /** Whether dropThrough(throughSeq) would delete at least one segment (its two conditions). */
  wouldDrop(throughSeq: number): boolean {
    const cur = this.segments[this.segments.length - 1];
    if (this.segments.length > 1) return this.segments[1]!.firstSeq - 1 <= throughSeq;
    return cur !== undefined && cur.bytes > 0 && cur.lastSeq <= throughSeq;
  }

  /** Bytes in all retained segments. */
  get liveBytes(): number {
    let s = 0;
    for (const seg of this.segments) s += seg.bytes;
    return s;
  }

  /** True when appending `recordBytes` now would exceed capacity (callers then await waitForSpace). */
  needsSpace(recordBytes: number): boolean {
    const live = this.liveBytes;
    return live > 0 && live + recordBytes > this.options.capacity;
  }

  /** Resolves once `recordBytes` fit; FIFO among waiters. Never rejects for lack of space. */
  waitForSpace(recordBytes: number): Promise<void> {
    if (!this.needsSpace(recordBytes) && this.spaceWaiters.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.spaceWaiters.push({ need: recordBytes, resolve });
      this.onPressure?.(true);
    });
  }

  get waitingForSpace(): number {
    return this.spaceWaiters.length;
  }

  private wakeSpaceWaiters(): void {
    while (this.spaceWaiters.length > 0) {
      const w = this.spaceWaiters[0]!;
      if (this.needsSpace(w.need)) break;
      this.spaceWaiters.shift();
      w.resolve();
    }
  }

  private currentSegment(): Segment {
    const seg = this.segments[this.segments.length - 1];
    invariant(seg !== undefined && seg.file !== null, 'journal append without prepareAppend()');
    return seg;
  }

  private pendingOpen: Promise<void> | null = null;
  /** The next segment's file, created (and its name durable) ahead of the switch; empty. */
  private spare: BlockFile | null = null;
  private pendingSpare: Promise<void> | null = null;
  /** Creating a spare ahead failed: the switch itself tries again (and fails its writers). */
  private spareFailed = false;

  /**
   * Returns a promise when a new segment must be opened first (none yet, or the current one
   * is full and its successor is not created yet); the write path awaits it before appending.
   * Appends themselves are synchronous: a small write to the page cache costs less than a
   * thread-pool round trip. Past SPARE_AT of a segment, its successor is created meanwhile.
   */
  prepareAppend(): Promise<void> | null {
    const seg = this.segments[this.segments.length - 1];
    if (seg && seg.file && seg.bytes < this.options.segmentBytes) {
      if (seg.bytes >= this.options.segmentBytes * SPARE_AT && !this.spare && !this.spareFailed && !this.closed) {
        void this.createSpare().catch(() => {
          this.spareFailed = true;
        });
      }
      return null;
    }
    if (this.spare && !this.pendingOpen) {
      this.switchToSpare();
      return null;
    }
    return this.openNext();
  }

  /** Switches to the next segment (appends keep going to the current one while it is created). */
  private openNext(): Promise<void> {
    if (!this.pendingOpen) {
      invariant(!this.closed, 'append to a closed journal');
      this.pendingOpen = (async () => {
        if (!this.spare) await this.createSpare();
        if (!this.spare) throw new HoldfastError('CANCELLED', 'The journal was closed while a segment was being created.');
        this.switchToSpare();
      })().finally(() => {
        this.pendingOpen = null;
      });
    }
    return this.pendingOpen;
  }

  /**
   * Creates the next segment's file, named after the next seq now (no greater than its first
   * record's, which is only known at the switch) and durable in the directory before any record
   * goes into it. A failure leaves no spare; the next switch tries again (and fails its writers).
   */
  private createSpare(): Promise<void> {
    if (!this.pendingSpare) {
      const p = path.join(this.dir, segName(this.nextSeq));
      this.pendingSpare = (async () => {
        const file = await this.env.open(p, { create: true });
        try {
          if (file.size() > 0) await file.truncate(0);
          await this.env.fsyncDir(this.dir);
        } catch (e) {
          await file.close().catch(() => undefined);
          throw e;
        }
        if (this.closed) {
          await file.close();
          await this.env.unlink(p);
          return;
        }
        this.spare = file;
      })().finally(() => {
        this.pendingSpare = null;
      });
    }
    return this.pendingSpare;
  }

  /** The spare becomes the current segment; records staged so far reach the old one first. */
  private switchToSpare(): void {
    const file = this.spare;
    invariant(file !== null, 'segment switch without a spare');
    this.spare = null;
    this.spareFailed = false;
    this.commitQuietly();
    this.segments.push({ firstSeq: this.nextSeq, lastSeq: this.nextSeq - 1, file, bytes: 0, written: 0, synced: false });
    if (this.liveBytes >= this.options.capacity * CHECKPOINT_FILL) this.onPressure?.(false);
  }

  async ready(): Promise<void> {
    const p = this.prepareAppend();
    if (p) await p;
  }

  private staged: StagedBatch | null = null;
  private headerSlab = Buffer.allocUnsafe(HEADER_SLAB);
  private headerAt = 0;

  private header(type: RecordTypeValue, seq: number, offset: number, length: number, dataCrc: number, payload: Buffer, payloadCrc?: number): Buffer {
    if (this.headerAt + HEADER_SIZE > this.headerSlab.length) {
      this.headerSlab = Buffer.allocUnsafe(HEADER_SLAB);
      this.headerAt = 0;
    }
    const h = this.headerSlab.subarray(this.headerAt, this.headerAt + HEADER_SIZE);
    this.headerAt += HEADER_SIZE;
    encodeHeaderInto(h, type, seq, offset, length, dataCrc, payload, payloadCrc);
    return h;
  }

  /** Stages a record (seq assigned now, bytes written by the next commit). */
  private stage(type: RecordTypeValue, offset: number, length: number, dataCrc: number, payload: Buffer, payloadCrc?: number): number {
    invariant(!this.closed, 'append to a closed journal');
    const seg = this.currentSegment();
    const seq = this.nextSeq++;
    let b = this.staged;
    if (b && (b.bufs.length >= MAX_STAGED_BUFS || b.bytes >= MAX_STAGED_BYTES)) {
      this.commitQuietly(); // a long turn: write what is staged, start another batch
      b = null;
    }
    if (!b) {
      let resolve!: () => void;
      let reject!: (e: Error) => void;
      const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
      promise.catch(() => undefined); // the writers that wait on it see the error
      b = this.staged = { bufs: [], bytes: 0, firstSeq: seq, lastSeq: seq, promise, resolve, reject };
      queueMicrotask(this.commitQuietly);
    }
    b.bufs.push(this.header(type, seq, offset, length, dataCrc, payload, payloadCrc));
    if (payload.length > 0) b.bufs.push(payload);
    b.bytes += HEADER_SIZE + payload.length;
    b.lastSeq = seq;
    seg.bytes += HEADER_SIZE + payload.length;
    seg.lastSeq = seq;
    seg.synced = false;
    this.appendedGen++;
    return seq;
  }

  /** The promise of the records staged so far (resolved at once when nothing is staged). */
  committed(): Promise<void> {
    return this.staged ? this.staged.promise : RESOLVED;
  }

  /** Seqs of the staged batch, for a writer that must undo what it did for them if the commit fails. */
  get stagedFirstSeq(): number | null {
    return this.staged ? this.staged.firstSeq : null;
  }

  /**
   * Writes every staged record with one vectored write. Throws (and rejects the batch) on
   * failure; the segment then rewinds to its last written record, so the torn bytes are
   * overwritten by the next commit and the failed records never become valid.
   */
  commit(): void {
    const b = this.staged;
    if (!b) return;
    this.staged = null;
    const seg = this.currentSegment();
    try {
      if (b.bufs.length === 1) seg.file.writeSync(b.bufs[0]!, seg.written);
      else seg.file.writevSync(b.bufs, seg.written);
    } catch (e) {
      seg.bytes = seg.written;
      seg.lastSeq = b.firstSeq - 1;
      const err = e instanceof Error ? e : new Error(String(e));
      b.reject(err);
      this.onCommitFailed?.(b.firstSeq, b.lastSeq, err);
      throw err;
    }
    seg.written += b.bytes;
    this.committedSeq = b.lastSeq;
    b.resolve();
  }

  /** Every record with seq ≤ this is in the file (staged ones are not). */
  committedSeq = 0;
  /** Records up to this seq were in the files when a sync of them completed: durable. */
  durableSeq = 0;

  /** A failed batch: the volume undoes what it queued for these seqs. */
  onCommitFailed: ((firstSeq: number, lastSeq: number, err: Error) => void) | null = null;

  private readonly commitQuietly = (): void => {
    try {
      this.commit();
    } catch {
      /* the batch's writers were rejected */
    }
  };

  /** Appends and commits at once (with everything staged before it). */
  private append(type: RecordTypeValue, offset: number, length: number, dataCrc: number, payload: Buffer): number {
    const seq = this.stage(type, offset, length, dataCrc, payload);
    this.commit();
    return seq;
  }

  appendIntent(offset: number, length: number, dataCrc: number): number {
    return this.append(RecordType.SUBMIT, offset, length, dataCrc, EMPTY);
  }

  appendData(offset: number, data: Buffer, dataCrc: number): number {
    return this.append(RecordType.SUBMIT_DATA, offset, data.length, dataCrc, data);
  }

  /** `marker` goes in the dataCrc field (zero records carry no data): the volume flags held ones there. */
  appendZero(offset: number, length: number, marker = 0): number {
    return this.append(RecordType.SUBMIT_ZERO, offset, length, marker, EMPTY);
  }

  /** Staged variants for the write path: written by the next commit (await `committed()`). */
  stageIntent(offset: number, length: number): number {
    return this.stage(RecordType.SUBMIT, offset, length, 0, EMPTY);
  }

  /** dataCrc must be crc32(data): the record checksum is combined from it (one pass over the data). */
  stageData(offset: number, data: Buffer, dataCrc: number): number {
    return this.stage(RecordType.SUBMIT_DATA, offset, data.length, dataCrc, data, dataCrc);
  }

  /**
   * The file the record staged last went to and where it ends there: a data record's payload is
   * its last bytes, so they can be read back from [end - length, end) once it is committed (the
   * hold queue does, for held writes). Valid until its segment is dropped.
   */
  get stagedFile(): BlockFile {
    return this.currentSegment().file;
  }

  get stagedEnd(): number {
    return this.currentSegment().bytes;
  }

  stageZero(offset: number, length: number, marker = 0): number {
    return this.stage(RecordType.SUBMIT_ZERO, offset, length, marker, EMPTY);
  }

  /** Staged: released entries are redone idempotently if a crash loses it. */
  stageApplied(seqs: number[]): number {
    return this.stage(RecordType.APPLIED, 0, 0, 0, encodeSeqList(seqs));
  }

  appendApplied(seqs: number[]): number {
    return this.append(RecordType.APPLIED, 0, 0, 0, encodeSeqList(seqs));
  }

  appendBackup(type: typeof RecordType.BACKUP_BEGIN | typeof RecordType.BACKUP_END | typeof RecordType.BACKUP_ABORT, info: object): number {
    return this.append(type, 0, 0, 0, Buffer.from(JSON.stringify(info)));
  }

  /** Group commit: one fdatasync per segment covers every record appended before the call. */
  async sync(): Promise<void> {
    this.commit();
    const target = this.appendedGen;
    while (this.syncedGen < target) {
      if (this.syncing) {
        await this.syncing;
        continue;
      }
      const gen = this.appendedGen;
      const seq = this.committedSeq; // every record up to it is in the files now
      const dirty = this.segments.filter((s) => !s.synced && s.file);
      for (const s of dirty) s.synced = true; // appends after this point mark it dirty again
      this.syncing = Promise.all(dirty.map((s) => s.file.datasync()))
        .then(() => {
          this.syncedGen = Math.max(this.syncedGen, gen);
          this.durableSeq = Math.max(this.durableSeq, seq);
        })
        .catch((e) => {
          for (const s of dirty) s.synced = false;
          throw e;
        })
        .finally(() => {
          this.syncing = null;
        });
      await this.syncing;
    }
  }

  /**
   * Drops whole segments whose records all have seq <= throughSeq. The caller guarantees
   * those writes are applied and durable and the changed-block map covering them is persisted.
   */
  async dropThrough(throughSeq: number): Promise<void> {
    while (this.segments.length > 1) {
      const seg = this.segments[0]!;
      const next = this.segments[1]!;
      if (next.firstSeq - 1 > throughSeq) break;
      this.segments.shift();
      await seg.file.close();
      await this.env.unlink(seg.file.path);
    }
    const cur = this.segments[this.segments.length - 1];
    // A current segment that is entirely checkpointed is restarted so its bytes stop counting.
    // The next one is opened first while writers keep appending here (a switch through an
    // empty journal stalled every write for an open + directory fsync); if they appended
    // meanwhile, this segment is no longer entirely checkpointed and goes at the next checkpoint.
    if (cur && cur.file && cur.lastSeq <= throughSeq && cur.bytes > 0) {
      await this.openNext();
      const at = this.segments.indexOf(cur);
      if (at >= 0 && at < this.segments.length - 1 && cur.lastSeq <= throughSeq && cur.written === cur.bytes) {
        this.segments.splice(at, 1);
        await cur.file.close();
        await this.env.unlink(cur.file.path);
      }
    }
    this.wakeSpaceWaiters();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.pendingOpen) await this.pendingOpen.catch(() => undefined);
    if (this.pendingSpare) await this.pendingSpare.catch(() => undefined);
    this.commitQuietly();
    await this.sync().catch(() => undefined);
    this.closed = true;
    for (const s of this.segments) if (s.file) await s.file.close();
    // An unused spare holds no record: gone, or (after a crash) an empty segment at the end.
    const spare = this.spare;
    this.spare = null;
    if (spare) {
      await spare.close();
      await this.env.unlink(spare.path).catch(() => undefined);
    }
    for (const w of this.spaceWaiters.splice(0)) w.resolve();
  }
}

const EMPTY = Buffer.alloc(0);
const RESOLVED = Promise.resolve();
