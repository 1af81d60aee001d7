/**
 * Metadata range set: collects byte ranges while a filesystem is probed, then freezes them
 * into a sorted, non-overlapping, merged list that answers "does this write touch metadata?"
 * by binary search. Invariant of a frozen set: starts[i] < ends[i] <= starts[i+1] is false
 * for adjacent entries — i.e. ends[i] < starts[i+1] (touching ranges are merged), so one
 * binary search decides an overlap in O(log n) on the write hot path.
 */
import { HoldfastError } from '../../../src-shared/errors';

export interface ByteRange {
  offset: number;
  length: number;
}

/** Accumulates ranges in any order, clipped to the volume size; duplicates and overlaps are fine. */
export class RangeCollector {
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];

  constructor(readonly volumeSize: number) {}

  add(offset: number, length: number): void {
    if (!Number.isFinite(offset) || !Number.isFinite(length) || length <= 0) return;
    const start = Math.max(0, offset);
    const end = Math.min(this.volumeSize, offset + length);
    if (end <= start) return;
    this.starts.push(start);
    this.ends.push(end);
  }

  /** Number of ranges added so far (before merging): a cheap work bound for probes. */
  get rawCount(): number {
    return this.starts.length;
  }

  freeze(): FrozenRanges {
    const n = this.starts.length;
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    const s = this.starts;
    const e = this.ends;
    order.sort((a, b) => s[a]! - s[b]! || e[a]! - e[b]!);
    const starts: number[] = [];
    const ends: number[] = [];
    for (let k = 0; k < n; k++) {
      const i = order[k]!;
      const last = ends.length - 1;
      if (last >= 0 && s[i]! <= ends[last]!) {
        if (e[i]! > ends[last]!) ends[last] = e[i]!;
      } else {
        starts.push(s[i]!);
        ends.push(e[i]!);
      }
    }
    return new FrozenRanges(Float64Array.from(starts), Float64Array.from(ends));
  }
}

export class FrozenRanges {
  constructor(
    private readonly starts: Float64Array,
    private readonly ends: Float64Array,
  ) {
    for (let i = 0; i < starts.length; i++) {
      if (!(starts[i]! < ends[i]!) || (i > 0 && !(ends[i - 1]! < starts[i]!))) {
        throw new HoldfastError('INTERNAL', 'Metadata ranges are not sorted and merged; this is a bug in the filesystem probe.');
      }
    }
  }

  get count(): number {
    return this.starts.length;
  }

  /** Total bytes covered. */
  totalBytes(): number {
    let t = 0;
    for (let i = 0; i < this.starts.length; i++) t += this.ends[i]! - this.starts[i]!;
    return t;
  }

  /** True when [offset, offset+length) overlaps any range. Zero-length writes touch nothing. */
  overlaps(offset: number, length: number): boolean {
    if (length <= 0) return false;
    const end = offset + length;
    // Find the last range whose start is < end; it is the only candidate that can overlap
    // because ranges are disjoint and sorted (every earlier one ends before it starts).
    let lo = 0;
    let hi = this.starts.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.starts[mid]! < end) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found >= 0 && this.ends[found]! > offset;
  }

  toArray(): ByteRange[] {
    const out: ByteRange[] = new Array(this.starts.length);
    for (let i = 0; i < this.starts.length; i++) out[i] = { offset: this.starts[i]!, length: this.ends[i]! - this.starts[i]! };
    return out;
  }
}
