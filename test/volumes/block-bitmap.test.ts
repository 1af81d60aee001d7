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
