import { describe, expect, test, vi } from 'vitest';
import { snapshotAgeOrder } from '../../src-main/engine/vault/format';

describe('snapshot age order', () => {
  test('oldest first by creation time, then by id in code-unit order, without the locale collator', () => {
    const spy = vi.spyOn(String.prototype, 'localeCompare');
    try {
      const snaps = [
        { id: 'b', createdAt: '2026-12-06T01:00:00.000Z' },
        { id: 'a', createdAt: '2026-12-06T01:00:00.000Z' },
        { id: 'B', createdAt: '2026-12-06T01:00:00.000Z' },
        { id: 'z', createdAt: '2026-12-05T23:59:59.999Z' },
        { id: 'c', createdAt: '2026-12-06T01:00:00.001Z' },
      ];
      expect(snaps.sort(snapshotAgeOrder).map((s) => s.id)).toEqual(['z', 'B', 'a', 'b', 'c']);
      expect(snapshotAgeOrder(snaps[1]!, snaps[1]!)).toBe(0);
      // A locale collator would put 'a' before 'B'; the engine's order must not depend on one.
      expect(spy).not.toHaveBeenCalled();
    } finally {
      spy.mockRestore();
    }
  });
});
