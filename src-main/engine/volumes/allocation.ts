/**
 * Extent allocation: pure functions from (devices, extents in use, wanted size) to linear
 * extents. No I/O, no catalog — the volume manager commits what these return.
 *
 * Invariants (property-tested in test/volumes/allocation.test.ts):
 * - no two extents overlap on a device, and every extent lies inside its device's data area
 *   [dataStart, dataStart + floor((size - dataStart) / 4096) * 4096);
 * - a volume's extents are contiguous in volume space, start at 0, and sum to its size;
 * - every offset and length is a multiple of 4096 (BLOCK).
 * Placement: one free range that holds the whole volume if there is one (first fit), else
 * spanning free ranges in device order; starts are aligned to 1 MiB when that does not cost
 * the space needed, otherwise packed at 4 KiB.
 */
import { BLOCK, type Extent } from '../../../src-shared/contract';
import { HoldfastError, invariant } from '../../../src-shared/errors';
import { formatSize } from '../../../src-shared/sizes';

export const EXTENT_ALIGN = 1024 * 1024;

export interface AllocDevice {
  id: number;
  size: number;
  dataStart: number;
}

/** An extent in use on a device; volumeOffset is not needed here. */
export type UsedExtent = Pick<Extent, 'deviceId' | 'deviceOffset' | 'length'>;

export interface FreeRange {
  deviceId: number;
  offset: number;
  length: number;
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

export function dataEnd(d: AllocDevice): number {
  return d.dataStart + Math.max(0, Math.floor((d.size - d.dataStart) / BLOCK) * BLOCK);
}

/** Maximal free ranges of each device, in device order then offset order. */
export function freeRanges(devices: AllocDevice[], used: UsedExtent[]): FreeRange[] {
  const out: FreeRange[] = [];
  for (const d of devices) {
    const mine = used.filter((e) => e.deviceId === d.id).sort((a, b) => a.deviceOffset - b.deviceOffset);
    let cursor = alignUp(d.dataStart, BLOCK);
    const end = dataEnd(d);
    for (const e of mine) {
      if (e.deviceOffset > cursor) out.push({ deviceId: d.id, offset: cursor, length: Math.min(e.deviceOffset, end) - cursor });
      cursor = Math.max(cursor, e.deviceOffset + e.length);
    }
    if (end > cursor) out.push({ deviceId: d.id, offset: cursor, length: end - cursor });
  }
  return out.filter((r) => r.length > 0);
}

export function freeBytes(devices: AllocDevice[], used: UsedExtent[]): number {
  return freeRanges(devices, used).reduce((s, r) => s + r.length, 0);
}

function orderDevices(devices: AllocDevice[], preferred?: number[]): AllocDevice[] {
  if (!preferred?.length) return devices;
  const rank = (id: number) => {
    const i = preferred.indexOf(id);
    return i < 0 ? preferred.length : i;
  };
  return [...devices].sort((a, b) => rank(a.id) - rank(b.id));
}

function noSpace(needed: number, free: number): HoldfastError {
  return new HoldfastError(
    'NO_SPACE',
    `Not enough free space: ${formatSize(needed)} needed, ${formatSize(free)} free on the devices. Add a device or pick a smaller size.`,
    { needed, free },
  );
}

/** Takes `size` bytes from ranges, optionally aligning each start to `align`. null if they do not hold it. */
function take(ranges: FreeRange[], size: number, startOffset: number, align: number): Extent[] | null {
  const out: Extent[] = [];
  let remaining = size;
  for (const r of ranges) {
    if (remaining === 0) break;
    const start = alignUp(r.offset, align);
    const avail = r.offset + r.length - start;
    if (avail <= 0) continue;
    const len = Math.min(avail, remaining);
    out.push({ volumeOffset: startOffset + size - remaining, deviceId: r.deviceId, deviceOffset: start, length: len });
    remaining -= len;
  }
  return remaining === 0 ? out : null;
}

/**
 * Linear extents for a new volume of `size` bytes (multiple of 4096), volume offsets from
 * `startOffset` (0 for a new volume). Devices in preferredDeviceIds are used first, in that order.
 * Throws NO_SPACE with {needed, free}.
 */
export function allocate(devices: AllocDevice[], used: UsedExtent[], size: number, preferredDeviceIds?: number[], startOffset = 0): Extent[] {
  invariant(Number.isSafeInteger(size) && size > 0 && size % BLOCK === 0, `allocation size ${size} is a positive multiple of ${BLOCK}`);
  const ranges = freeRanges(orderDevices(devices, preferredDeviceIds), used);
  // 1. a single free range holding all of it, 1 MiB aligned
  for (const r of ranges) {
    const one = take([r], size, startOffset, EXTENT_ALIGN);
    if (one) return one;
  }
  // 2. spanning ranges with aligned starts, 3. packed at 4 KiB
  const result = take(ranges, size, startOffset, EXTENT_ALIGN) ?? take(ranges, size, startOffset, BLOCK);
  if (!result) throw noSpace(size, ranges.reduce((s, r) => s + r.length, 0));
  return result;
}

/**
 * The full extent list of a volume grown from its `current` extents to `newSize`: the last
 * extent is extended in place when the space right after it is free, the rest is allocated
 * like a new volume. `used` includes the volume's own current extents.
 */
export function grow(devices: AllocDevice[], used: UsedExtent[], current: Extent[], newSize: number, preferredDeviceIds?: number[]): Extent[] {
  const curSize = current.reduce((s, e) => s + e.length, 0);
  invariant(newSize % BLOCK === 0 && newSize > curSize, `grow target ${newSize} is a multiple of ${BLOCK} above ${curSize}`);
  let extra = newSize - curSize;
  const out = current.map((e) => ({ ...e }));
  const usedNow: UsedExtent[] = used.map((e) => ({ ...e }));
  const last = out[out.length - 1];
  if (last && devices.some((d) => d.id === last.deviceId)) {
    const end = last.deviceOffset + last.length;
    const after = freeRanges(
      devices.filter((d) => d.id === last.deviceId),
      usedNow,
    ).find((r) => r.offset === end);
    if (after) {
      const add = Math.min(after.length, extra);
      last.length += add;
      extra -= add;
      usedNow.push({ deviceId: last.deviceId, deviceOffset: end, length: add });
    }
  }
  if (extra === 0) return out;
  const pref = preferredDeviceIds ?? [...new Set(current.map((e) => e.deviceId))];
  let more: Extent[];
  try {
    more = allocate(devices, usedNow, extra, pref, newSize - extra);
  } catch (e) {
    if (e instanceof HoldfastError && e.code === 'NO_SPACE') throw noSpace(newSize - curSize, freeBytes(devices, used));
    throw e;
  }
  return mergeAdjacent([...out, ...more]);
}

/** Joins extents that continue each other on the same device. */
export function mergeAdjacent(extents: Extent[]): Extent[] {
  const out: Extent[] = [];
  for (const e of extents) {
    const p = out[out.length - 1];
    if (p && p.deviceId === e.deviceId && p.deviceOffset + p.length === e.deviceOffset && p.volumeOffset + p.length === e.volumeOffset) p.length += e.length;
    else out.push({ ...e });
  }
  return out;
}

/** Asserts the invariants above for a whole set of volumes; throws INTERNAL naming the first broken one. */
export function checkLayout(devices: AllocDevice[], volumes: Array<{ size: number; extents: Extent[] }>): void {
  const byDev = new Map<number, UsedExtent[]>();
  for (const v of volumes) {
    let off = 0;
    for (const e of v.extents) {
      invariant(e.volumeOffset === off, `extent at volume offset ${e.volumeOffset} follows ${off}`);
      invariant(e.length > 0 && e.length % BLOCK === 0 && e.deviceOffset % BLOCK === 0, 'extent is block aligned and non-empty');
      const d = devices.find((x) => x.id === e.deviceId);
      invariant(d, `extent device ${e.deviceId} exists`);
      invariant(e.deviceOffset >= d.dataStart && e.deviceOffset + e.length <= dataEnd(d), `extent inside device ${d.id} data area`);
      off += e.length;
      byDev.set(e.deviceId, [...(byDev.get(e.deviceId) ?? []), e]);
    }
    invariant(off === v.size, `extents sum ${off} to volume size ${v.size}`);
  }
  for (const [id, list] of byDev) {
    list.sort((a, b) => a.deviceOffset - b.deviceOffset);
    for (let i = 1; i < list.length; i++)
      invariant(list[i - 1]!.deviceOffset + list[i - 1]!.length <= list[i]!.deviceOffset, `extents do not overlap on device ${id}`);
  }
}
