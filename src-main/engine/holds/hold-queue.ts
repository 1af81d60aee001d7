/**
 * The hold queue of one volume (claims 2, 7, 8): a doubly linked list of held writes in
 * arrival order. A held write is not forwarded to the device while it is in the queue.
 *
 * Invariants:
 * - Entries are linked in strictly increasing seq (arrival) order; release never reorders.
 * - `overlaps(range)` is true iff some queued entry (held or being applied) covers a byte
 *   of the range; the write path uses it so no write overtakes an earlier held one.
 * - An entry leaves the queue only after its data reached the device (applied), so reads
 *   that overlay queued data never miss a write that is not yet on the device.
 * - A held write whose exact range starts where a later held write starts and is covered by
 *   it is *superseded*: its data reference is dropped and releasing it writes nothing (the
 *   later write, applied after every queued write before it, leaves the same bytes). It stays
 *   queued (and counted) until released, so seqs, APPLIED records and the UI counts are
 *   unchanged; it no longer counts in the block counter (the later entry covers its blocks).
 * - A payload backed by the journal (ack mode `journal`) is in memory only until its record is
 *   committed (`confirm`); from then on it is read back from the journal file, which keeps it
 *   while the entry is queued (a segment is dropped only when every write in it is applied).
 * - `inRegions` finds every queued entry touching a region without walking the list: each
 *   entry is listed in the bucket of every 1 MiB region it touches (buckets drop removed
 *   entries lazily, and compact once half of a bucket is removed).
 * Memory per entry: one small object (seq, offset, length, payload refs, links, flags),
 * one slot in the bucket of each region it touches (and a map slot per offset in regions
 * with more than LATEST_MAP_AT entries), plus a shared paged counter of 2 bytes per 4 KiB
 * volume block touched (allocated while holding).
 */
import { invariant } from '../../../src-shared/errors';

export const HOLD_BLOCK_SHIFT = 12; // 4 KiB
/** Regions of the bucket index: 1 MiB. */
export const HOLD_REGION_SHIFT = 20;
const REGION_SIZE = 2 ** HOLD_REGION_SHIFT;
/** inRegions merges up to this many regions' lists directly, and sorts more. */
const MERGE_MAX_RUNS = 32;
/** Past this many entries a region bucket keeps a map from offset to its newest entry. */
const LATEST_MAP_AT = 128;
const PAGE_SHIFT = 12; // 4096 blocks per counter page (16 MiB of volume)
const PAGE_MASK = (1 << PAGE_SHIFT) - 1;

const QUEUED = 1;
const SUPERSEDED = 2;
const RELEASING = 4;

/**
 * Where a held write's bytes can be read back: the journal segment file its data record is in
 * (a BlockFile). Reads are of bytes already written there, so they come from the page cache.
 */
export interface LoggedBytes {
  /** The file's descriptor, where a copy may go from it to another file in the kernel. */
  readonly fd?: number;
  readSync(buf: Buffer, pos: number): number;
  read(buf: Buffer, pos: number): Promise<number>;
}

/** A file a held write's journal bytes can be copied into without a buffer (BlockFile.copyFromSync). */
export interface CopyTarget {
  copyFromSync?(srcFd: number, srcPos: number, len: number, pos: number): boolean;
}

/** A held write's payload while it is detached (superseded, its superseder's record not yet committed). */
export interface DetachedPayload {
  mem: Buffer | null;
  log: LoggedBytes | null;
  pos: number;
}

/**
 * One held write. Kept small (it is allocated per write while a backup holds): the three
 * states share one flags field, what superseding needs until the superseder's record is
 * committed lives in the queue's `unconfirmed` list, and an ack-mode-device writer's wait lives
 * with the volume, not here.
 *
 * Its payload is in memory, in the journal, or both: in ack mode `journal` every held write's
 * data record is in the journal anyway, so once that record is committed (`confirm`) the
 * memory is let go and the bytes are read back from the journal file when the write is
 * released or a read overlays it (the page cache has them). Memory then holds only the
 * writes of the batch being committed, not seconds of held data: no payload memory to fault
 * in, copy into, or keep for the garbage collector. In ack mode `device` the record carries no
 * data and the payload stays in memory (its writer waits until it is released, so the
 * clients' queue depths bound it).
 */
export class HeldWrite {
  next: HeldWrite | null = null;
  prev: HeldWrite | null = null;
  private flags = 0;
  /**
   * The payload in memory: null for write-zeroes/trim entries, once superseded, and once only in
   * the journal (in ack mode journal that is as soon as its batch is committed, so the views the
   * writes came in as die young and cost the garbage collector nothing to keep).
   */
  private mem: Buffer | null;
  /** The payload in the journal: its segment file and the data's position there (or null). */
  private log: LoggedBytes | null;
  private pos: number;
  /** When it was held, in whole milliseconds (a small integer needs no heap number). */
  readonly heldAt: number;
  constructor(
    readonly seq: number,
    readonly offset: number,
    readonly length: number,
    data: Buffer | null,
    heldAt: number,
    /** Where the journal has the same bytes (its data record), if it does. */
    log: LoggedBytes | null = null,
    pos = 0,
  ) {
    invariant(data === null || data.length === length, 'a held payload is as long as its write');
    invariant(log === null || data !== null, 'a payload in the journal is also in memory until its record is committed');
    this.mem = data;
    this.log = log;
    this.pos = pos;
    this.heldAt = Math.floor(heldAt);
  }

  /** Has a payload (false for zeroes and superseded entries). */
  get hasData(): boolean {
    return this.mem !== null || this.log !== null;
  }

  /** The payload is in memory (not only in the journal). */
  get inMemory(): boolean {
    return this.mem !== null;
  }

  /**
   * The payload: in memory, else its bytes read from the journal (synchronously: a page-cache
   * copy); null for zeroes and superseded entries. Never written to by the caller.
   */
  get data(): Buffer | null {
    if (this.mem !== null) return this.mem;
    if (this.log === null) return null;
    const buf = Buffer.allocUnsafe(this.length);
    this.copyTo(buf, 0, 0, this.length);
    return buf;
  }

  /** The payload read without blocking the thread (large payloads); null as `data`. */
  async load(): Promise<Buffer | null> {
    if (this.mem !== null || this.log === null) return this.data;
    const buf = Buffer.allocUnsafe(this.length);
    const n = await this.log.read(buf, this.pos);
    invariant(n === this.length, 'a held write reads back whole from the journal');
    return buf;
  }

  /** Copies payload bytes [from, from + n) to buf at `to` (the entry has a payload). */
  copyTo(buf: Buffer, to: number, from: number, n: number): void {
    invariant(from >= 0 && n >= 0 && from + n <= this.length, 'a copy stays inside the payload');
    if (this.mem !== null) {
      this.mem.copy(buf, to, from, from + n);
      return;
    }
    invariant(this.log !== null, 'a payload is copied only from an entry that has one');
    const got = this.log.readSync(buf.subarray(to, to + n), this.pos + from);
    invariant(got === n, 'a held write reads back whole from the journal');
  }

  /**
   * Copies the whole payload from the journal into `file` at `pos` inside the kernel; false,
   * having written nothing, where the payload is (also) in memory, or the files cannot (the
   * caller copies through a buffer).
   */
  copyInto(file: CopyTarget, pos: number): boolean {
    if (this.mem !== null || this.log === null || this.log.fd === undefined || !file.copyFromSync) return false;
    return file.copyFromSync(this.log.fd, this.pos, this.length, pos);
  }

  /** Its record is in the journal file: the memory copy goes, the journal has the bytes. */
  logged(): void {
    if (this.log !== null) this.mem = null;
  }

  /** Takes the payload away (superseded); `attach` gives it back. */
  detach(): DetachedPayload | null {
    if (!this.hasData) return null;
    const d = { mem: this.mem, log: this.log, pos: this.pos };
    this.mem = null;
    this.log = null;
    return d;
  }

  attach(d: DetachedPayload | null): void {
    this.mem = d ? d.mem : null;
    this.log = d ? d.log : null;
    this.pos = d ? d.pos : 0;
  }

  /** Forgets the payload (the entry left the queue for good). */
  dropPayload(): void {
    this.mem = null;
    this.log = null;
  }

  /** In the queue (false once applied or dropped); buckets skip entries that are not. */
  get queued(): boolean {
    return (this.flags & QUEUED) !== 0;
  }
  set queued(v: boolean) {
    this.flags = v ? this.flags | QUEUED : this.flags & ~QUEUED;
  }
  /** A later queued write covers this one entirely: releasing it is a no-op. */
  get superseded(): boolean {
    return (this.flags & SUPERSEDED) !== 0;
  }
  set superseded(v: boolean) {
    this.flags = v ? this.flags | SUPERSEDED : this.flags & ~SUPERSEDED;
  }
  /** Being written to the device by a release pass: no longer superseded by newer writes. */
  get releasing(): boolean {
    return (this.flags & RELEASING) !== 0;
  }
  set releasing(v: boolean) {
    this.flags = v ? this.flags | RELEASING : this.flags & ~RELEASING;
  }
}

/** A supersede not yet final: `by`'s record may still fail to commit, and then `older` (with `data`) comes back. */
interface Unconfirmed {
  by: HeldWrite;
  older: HeldWrite;
  data: DetachedPayload | null;
}

/** Sparse per-block reference counts: how many queued entries touch each 4 KiB block. */
class BlockCounts {
  private pages = new Map<number, Uint16Array>();

  add(offset: number, length: number, delta: 1 | -1): void {
    const first = Math.floor(offset / 4096);
    const last = Math.floor((offset + length - 1) / 4096);
    for (let b = first; b <= last; b++) {
      const pi = Math.floor(b / 4096);
      let page = this.pages.get(pi);
      if (!page) {
        invariant(delta === 1, 'hold-queue block count underflow');
        page = new Uint16Array(1 << PAGE_SHIFT);
        this.pages.set(pi, page);
      }
      const i = b & PAGE_MASK;
      const v = page[i]! + delta;
      invariant(v >= 0 && v <= 0xffff, 'hold-queue block count out of range');
      page[i] = v;
    }
  }

  any(offset: number, length: number): boolean {
    if (this.pages.size === 0) return false;
    const first = Math.floor(offset / 4096);
    const last = Math.floor((offset + length - 1) / 4096);
    for (let b = first; b <= last; b++) {
      const page = this.pages.get(Math.floor(b / 4096));
      if (page && page[b & PAGE_MASK]! > 0) return true;
    }
    return false;
  }

  /** The highest count over the blocks of [offset, offset + length). */
  max(offset: number, length: number): number {
    let m = 0;
    const first = Math.floor(offset / 4096);
    const last = Math.floor((offset + length - 1) / 4096);
    for (let b = first; b <= last; b++) {
      const page = this.pages.get(Math.floor(b / 4096));
      if (page && page[b & PAGE_MASK]! > m) m = page[b & PAGE_MASK]!;
    }
    return m;
  }

  clear(): void {
    this.pages.clear();
  }
}

/** The entries touching one region, in push order; removed entries linger until compaction. */
interface Bucket {
  items: HeldWrite[];
  removed: number;
  /**
   * Once the bucket is large: the newest queued entry starting at each offset of the region
   * (superseded entries are not in it), so a rewrite finds the write it supersedes however
   * far back it is. Small buckets are scanned instead (a map costs more than the entries).
   */
  latest: Map<number, HeldWrite> | null;
}

/** First and last region index of [offset, offset + length). */
export function regionSpan(offset: number, length: number): [number, number] {
  return [Math.floor(offset / REGION_SIZE), Math.floor((offset + Math.max(1, length) - 1) / REGION_SIZE)];
}

export class HoldQueue {
  private head: HeldWrite | null = null;
  private tail: HeldWrite | null = null;
  private counts = new BlockCounts();
  /** Region index → the entries touching it (see `inRegions`). */
  private buckets = new Map<number, Bucket>();
  /** Entries that superseded another before their own record was committed. */
  private unconfirmed: Unconfirmed[] = [];
  /** confirm() has run through this seq: later entries may still keep their payload in memory. */
  private confirmedSeq = 0;
  private _count = 0;
  private _bytes = 0;
  /** Lifetime counters for the UI timeline. */
  queuedTotal = 0;
  releasedTotal = 0;

  /**
   * `supersede`: whether a later write may supersede an earlier one. Only where every held
   * write's data is in the journal (ack mode `journal`): a superseded entry is released (and,
   * in ack mode `device`, acknowledged) as a no-op before its superseder reaches the device, so
   * its bytes must be recoverable from the superseder's data record if the process dies between.
   */
  constructor(private readonly supersede = true) {}

  get count(): number {
    return this._count;
  }

  get bytes(): number {
    return this._bytes;
  }

  get first(): HeldWrite | null {
    return this.head;
  }

  oldestHeldAt(): number | null {
    return this.head ? this.head.heldAt : null;
  }

  push(w: HeldWrite): void {
    invariant(this.tail === null || this.tail.seq < w.seq, 'hold queue must stay in arrival order');
    invariant(!w.queued, 'a held write is queued once');
    w.prev = this.tail;
    if (this.tail) this.tail.next = w;
    else this.head = w;
    this.tail = w;
    w.queued = true;
    const [r0, r1] = regionSpan(w.offset, w.length);
    let firstBucket: Bucket | null = null;
    for (let r = r0; r <= r1; r++) {
      let b = this.buckets.get(r);
      if (!b) this.buckets.set(r, (b = { items: [], removed: 0, latest: null }));
      b.items.push(w);
      firstBucket ??= b;
    }
    this._count++;
    this._bytes += w.length;
    this.queuedTotal++;
    this.counts.add(w.offset, w.length, 1);
    const older = this.supersede ? this.latestAt(w, firstBucket!) : null;
    if (older && !older.releasing && older.length <= w.length) {
      older.superseded = true;
      // Until w's record is committed the older data stays reachable (dropSeqs revives it).
      this.unconfirmed.push({ by: w, older, data: older.detach() });
      this.counts.add(older.offset, older.length, -1);
    }
  }

  /**
   * The newest queued entry before w that starts where w starts and is not superseded (w was
   * just added to b, the bucket of its first region, and is not a candidate).
   */
  private latestAt(w: HeldWrite, b: Bucket): HeldWrite | null {
    const items = b.items;
    let found: HeldWrite | null = null;
    if (b.latest) found = b.latest.get(w.offset) ?? null;
    else if (items.length > LATEST_MAP_AT) {
      b.latest = new Map();
      for (let i = 0; i < items.length - 1; i++) {
        const x = items[i]!;
        if (x.queued && !x.superseded) b.latest.set(x.offset, x);
      }
      found = b.latest.get(w.offset) ?? null;
    } else {
      for (let i = items.length - 2; i >= 0; i--) {
        const x = items[i]!;
        if (x.offset === w.offset && x.queued && !x.superseded) {
          found = x;
          break;
        }
      }
    }
    b.latest?.set(w.offset, w);
    return found;
  }

  overlaps(offset: number, length: number): boolean {
    return this._count > 0 && this.counts.any(offset, length);
  }

  /** True when no other queued entry shares a 4 KiB block with queued entry w. */
  alone(w: HeldWrite): boolean {
    return this.counts.max(w.offset, w.length) <= 1;
  }

  /** Removes an applied entry (anywhere in the list: entries that do not overlap leave in any order). */
  remove(w: HeldWrite): void {
    this.unlink(w);
    this.releasedTotal++;
    if (this._count === 0) this.reset();
  }

  private unlink(w: HeldWrite): void {
    invariant(w.queued, 'only a queued entry can leave the hold queue');
    const prev = w.prev;
    const next = w.next;
    if (prev) prev.next = next;
    else this.head = next;
    if (next) next.prev = prev;
    else this.tail = prev;
    w.next = null;
    w.prev = null;
    w.queued = false;
    this._count--;
    this._bytes -= w.length;
    this.forget(w);
    w.dropPayload();
    const [r0, r1] = regionSpan(w.offset, w.length);
    for (let r = r0; r <= r1; r++) {
      const b = this.buckets.get(r)!;
      if (++b.removed === b.items.length) this.buckets.delete(r);
      else if (b.removed >= 16 && b.removed * 2 >= b.items.length) {
        b.items = b.items.filter((x) => x.queued);
        b.removed = 0;
      }
    }
  }

  private reset(): void {
    this.counts.clear();
    this.buckets.clear();
    // Supersedes whose confirm has not run yet: both entries have left the queue, so the older data is gone.
    this.unconfirmed = [];
  }

  /** Regions of [offset, offset + length) that have queued entries. */
  regionsWithEntries(offset: number, length: number): number[] {
    const [r0, r1] = regionSpan(offset, length);
    const out: number[] = [];
    if (r1 - r0 + 1 > this.buckets.size) {
      for (const r of this.buckets.keys()) if (r >= r0 && r <= r1) out.push(r);
    } else {
      for (let r = r0; r <= r1; r++) if (this.buckets.has(r)) out.push(r);
    }
    return out;
  }

  /**
   * Every queued entry touching one of `regions`, each once, in arrival order. Costs the
   * size of those buckets, not the queue length. A bucket lists its entries in arrival order
   * (push appends, compaction keeps the order), so one region needs no sort; a few are merged,
   * many sorted, and an entry listed in two of them meets its twin at the merge (same seq). (A
   * Set of seen entries plus a full sort took 15 % of the engine thread under a queue-depth-16
   * writer during range backups: release passes collect a region's entries again and again.)
   */
  inRegions(regions: Iterable<number>): HeldWrite[] {
    const lists: HeldWrite[][] = [];
    for (const r of regions) {
      const b = this.buckets.get(r);
      if (!b) continue;
      const l: HeldWrite[] = [];
      for (const w of b.items) if (w.queued) l.push(w);
      if (l.length) lists.push(l);
    }
    if (lists.length === 0) return [];
    if (lists.length === 1) return lists[0]!;
    if (lists.length > MERGE_MAX_RUNS) {
      const out = lists.flat().sort((a, b) => a.seq - b.seq);
      let n = 0;
      for (let i = 0; i < out.length; i++) if (n === 0 || out[i] !== out[n - 1]) out[n++] = out[i]!;
      out.length = n;
      return out;
    }
    // A few runs (a copied 4 MiB chunk is four regions): merge them, lowest seq first.
    const at = new Array<number>(lists.length).fill(0);
    const out: HeldWrite[] = [];
    for (;;) {
      let best = -1;
      let bestSeq = Infinity;
      for (let i = 0; i < lists.length; i++) {
        const w = lists[i]![at[i]!];
        if (w !== undefined && w.seq < bestSeq) {
          bestSeq = w.seq;
          best = i;
        }
      }
      if (best < 0) return out;
      const w = lists[best]![at[best]!++]!;
      if (out.length === 0 || out[out.length - 1] !== w) out.push(w);
    }
  }

  private forget(w: HeldWrite): void {
    if (w.superseded) return; // its blocks were uncounted when it was superseded
    this.counts.add(w.offset, w.length, -1);
    const latest = this.buckets.get(Math.floor(w.offset / REGION_SIZE))?.latest;
    if (latest && latest.get(w.offset) === w) latest.delete(w.offset);
  }

  /**
   * Records through `seq` are committed: what their entries superseded is gone for good, and
   * their payloads are read back from the journal from now on (the memory copies go).
   */
  confirm(seq: number): void {
    // The entries committed since the last confirm are the newest ones not yet confirmed (the
    // list is in seq order; an entry leaves it only once committed, or dropped with its batch).
    for (let w = this.tail; w && w.seq > this.confirmedSeq; w = w.prev) if (w.seq <= seq) w.logged();
    if (seq > this.confirmedSeq) this.confirmedSeq = seq;
    const u = this.unconfirmed;
    if (u.length === 0) return;
    let i = 0;
    while (i < u.length && u[i]!.by.seq <= seq) i++;
    if (i === u.length) this.unconfirmed = [];
    else if (i > 0) this.unconfirmed = u.slice(i);
  }

  /**
   * Takes the entries with seq in [first, last] out of the queue (their journal records never
   * reached the file). They are the newest entries, so nothing queued after them depends on
   * them; an entry one of them superseded is revived (the older write must apply after all).
   * Returns how many were dropped.
   */
  dropSeqs(first: number, last: number): number {
    // Newest first, so an entry superseded twice in the batch ends with its own data.
    for (let i = this.unconfirmed.length - 1; i >= 0; i--) {
      const { by, older, data } = this.unconfirmed[i]!;
      if (by.seq < first || by.seq > last) continue;
      older.superseded = false;
      older.attach(data);
      this.counts.add(older.offset, older.length, 1);
      const latest = this.buckets.get(Math.floor(older.offset / REGION_SIZE))?.latest;
      if (latest && latest.get(older.offset) === by) latest.set(older.offset, older);
    }
    this.unconfirmed = this.unconfirmed.filter((u) => u.by.seq < first || u.by.seq > last);
    let dropped = 0;
    for (let w = this.head; w; ) {
      const next: HeldWrite | null = w.next;
      if (w.seq >= first && w.seq <= last) {
        this.unlink(w);
        this.queuedTotal--;
        dropped++;
      }
      w = next;
    }
    if (this._count === 0) this.reset();
    return dropped;
  }

  /**
   * Marks `mark(i)` for every cell i of `cellBytes` that a queued entry touches, exactly (a cell
   * that straddles two regions may be marked twice), in time proportional to the regions with
   * entries plus, in a region that spans several cells, its entries up to the one that marks
   * its last unmarked cell (never a walk of the list).
   */
  forEachHeldCell(cellBytes: number, mark: (cell: number) => void): void {
    for (const [r, b] of this.buckets) {
      const start = r * REGION_SIZE;
      const first = Math.floor(start / cellBytes);
      if (Math.floor((start + REGION_SIZE - 1) / cellBytes) === first) {
        mark(first); // a bucket exists only while it lists a queued entry
        continue;
      }
      const end = start + REGION_SIZE;
      // Every cell of the region marked: the rest of the bucket cannot add one (a bucket of
      // thousands of random writes is decided by its first few).
      const cells = Math.floor((end - 1) / cellBytes) - first + 1;
      const seen = new Uint8Array(cells);
      let left = cells;
      for (let i = 0; i < b.items.length && left > 0; i++) {
        const w = b.items[i]!;
        if (!w.queued) continue;
        const a = Math.max(start, w.offset);
        const e = Math.min(end, w.offset + w.length);
        for (let c = Math.floor(a / cellBytes), last = Math.floor((e - 1) / cellBytes); c <= last; c++) {
          if (seen[c - first]) continue;
          seen[c - first] = 1;
          left--;
          mark(c);
        }
      }
    }
  }

  /**
   * The held bytes overlaying [offset, offset + length), in arrival order, taken *before* the
   * device is read (read-your-writes): a release pass may write an entry to the device and
   * drop it from the queue while the read is in flight, and the read must still see it. Payloads
   * in memory are never written after they are queued, so holding references is enough; those
   * only in the journal are read now. May throw (the journal cannot be read).
   */
  overlayOf(offset: number, length: number): HeldOverlay[] | null {
    if (!this.overlaps(offset, length)) return null;
    const end = offset + length;
    const out: HeldOverlay[] = [];
    for (const w of this.inRegions(this.regionsWithEntries(offset, length))) {
      if (w.superseded || w.offset >= end || offset >= w.offset + w.length) continue;
      if (w.inMemory || !w.hasData) {
        out.push({ offset: w.offset, length: w.length, data: w.data });
        continue;
      }
      // Only in the journal: the part the read covers, read now (the entry may be released and
      // its journal segment dropped while the device read is in flight).
      const s = Math.max(offset, w.offset);
      const n = Math.min(end, w.offset + w.length) - s;
      const data = Buffer.allocUnsafe(n);
      w.copyTo(data, 0, s - w.offset, n);
      out.push({ offset: s, length: n, data });
    }
    return out;
  }
}

/** One held write as a read sees it: its bytes, or zeroes (write-zeroes, trim). */
export interface HeldOverlay {
  offset: number;
  length: number;
  data: Buffer | null;
}

/** Copies the overlays (arrival order) over `buf`, which holds the device bytes at `offset`. */
export function applyOverlay(overlays: HeldOverlay[], offset: number, buf: Buffer): void {
  const end = offset + buf.length;
  for (const w of overlays) {
    const s = Math.max(offset, w.offset);
    const e = Math.min(end, w.offset + w.length);
    if (s >= e) continue;
    if (w.data) w.data.copy(buf, s - offset, s - w.offset, e - w.offset);
    else buf.fill(0, s - offset, e - offset);
  }
}
