/**
 * What a volume knows of the content of each ZERO_CELL cell — zero (reads as zeroes), data, or
 * nothing — so block status (zero-scan.ts) answers without reading the cell or asking the
 * filesystem again. In memory only: a volume opens knowing nothing.
 *
 * Invariants:
 * - A cell is known zero only if a write-zeroes covering it whole was the last write submitted
 *   to it, or an observation (a scan's read, the filesystem's allocation map) saw it read as
 *   zeroes while no data write to it was pending: a data write makes its cells data when it is
 *   submitted, and observations fill only cells still unknown when they report, so a write
 *   submitted while one ran is never overridden by what it saw before the write.
 * - Write-zeroes makes the cells it covers in part unknown (a scan will tell); a write that
 *   fails, or writes that leave the hold queue unlogged, make theirs data: "data" may stand for
 *   zeroes (always a correct answer in NBD), "zero" never stands for data.
 */
import { invariant } from '../../../src-shared/errors';
import type { ByteRange } from '../block-export';
import type { FileRange } from '../env/env';
import { BlockBitmap } from './block-bitmap';
import { ZERO_CELL, type ExtentList } from './zero-scan';

export class CellStates {
  private zero: BlockBitmap;
  private data: BlockBitmap;

  constructor(size: number) {
    this.zero = new BlockBitmap(size, ZERO_CELL);
    this.data = new BlockBitmap(size, ZERO_CELL);
  }

  /** A write with data was submitted (or a write failed and may have landed in part): its cells hold data. */
  written(offset: number, length: number): void {
    if (this.zero.anyIn(offset, length)) this.zero.unmark(offset, length);
    this.data.mark(offset, length);
  }

  /**
   * Write-zeroes or trim was submitted: the cells it covers whole read as zeroes from now on (a
   * read or block status racing the unfinished write may see either), the partly covered ones
   * may; a scan will tell. If the write fails, written() makes them data again.
   */
  zeroed(offset: number, length: number): void {
    if (this.data.anyIn(offset, length)) this.data.unmark(offset, length);
    this.observedZero(offset, length);
  }

  /** Every cell holds data (writes the journal failed to log left the hold queue). */
  allData(): void {
    this.zero.clear();
    this.data.markWhole(0, this.data.volumeSize);
  }

  /** The volume grew: the new cells are unknown, and so is the old last one if it was partial. */
  resize(size: number): void {
    const old = this.zero.volumeSize;
    this.zero = this.zero.resized(size);
    this.data = this.data.resized(size);
    if (old % ZERO_CELL !== 0) this.zero.unmark(old - 1, 1);
  }

  /** [offset, offset + length) read as zeroes: its whole cells (and the volume's partial last one) are zero, where unknown. */
  observedZero(offset: number, length: number): void {
    if (length <= 0) return;
    const first = Math.ceil(offset / ZERO_CELL);
    const end = offset + length;
    const last = end === this.zero.volumeSize ? this.zero.blocks - 1 : Math.floor(end / ZERO_CELL) - 1;
    for (let c = first; c <= last; c++) if (!this.data.has(c)) this.zero.setBlock(c);
  }

  /** [offset, offset + length) holds data: every cell it touches does, where unknown. */
  observedData(offset: number, length: number): void {
    if (length <= 0) return;
    const first = Math.floor(offset / ZERO_CELL);
    const last = Math.floor((offset + length - 1) / ZERO_CELL);
    for (let c = first; c <= last; c++) if (!this.zero.has(c)) this.data.setBlock(c);
  }

  /**
   * Learns from a device file's allocation map (BlockFile.allocation: allocated ranges in offset
   * order, the rest holes) for the volume's extents on that device: holes and unwritten ranges
   * are zero, allocated ranges data, where unknown.
   */
  learnFileMap(extents: ReadonlyArray<{ volumeOffset: number; deviceOffset: number; length: number }>, ranges: readonly FileRange[]): void {
    for (const e of extents) {
      const end = e.deviceOffset + e.length;
      const at = (pos: number) => e.volumeOffset + (pos - e.deviceOffset);
      let pos = e.deviceOffset;
      for (const r of ranges) {
        if (r.offset + r.length <= pos) continue;
        if (r.offset >= end) break;
        if (r.offset > pos) this.observedZero(at(pos), r.offset - pos);
        const from = Math.max(pos, r.offset);
        const stop = Math.min(end, r.offset + r.length);
        if (r.zero) this.observedZero(at(from), stop - from);
        else this.observedData(at(from), stop - from);
        pos = stop;
      }
      if (pos < end) this.observedZero(at(pos), end - pos);
    }
  }

  /** Whether every cell [offset, offset + length) touches is known. */
  known(offset: number, length: number): boolean {
    const first = Math.floor(offset / ZERO_CELL);
    const last = Math.floor((offset + length - 1) / ZERO_CELL);
    for (let c = first; c <= last; c++) if (!this.zero.has(c) && !this.data.has(c)) return false;
    return true;
  }

  /** Whether every cell [offset, offset + length) touches is known zero. */
  allZero(offset: number, length: number): boolean {
    if (length <= 0) return false;
    return this.zero.allIn(offset, length);
  }

  /** The parts of [offset, offset + length) in cells known zero, in offset order. */
  zeroRuns(offset: number, length: number): ByteRange[] {
    const runs: ByteRange[] = [];
    const end = offset + length;
    for (let pos = offset; pos < end; ) {
      const c = Math.floor(pos / ZERO_CELL);
      const stop = Math.min(end, (c + 1) * ZERO_CELL);
      if (this.zero.has(c)) {
        const last = runs[runs.length - 1];
        if (last && last.offset + last.length === pos) last.length += stop - pos;
        else runs.push({ offset: pos, length: stop - pos });
      }
      pos = stop;
    }
    return runs;
  }

  /**
   * Pushes the states of [offset, end) to `out` one run at a time, up to the first cell not
   * known: returns where it stopped (`end` when every cell was known, else the start of the
   * first unknown cell, cell-aligned), or -1 when `out` filled up. Nothing is pushed for the
   * unknown cell, so a scan can go on from there.
   */
  reportKnown(offset: number, end: number, out: ExtentList): number {
    const zero = this.zero.bits;
    const data = this.data.bits;
    let pos = offset;
    let c = Math.floor(pos / ZERO_CELL);
    let runStart = pos;
    let runZero = false;
    let inRun = false;
    while (pos < end) {
      const z = (zero[c >> 3]! >> (c & 7)) & 1;
      const known = z === 1 || ((data[c >> 3]! >> (c & 7)) & 1) === 1;
      if (!known) break;
      const isZero = z === 1;
      if (inRun && isZero !== runZero) {
        if (!out.push(pos - runStart, runZero)) return -1;
        runStart = pos;
      }
      runZero = isZero;
      inRun = true;
      c++;
      pos = Math.min(end, c * ZERO_CELL);
    }
    if (inRun && !out.push(pos - runStart, runZero)) return -1;
    return pos;
  }

  /** Pushes the known states of [offset, offset + length) to `out`; false when it filled up. */
  report(offset: number, length: number, out: ExtentList): boolean {
    invariant(this.known(offset, length), 'only known cells are reported');
    const end = offset + length;
    for (let pos = offset; pos < end; ) {
      const c = Math.floor(pos / ZERO_CELL);
      const stop = Math.min(end, (c + 1) * ZERO_CELL);
      if (!out.push(stop - pos, this.zero.has(c))) return false;
      pos = stop;
    }
    return true;
  }
}
