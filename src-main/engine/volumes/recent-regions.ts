/**
 * Which regions of a volume were read or written lately: the engine's guess at what of it the
 * page cache holds (Node cannot ask the kernel: no mincore). A backup reads the regions touched
 * within a window buffered — from the cache, no disk I/O — and the rest uncached (O_DIRECT), so
 * it leaves no readahead folios behind (on kernels with large folios they make later small
 * writes into them dearer) and evicts none of the user's cache. A wrong guess costs only
 * speed: both kinds of read return the same bytes.
 *
 * Invariant: stamps[k] is 0 (never touched) or 1 + the whole second, counted from this map's
 * creation, of the last touch of region k.
 */
import { invariant } from '../../../src-shared/errors';

/** Region size: the vault's chunk, the unit a full backup reads. */
export const RECENT_REGION_BYTES = 4 << 20;

/**
 * A region read or written this recently is taken to be in the page cache: a backup reads it
 * buffered (a cache hit costs a copy; an uncached read, disk I/O and writing back the range's
 * dirty pages first). Older regions are read uncached.
 */
export const CACHED_GUESS_MS = 60_000;

export class RecentRegions {
  private stamps: Uint32Array;
  private readonly epoch: number;

  /** `now`: a monotonic clock in ms (Env.monotonic). */
  constructor(
    size: number,
    private readonly now: () => number,
    private readonly regionBytes = RECENT_REGION_BYTES,
  ) {
    invariant(regionBytes > 0 && Number.isSafeInteger(size) && size >= 0, 'a region map has a size and a region length');
    this.stamps = new Uint32Array(Math.ceil(size / regionBytes));
    this.epoch = now();
  }

  /** Marks the regions of [offset, offset + length) as touched now. */
  touch(offset: number, length: number): void {
    if (length <= 0) return;
    const first = Math.floor(offset / this.regionBytes);
    const last = Math.floor((offset + length - 1) / this.regionBytes);
    if (last >= this.stamps.length) this.grow(last + 1);
    const stamp = 1 + Math.floor((this.now() - this.epoch) / 1000);
    for (let k = first; k <= last; k++) this.stamps[k] = stamp;
  }

  /** Whether any region of [offset, offset + length) was touched within the last `windowMs` (to the second). */
  recent(offset: number, length: number, windowMs: number): boolean {
    if (length <= 0) return false;
    const oldest = 1 + Math.floor((this.now() - this.epoch - windowMs) / 1000);
    const first = Math.floor(offset / this.regionBytes);
    const last = Math.min(this.stamps.length - 1, Math.floor((offset + length - 1) / this.regionBytes));
    for (let k = first; k <= last; k++) if (this.stamps[k]! !== 0 && this.stamps[k]! >= oldest) return true;
    return false;
  }

  /** The volume grew to `regions` regions (or a touch reached past the end). */
  private grow(regions: number): void {
    const next = new Uint32Array(regions);
    next.set(this.stamps);
    this.stamps = next;
  }
}
