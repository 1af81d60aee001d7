/** BlockBitmap.forEachSet against has(): the incremental backup plans its reads from it. */
import { describe, expect, it } from 'vitest';
import { BlockBitmap } from '../../src-main/engine/volumes/block-bitmap';

/** A repeatable pseudo-random source in [0, 1] (linear congruential), so a failing map can be replayed. */
function seededRandom(seed: number): () => number {
  return () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
}

describe('BlockBitmap.forEachSet', () => {
  it('visits exactly the set blocks, ascending, for sparse, dense and edge patterns', () => {
    const size = 1000 * 4096 + 4096 * 3; // 1003 blocks: the last byte of the map is partial
    const patterns: number[][] = [
      [],
      [0],
      [1002],
      [0, 7, 8, 15, 16, 1001, 1002],
      Array.from({ length: 1003 }, (_, i) => i),
      Array.from({ length: 1003 }, (_, i) => i).filter((i) => (i * 2654435761) % 97 < 3),
    ];
    for (const set of patterns) {
      const m = new BlockBitmap(size);
      for (const b of set) m.setBlock(b);
      const seen: number[] = [];
      m.forEachSet((b) => seen.push(b));
      expect(seen).toEqual([...set].sort((a, b) => a - b));
      expect(seen.every((b) => m.has(b))).toBe(true);
      expect(seen.length).toBe(m.count());
    }
  });
});

describe('BlockBitmap.allIn / anyIn', () => {
  it('agree with a block-by-block check for every span over random maps (byte fast path included)', () => {
    const rnd = seededRandom(7);
    for (let round = 0; round < 60; round++) {
      const blocks = 1 + Math.floor(rnd() * 400);
      const m = new BlockBitmap(blocks * 4096);
      const density = rnd();
      for (let b = 0; b < blocks; b++) if (rnd() < density) m.setBlock(b);
      // Some all-set byte and word runs so the whole-byte and whole-word paths decide too.
      if (round % 3 === 0) for (let b = 8; b < Math.min(blocks, 40); b++) m.setBlock(b);
      if (round % 3 === 1) for (let b = 3; b < Math.min(blocks, 150); b++) if (b !== 131 || round % 2) m.setBlock(b);
      for (let k = 0; k < 200; k++) {
        const first = Math.floor(rnd() * blocks);
        const n = 1 + Math.floor(rnd() * (blocks - first));
        let all = true;
        let any = false;
        for (let b = first; b < first + n; b++) {
          if (m.has(b)) any = true;
          else all = false;
        }
        // Unaligned byte offsets touch the same blocks as the aligned span.
        const off = first * 4096 + (k % 2 ? 512 : 0);
        const len = n * 4096 - (k % 2 ? 1024 : 0);
        expect(m.allIn(off, len)).toBe(all);
        expect(m.anyIn(off, len)).toBe(any);
      }
    }
  });
});

describe('BlockBitmap.count', () => {
  it('counts set blocks a word at a time, with byte tails, and on maps whose bytes do not start word-aligned', () => {
    const rnd = seededRandom(11);
    for (let round = 0; round < 50; round++) {
      const blocks = 1 + Math.floor(rnd() * 1000);
      const nBytes = Math.ceil(blocks / 8);
      // Every other map sits at an odd offset of a larger buffer: no word view, bytes only.
      const bits = round % 2 ? new Uint8Array(new ArrayBuffer(nBytes + 3), 1, nBytes) : undefined;
      const m = new BlockBitmap(blocks * 4096, 4096, bits);
      const density = [0, 1, rnd()][round % 3]!;
      let expected = 0;
      for (let b = 0; b < blocks; b++) {
        if (rnd() < density || density === 1) {
          m.setBlock(b);
          expected++;
        }
      }
      expect(m.count()).toBe(expected);
      expect(m.clone().count()).toBe(expected);
    }
  });
});
