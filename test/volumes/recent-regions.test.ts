import { describe, expect, it } from 'vitest';
import { RecentRegions } from '../../src-main/engine/volumes/recent-regions';

const MiB = 1 << 20;

describe('RecentRegions (what a backup guesses is in the page cache)', () => {
  it('remembers touched regions for the window, to the second, and nothing else', () => {
    let t = 5_000;
    const r = new RecentRegions(64 * MiB, () => t, 4 * MiB);
    expect(r.recent(0, 64 * MiB, 60_000), 'nothing touched yet').toBe(false);
    r.touch(4 * MiB - 1, 2); // straddles regions 0 and 1
    expect(r.recent(0, 4096, 60_000)).toBe(true);
    expect(r.recent(4 * MiB, 4096, 60_000)).toBe(true);
    expect(r.recent(8 * MiB, 4 * MiB, 60_000), 'an untouched neighbour').toBe(false);
    expect(r.recent(8 * MiB - 4096, 8192, 60_000), 'a range reaching into a touched region').toBe(true);
    t += 59_000;
    expect(r.recent(0, 4096, 60_000)).toBe(true);
    t += 2_000;
    expect(r.recent(0, 4096, 60_000), 'older than the window').toBe(false);
    r.touch(8 * MiB, 0);
    expect(r.recent(8 * MiB, 4 * MiB, 60_000), 'an empty touch touches nothing').toBe(false);
  });

  it('grows when a touch reaches past its size (a volume that grew)', () => {
    const r = new RecentRegions(4 * MiB, () => 0, 4 * MiB);
    r.touch(40 * MiB, 4096);
    expect(r.recent(40 * MiB, 1, 1000)).toBe(true);
    expect(r.recent(0, 40 * MiB, 1000)).toBe(false);
    expect(r.recent(100 * MiB, 4096, 1000), 'past every touch').toBe(false);
  });
});
