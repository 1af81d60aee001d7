/**
 * Byte-granular access over a sector-granular BlockExport, so the server can advertise a
 * minimum block size of 1 like qemu-nbd does for files (clients such as nbdfuse pass
 * debugfs's sub-sector superblock updates straight through). Unaligned reads are widened
 * and sliced; unaligned writes and write-zeroes become read-modify-write of the edge sectors.
 *
 * Invariant: a read-modify-write never overlaps another in-flight write on the same export
 * (from any connection): every write registers its sector range in the export's
 * WriteRanges, and an RMW waits for overlapping writes — and they for it — so no RMW can
 * write back stale bytes over a neighbour's completed write. Aligned writes only pay for a
 * Set insert/delete while no RMW is active.
 */
import type { BlockExport, ByteRange } from '../engine/block-export';
import { invariant } from '../../src-shared/errors';

interface Range {
  start: number;
  end: number;
  rmw: boolean;
  waiters: Array<() => void> | null;
}

class WriteRanges {
  private readonly active = new Set<Range>();
  private rmwActive = 0;

  /** Registers the range at once when nothing overlapping blocks it; null when the caller must wait. */
  tryAcquire(start: number, end: number, rmw: boolean): Range | null {
    if (rmw || this.rmwActive > 0) {
      for (const o of this.active) if ((rmw || o.rmw) && o.start < end && start < o.end) return null;
    }
    const r: Range = { start, end, rmw, waiters: null };
    this.active.add(r);
    if (rmw) this.rmwActive++;
    return r;
  }

  async acquire(start: number, end: number, rmw: boolean): Promise<Range> {
    for (;;) {
      const r = this.tryAcquire(start, end, rmw);
      if (r) return r;
      let blocker: Range | null = null;
      for (const o of this.active) {
        if ((rmw || o.rmw) && o.start < end && start < o.end) {
          blocker = o;
          break;
        }
      }
      if (blocker) await new Promise<void>((resolve) => (blocker.waiters ??= []).push(resolve));
    }
  }

  release(r: Range): void {
    this.active.delete(r);
    if (r.rmw) this.rmwActive--;
    const w = r.waiters;
    r.waiters = null;
    if (w) for (const f of w) f();
  }
}

const rangesByExport = new WeakMap<BlockExport, WriteRanges>();
function rangesOf(ex: BlockExport): WriteRanges {
  let r = rangesByExport.get(ex);
  if (!r) {
    r = new WriteRanges();
    rangesByExport.set(ex, r);
  }
  return r;
}

function alignDown(v: number, a: number): number {
  return v - (v % a);
}
function alignUp(v: number, a: number): number {
  const r = v % a;
  return r === 0 ? v : v + (a - r);
}

/** Caller has checked offset + length ≤ size. */
export async function readAny(ex: BlockExport, offset: number, length: number): Promise<Buffer> {
  const ss = ex.sectorSize;
  if (offset % ss === 0 && length % ss === 0) return ex.read(offset, length);
  const start = alignDown(offset, ss);
  const end = Math.min(alignUp(offset + length, ss), ex.size());
  const buf = await ex.read(start, end - start);
  return buf.subarray(offset - start, offset - start + length);
}

/** A piece of a read's reply: bytes, or null for zeroes sent as a hole. */
export interface ReadPart {
  offset: number;
  length: number;
  data: Buffer | null;
  /** The pooled memory `data` lies in, to give back once sent. */
  mem?: Buffer;
}

/**
 * Reads [offset, offset + length) except `holes` (sorted ranges inside it that read as zeroes):
 * the parts in offset order, together exactly the range; the pieces between holes are read at
 * once, into `pool` memory where the export reads into the caller's memory.
 */
export async function readAround(
  ex: BlockExport,
  offset: number,
  length: number,
  holes: readonly ByteRange[],
  pool: { take(length: number): Buffer },
): Promise<ReadPart[]> {
  const parts: ReadPart[] = [];
  const reads: Promise<void>[] = [];
  const ss = ex.sectorSize;
  const data = (from: number, to: number) => {
    const part: ReadPart = { offset: from, length: to - from, data: null };
    parts.push(part);
    if (ex.readInto && from % ss === 0 && to % ss === 0) {
      const mem = pool.take(to - from);
      const view = mem.subarray(0, to - from);
      reads.push(
        ex.readInto(from, view).then(() => {
          part.data = view;
          part.mem = mem;
        }),
      );
    } else
      reads.push(
        readAny(ex, from, to - from).then((b) => {
          part.data = b;
        }),
      );
  };
  let pos = offset;
  for (const h of holes) {
    invariant(h.offset >= pos && h.length > 0 && h.offset + h.length <= offset + length, 'holes are sorted, apart and inside the read');
    if (h.offset > pos) data(pos, h.offset);
    parts.push({ offset: h.offset, length: h.length, data: null });
    pos = h.offset + h.length;
  }
  if (pos < offset + length) data(pos, offset + length);
  await Promise.all(reads);
  return parts;
}

function withRange<T>(ex: BlockExport, offset: number, length: number, rmw: boolean, fn: () => Promise<T>): Promise<T> {
  const ss = ex.sectorSize;
  const ranges = rangesOf(ex);
  const start = alignDown(offset, ss);
  const end = alignUp(offset + length, ss);
  // Fast path (no await) for the common case: nothing overlapping needs waiting for.
  const r = ranges.tryAcquire(start, end, rmw);
  if (r) return runHolding(ranges, r, fn);
  return ranges.acquire(start, end, rmw).then((held) => runHolding(ranges, held, fn));
}

function runHolding<T>(ranges: WriteRanges, r: Range, fn: () => Promise<T>): Promise<T> {
  let p: Promise<T>;
  try {
    p = fn();
  } catch (e) {
    ranges.release(r);
    return Promise.reject(e);
  }
  return p.then(
    (v) => {
      ranges.release(r);
      return v;
    },
    (e: unknown) => {
      ranges.release(r);
      throw e;
    },
  );
}

/** The aligned buffer covering [offset, offset+data.length) with data merged over the current contents. */
async function merged(ex: BlockExport, offset: number, data: Buffer): Promise<[number, Buffer]> {
  const ss = ex.sectorSize;
  const start = alignDown(offset, ss);
  const end = alignUp(offset + data.length, ss);
  const out = Buffer.allocUnsafe(end - start);
  const headSector = await ex.read(start, ss);
  headSector.copy(out, 0);
  if (end - ss > start) {
    const tailSector = await ex.read(end - ss, ss);
    tailSector.copy(out, end - ss - start);
  }
  data.copy(out, offset - start);
  return [start, out];
}

/** `stable`: the caller never changes data afterwards (the export may keep it without a copy). */
export function writeAny(ex: BlockExport, offset: number, data: Buffer, fua: boolean, stable = false): Promise<void> {
  const ss = ex.sectorSize;
  const aligned = offset % ss === 0 && data.length % ss === 0;
  if (aligned) return withRange(ex, offset, data.length, false, () => ex.write(offset, data, { fua, stable }));
  return withRange(ex, offset, data.length, true, async () => {
    const [start, buf] = await merged(ex, offset, data);
    return ex.write(start, buf, { fua, stable: true });
  });
}

export function writeZeroesAny(ex: BlockExport, offset: number, length: number, opts: { fua: boolean; noHole: boolean }): Promise<void> {
  const ss = ex.sectorSize;
  const aligned = offset % ss === 0 && length % ss === 0;
  return withRange(ex, offset, length, !aligned, async () => {
    if (aligned) return ex.writeZeroes(offset, length, opts);
    const innerStart = alignUp(offset, ss);
    const innerEnd = alignDown(offset + length, ss);
    if (innerEnd <= innerStart) {
      // Within one or two sectors: a single read-modify-write.
      const [start, buf] = await merged(ex, offset, Buffer.alloc(length));
      return ex.write(start, buf, { fua: opts.fua });
    }
    if (innerStart > offset) {
      const [s, b] = await merged(ex, offset, Buffer.alloc(innerStart - offset));
      await ex.write(s, b, { fua: opts.fua });
    }
    await ex.writeZeroes(innerStart, innerEnd - innerStart, opts);
    if (offset + length > innerEnd) {
      const [s, b] = await merged(ex, innerEnd, Buffer.alloc(offset + length - innerEnd));
      await ex.write(s, b, { fua: opts.fua });
    }
  });
}

/** Trim is advisory: only the whole sectors inside the range are trimmed. */
export function trimAny(ex: BlockExport, offset: number, length: number): Promise<void> {
  const ss = ex.sectorSize;
  const start = alignUp(offset, ss);
  const end = alignDown(offset + length, ss);
  if (end <= start) return Promise.resolve();
  return withRange(ex, start, end - start, false, () => ex.trim(start, end - start));
}
