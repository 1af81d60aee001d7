/** BlockBitmap.forEachSet against has(): the incremental backup plans its reads from it. */
import { describe, expect, it } from 'vitest';
import { BlockBitmap } from '../../src-main/engine/volumes/block-bitmap';

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
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    for (let round = 0; round < 40; round++) {
      const blocks = 1 + Math.floor(rnd() * 200);
      const m = new BlockBitmap(blocks * 4096);
      const density = rnd();
      for (let b = 0; b < blocks; b++) if (rnd() < density) m.setBlock(b);
      // Some all-set and all-clear byte runs so the whole-byte path decides too.
      if (round % 3 === 0) for (let b = 8; b < Math.min(blocks, 40); b++) m.setBlock(b);
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
