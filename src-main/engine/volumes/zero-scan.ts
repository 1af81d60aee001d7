/**
 * Block status of a volume (NBD `base:allocation`): which parts of a range read as zeroes, so
 * clients (nbdcopy, qemu-img convert, qemu-img map) skip them instead of copying them.
 *
 * qemu-nbd asks the filesystem each time (lseek SEEK_DATA/SEEK_HOLE); Node has no lseek. A volume
 * keeps what it knows of each ZERO_CELL cell (cell-states.ts): it learns a device file's holes
 * once from the filesystem's allocation map (SEEK_DATA through the holdfast-fs addon, else
 * FIEMAP through filefrag), every write updates its cells when it is submitted, and cells it
 * does not know (write-zeroes over part of a cell, or no allocation map on this filesystem) are
 * scanned: read a window at a time and classified.
 * A hole costs no disk read and, read uncached, leaves no zero pages in the page cache (2 GiB of
 * holes: ~0.15 s uncached, ~0.7 s and 2 GiB of cache buffered). Ranges on fully allocated files
 * and on block devices are data without reading, as qemu-nbd reports them.
 *
 * Invariants:
 * - `zero` is reported only for cells known to read as zeroes (cell-states.ts), with held writes
 *   counted, as reads see them; "data" whenever that is not known. `hole` is never set: a scan
 *   cannot tell an unallocated block from an allocated one holding zeroes.
 * - The extents are consecutive from the requested offset; they may cover less than the request
 *   (the protocol lets a client ask again from where the reply ended), never more.
 */
import { invariant } from '../../../src-shared/errors';
import type { AllocationExtent } from '../block-export';
import { alignedSharedMemory } from '../env/aligned-memory';
import type { CellStates } from './cell-states';

/** Zero detection granularity: runs of zeroes shorter than this (or not aligned to it) count as data. */
export const ZERO_CELL = 64 << 10;
/** Bytes read per step (one read into aligned scratch memory). */
export const SCAN_WINDOW = 4 << 20;
/**
 * Bytes one block-status request reads at most (~5 ms of holes here); what it knows without
 * reading (fully allocated files, cells found zero before) it reports beyond that. nbdcopy asks
 * for extents in steps of this order; qemu asks with REQ_ONE and the scan stops at the first
 * change anyway.
 */
export const STATUS_SCAN_MAX = 64 << 20;

invariant(SCAN_WINDOW % ZERO_CELL === 0 && STATUS_SCAN_MAX % SCAN_WINDOW === 0, 'windows are whole cells, the scan whole windows');

const ZEROES = Buffer.alloc(ZERO_CELL);

/** Consecutive extents, merged by state, at most `max` of them. */
export class ExtentList {
  readonly extents: AllocationExtent[] = [];
  constructor(private readonly max: number) {
    invariant(max >= 1, 'a block-status reply has at least one extent');
  }

  /** Appends `length` bytes of the given state; false (nothing appended) when that needs extent max + 1. */
  push(length: number, zero: boolean): boolean {
    const last = this.extents[this.extents.length - 1];
    if (last && last.zero === zero) {
      last.length += length;
      return true;
    }
    if (this.extents.length >= this.max) return false;
    this.extents.push({ length, hole: false, zero });
    return true;
  }
}

/**
 * Classifies `buf` (the volume's bytes from volume offset `at`) cell by cell, cells aligned in
 * volume space (the first and last may be partial). Returns the bytes found to be data, or -1
 * when `out` filled up (the scan stops there: the cells pushed so far stand).
 */
export function classifyCells(buf: Buffer, at: number, out: ExtentList, observe?: (offset: number, length: number, zero: boolean) => void): number {
  let data = 0;
  let i = 0;
  while (i < buf.length) {
    const cellEnd = Math.min(buf.length, (Math.floor((at + i) / ZERO_CELL) + 1) * ZERO_CELL - at);
    const n = cellEnd - i;
    const zero = buf.subarray(i, cellEnd).equals(n === ZERO_CELL ? ZEROES : ZEROES.subarray(0, n));
    if (!out.push(n, zero)) return -1;
    if (!zero) data += n;
    observe?.(at + i, n, zero);
    i = cellEnd;
  }
  return data;
}

/** What a scan needs of its volume. */
export interface ScanTarget {
  /** What the volume knows of its cells (filled by this scan where it reads). */
  readonly cells: CellStates;
  /** Whether any of [pos, pos + length) lies on a device file with holes (elsewhere: data, unread). */
  onHoleyFiles(pos: number, length: number): boolean;
  /** Whether [pos, pos + length) was read or written lately (then it is likely cached). */
  cachedLately(pos: number, length: number): boolean;
  /** Reads what the volume's readers see there (held writes laid over), uncached where asked. */
  readVisible(pos: number, buf: Buffer, uncached: boolean): Promise<void>;
}

/**
 * Block status of [offset, offset + length): a window at a time, data where the volume has no
 * holes, known cells from `cells`, the rest read — uncached unless touched lately or right after
 * data (a client copying the volume reads that next) — and classified. Reads at most
 * STATUS_SCAN_MAX bytes and reports at most `maxExtents` extents, from offset. The next window is
 * read while this one is classified.
 */
export async function scanBlockStatus(t: ScanTarget, offset: number, length: number, maxExtents: number): Promise<AllocationExtent[]> {
  const out = new ExtentList(maxExtents);
  const end = offset + length;
  // Windows that need no read are answered at once, without a turn each (the usual case once a
  // volume knows its cells); from the first window that needs a read on, the loop below.
  let from = offset;
  let afterData = false;
  while (from < end) {
    const stop = Math.min(end, (Math.floor(from / SCAN_WINDOW) + 1) * SCAN_WINDOW);
    if (!t.onHoleyFiles(from, stop - from)) {
      if (!out.push(stop - from, false)) return out.extents;
      afterData = true;
      from = stop;
      continue;
    }
    const reached = t.cells.reportKnown(from, stop, out);
    if (reached < 0) return out.extents;
    afterData = false;
    if (reached < stop) {
      from = reached;
      break;
    }
    from = stop;
  }
  if (from >= end) return out.extents;
  let budget = STATUS_SCAN_MAX;
  const windows: Buffer[] = [];
  const free: Buffer[] = [];
  const issued: Promise<void>[] = [];
  type Step = { pos: number; stop: number; kind: 'data' | 'known' | 'read'; buf?: Buffer; window?: Buffer; done: Promise<void> };
  const none = Promise.resolve();
  /** The next window's step; null when it needs a read and the budget is spent. */
  const start = (pos: number): Step | null => {
    const stop = Math.min(end, (Math.floor(pos / SCAN_WINDOW) + 1) * SCAN_WINDOW);
    if (!t.onHoleyFiles(pos, stop - pos)) return { pos, stop, kind: 'data', done: none };
    if (t.cells.known(pos, stop - pos)) return { pos, stop, kind: 'known', done: none };
    if (budget < stop - pos) return null; // never more than STATUS_SCAN_MAX read per request
    budget -= stop - pos;
    let window = free.pop();
    if (!window) windows.push((window = takeScanWindow()));
    const buf = window.subarray(0, stop - pos);
    const done = t.readVisible(pos, buf, !afterData && !t.cachedLately(pos, buf.length));
    // A read ahead may fail while the window before it is classified: handled when its turn comes.
    done.catch(() => undefined);
    issued.push(done);
    return { pos, stop, kind: 'read', buf, window, done };
  };
  const observe = (o: number, n: number, zero: boolean) => (zero ? t.cells.observedZero(o, n) : t.cells.observedData(o, n));
  try {
    for (let cur = start(from)!; ; ) {
      const next = cur.stop < end ? start(cur.stop) : null;
      await cur.done;
      let more: boolean;
      if (cur.kind === 'read') {
        const data = classifyCells(cur.buf!, cur.pos, out, observe);
        free.push(cur.window!);
        more = data >= 0;
        afterData = data > 0;
      } else if (cur.kind === 'known') {
        more = t.cells.report(cur.pos, cur.stop - cur.pos, out);
        afterData = false;
      } else {
        more = out.push(cur.stop - cur.pos, false);
        afterData = true;
      }
      if (!more || !next) break;
      cur = next;
    }
  } finally {
    // A window goes back only once no read is landing in it.
    await Promise.allSettled(issued);
    for (const w of windows) giveScanWindow(w);
  }
  return out.extents;
}

/** Scratch windows (aligned, so uncached reads can land in them), reused across scans. */
const spare: Buffer[] = [];
const SPARE_MAX = 4;

export function takeScanWindow(): Buffer {
  return spare.pop() ?? Buffer.from(alignedSharedMemory(SCAN_WINDOW), 0, SCAN_WINDOW);
}

export function giveScanWindow(b: Buffer): void {
  if (spare.length < SPARE_MAX) spare.push(b);
}
