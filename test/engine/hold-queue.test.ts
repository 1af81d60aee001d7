/**
 * The hold queue's region index against brute force over the list: after random pushes,
 * supersedes and removals (in any order, as range-policy releases do), the entries found by
 * region, the held cells of the UI block map and the overlay a read sees are exactly what a
 * walk over every queued entry gives.
 */
import { describe, expect, it } from 'vitest';
import { applyOverlay, HeldWrite, HoldQueue, regionSpan } from '../../src-main/engine/holds/hold-queue';
import { rng } from './helpers';

const MiB = 1 << 20;

/** Takes a random queued entry out of the queue and the test's list: any entry may leave (range releases are not in arrival order). */
function removeAny(q: HoldQueue, live: HeldWrite[], rand: () => number): void {
  const i = Math.floor(rand() * live.length);
  q.remove(live[i]!);
  live.splice(i, 1);
}

describe('hold queue region index', () => {
  it('lists the entries of more regions than it merges directly (sorted) in arrival order, each once', () => {
    const q = new HoldQueue(true);
    const live: HeldWrite[] = [];
    const rand = rng(99);
    for (let seq = 1; seq <= 4000; seq++) {
      // 64 regions; some writes straddle two of them.
      const off = rand() < 0.1 ? (1 + Math.floor(rand() * 63)) * MiB - 2048 : Math.floor(rand() * 64 * 256) * 4096;
      const w = new HeldWrite(seq, off, 4096, Buffer.alloc(4096, seq % 251), 0);
      q.push(w);
      live.push(w);
    }
    for (let i = 0; i < 1000; i++) q.remove(live.splice(Math.floor(rand() * live.length), 1)[0]!);
    expect(q.inRegions(Array.from({ length: 64 }, (_, r) => r))).toEqual(live);
    const some = [1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 41, 45, 49, 53, 57, 61, 62, 63, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34];
    expect(q.inRegions(some)).toEqual(live.filter((w) => { const [a, b] = regionSpan(w.offset, w.length); return some.some((r) => r >= a && r <= b); }));
  });


  it('finds by region, marks held cells and overlays reads exactly as a walk of the list would', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const rand = rng(seed);
      const size = 24 * MiB;
      const q = new HoldQueue(true);
      const live: HeldWrite[] = [];
      let seq = 0;
      for (let step = 0; step < 3000; step++) {
        if (rand() < 0.65 || live.length === 0) {
          const len = rand() < 0.8 ? (1 + Math.floor(rand() * 8)) * 512 : (1 + Math.floor(rand() * 4096)) * 512;
          const off = Math.min(size - len, rand() < 0.3 ? (1 + Math.floor(rand() * 22)) * MiB - Math.floor(rand() * 8) * 512 : Math.floor(rand() * (size / 512)) * 512);
          const data = rand() < 0.1 ? null : Buffer.alloc(len, ++seq % 251);
          const w = new HeldWrite(++seq, off, len, data, 0);
          q.push(w);
          live.push(w);
        } else removeAny(q, live, rand);
      }
      expect(q.count).toBe(live.length);

      // inRegions: every queued entry touching the regions, once, in arrival order.
      const regions = [0, 3, 4, 11, 23];
      const expected = live.filter((w) => {
        const [a, b] = regionSpan(w.offset, w.length);
        return regions.some((r) => r >= a && r <= b);
      });
      expect(q.inRegions(regions)).toEqual(expected);
      for (const r of [0, 4, 11]) {
        const one = live.filter((w) => {
          const [a, b] = regionSpan(w.offset, w.length);
          return r >= a && r <= b;
        });
        expect(q.inRegions([r]), `seed ${seed} region ${r} alone`).toEqual(one);
      }
      expect(q.inRegions([3, 4, 3]), 'a region named twice').toEqual(q.inRegions([3, 4]));
      expect(q.inRegions(Array.from({ length: 24 }, (_, r) => r)), 'every region (merged)').toEqual(live);

      // Held cells for cell sizes smaller than, equal to and larger than a region, aligned or not.
      for (const cellBytes of [4096, 12 * 1024, 512 * 1024, MiB, 1.5 * MiB, 3 * MiB, 24 * MiB]) {
        const got = new Set<number>();
        q.forEachHeldCell(cellBytes, (c) => got.add(c));
        const want = new Set<number>();
        for (const w of live) for (let c = Math.floor(w.offset / cellBytes); c <= Math.floor((w.offset + w.length - 1) / cellBytes); c++) want.add(c);
        expect([...got].sort((a, b) => a - b), `seed ${seed} cells of ${cellBytes}`).toEqual([...want].sort((a, b) => a - b));
      }

      // A read sees the queued writes in arrival order (superseded ones are covered by later ones).
      for (let k = 0; k < 20; k++) {
        const len = (1 + Math.floor(rand() * 4096)) * 512;
        const off = Math.floor(rand() * ((size - len) / 512)) * 512;
        const base = Buffer.alloc(len, 0xee);
        const got = Buffer.from(base);
        const overlays = q.overlayOf(off, len);
        if (overlays) applyOverlay(overlays, off, got);
        const want = Buffer.from(base);
        for (const w of live) {
          const s = Math.max(off, w.offset);
          const e = Math.min(off + len, w.offset + w.length);
          if (s >= e) continue;
          if (w.superseded) continue; // its data is gone; a later queued write covers all of it
          if (w.data) w.data.copy(want, s - off, s - w.offset, e - w.offset);
          else want.fill(0, s - off, e - off);
        }
        expect(got.equals(want), `seed ${seed} overlay at ${off}+${len}`).toBe(true);
      }
    }
  });

  it('supersedes exactly the writes a walk of the list would, whether its bucket is scanned or mapped', () => {
    // The rule, by brute force: a pushed write supersedes the newest queued, not superseded
    // entry that starts at its offset, if that entry is no longer than it. Buckets pass the
    // scan limit (128) in the busy region and map their offsets; elsewhere they stay small and
    // are scanned; some writes start inside a block another entry touches without sharing its offset.
    for (let seed = 1; seed <= 10; seed++) {
      const rand = rng(seed);
      const q = new HoldQueue(true);
      const live: HeldWrite[] = [];
      const want = new Set<HeldWrite>();
      let seq = 0;
      for (let step = 0; step < 4000; step++) {
        if (rand() < 0.8 || live.length === 0) {
          const hot = rand() < 0.5; // half of the writes go to 64 blocks of region 0
          const blocks = hot ? 64 : 4096;
          const off = Math.floor(rand() * blocks) * 4096 + (rand() < 0.1 ? 512 : 0);
          // One length per offset: every rewrite covers the write before it, so the newest entry at
          // an offset is the only one not superseded (the map forgets older ones once it leaves).
          const len = (off / 512) % 5 === 0 ? 8192 : 4096;
          const w = new HeldWrite(++seq, off, len, Buffer.alloc(len, seq % 251), 0);
          let older: HeldWrite | null = null;
          for (let i = live.length - 1; i >= 0; i--) {
            const x = live[i]!;
            if (x.offset === off && !want.has(x)) {
              older = x;
              break;
            }
          }
          if (older && older.length <= len) want.add(older);
          q.push(w);
          live.push(w);
        } else removeAny(q, live, rand);
        if (step % 500 === 499) q.confirm(seq);
      }
      const wrong = live.filter((w) => w.superseded !== want.has(w));
      expect(wrong.length, `seed ${seed}: ${wrong.length} of ${live.length} entries with the wrong superseded flag`).toBe(0);
      expect(want.size, `seed ${seed}: rewrites happened`).toBeGreaterThan(100);
    }
  });

  it('a rewrite supersedes the previous write at its offset however many writes to the region came between', () => {
    const q = new HoldQueue(true);
    const data = Buffer.alloc(4096, 1);
    const hot: HeldWrite[] = [];
    let seq = 0;
    for (let round = 0; round < 10; round++) {
      const w = new HeldWrite(++seq, 8192, 4096, Buffer.alloc(4096, round), 0);
      q.push(w);
      hot.push(w);
      // 300 writes to other blocks of the same 1 MiB region between rewrites (past the scan limit).
      for (let k = 0; k < 300; k++) q.push(new HeldWrite(++seq, (16 + (k % 200)) * 4096, 4096, data, 0));
    }
    expect(hot.slice(0, -1).every((w) => w.superseded && w.data === null)).toBe(true);
    expect(hot[hot.length - 1]!.superseded).toBe(false);
    // Releasing the newest one (as a drain would, after the older no-ops) leaves nothing at the offset to supersede.
    for (const w of hot) q.remove(w);
    const again = new HeldWrite(++seq, 8192, 4096, data, 0);
    q.push(again);
    expect(again.superseded).toBe(false);
    const overlay = Buffer.alloc(4096);
    applyOverlay(q.overlayOf(8192, 4096)!, 8192, overlay);
    expect(overlay.equals(data)).toBe(true);
  });
});
