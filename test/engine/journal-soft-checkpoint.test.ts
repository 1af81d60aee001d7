/**
 * A journal filling up under a steady writer: a checkpoint starts once it is 3/4 full (at a
 * segment switch), so writes do not stop to wait for space while it syncs the device.
 */
import { describe, expect, it } from 'vitest';
import { BackupSession } from '../../src-main/engine/backup/backup-session';
import type { VolumeJournal } from '../../src-main/engine/journal/journal';
import { noProbe, openTestVolume, pattern, useTempDirs } from './helpers';

const mk = useTempDirs();

describe('journal space under a steady writer', () => {
  it('a checkpoint frees space before the journal is full: no write waits for space', async () => {
    const dir = mk();
    // Intent records are 40 bytes: with 64 KiB segments a 1 MiB journal fills after ~26k writes,
    // and the checkpoint at 3/4 has ~6.5k writes' time to finish.
    const t = await openTestVolume(dir, 'vol', 8 << 20, { capacity: 1 << 20, segmentBytes: 64 << 10 });
    const journal = (t.vol as unknown as { journal: VolumeJournal }).journal;
    let waits = 0;
    const waitForSpace = journal.waitForSpace.bind(journal);
    journal.waitForSpace = (n: number) => {
      waits++;
      return waitForSpace(n);
    };
    let peak = 0;
    for (let i = 0; i < 60_000; i += 32) {
      const batch: Promise<void>[] = [];
      for (let k = 0; k < 32; k++) batch.push(t.vol.write(((i + k) % 2048) * 4096, pattern((i + k) & 0xff, 4096)));
      await Promise.all(batch);
      peak = Math.max(peak, journal.liveBytes);
      // A steady writer (~30k writes/s), not a flood: the checkpoint's syncs run meanwhile.
      await new Promise((r) => setTimeout(r, 1));
    }
    expect(waits).toBe(0);
    expect(peak).toBeLessThan(1 << 20);
    expect(journal.liveBytes).toBeLessThan(1 << 20);
    await t.vol.close();
  });

  it('no checkpoint while a backup’s oldest held write pins every segment (it would sync the device and free nothing)', async () => {
    const dir = mk();
    const t = await openTestVolume(dir, 'vol', 8 << 20, { capacity: 1 << 20, segmentBytes: 64 << 10 });
    const journal = (t.vol as unknown as { journal: VolumeJournal }).journal;
    const vol = t.vol as unknown as { checkpoint: (force?: boolean) => Promise<void> };
    const checkpoint = vol.checkpoint.bind(t.vol);
    let checkpoints = 0;
    vol.checkpoint = (force) => {
      checkpoints++;
      return checkpoint(force);
    };
    const s = await BackupSession.begin(t.vol, 'b', 'volume', noProbe);
    // ~4.1 KiB data records: 220 of them fill ~90 % of the journal, all held.
    for (let i = 0; i < 220; i += 20) await Promise.all(Array.from({ length: 20 }, (_, k) => t.vol.write((i + k) * 4096, pattern(i + k, 4096))));
    expect(journal.liveBytes).toBeGreaterThan(0.85 * (1 << 20));
    expect(checkpoints).toBe(0);
    await s.end('snap');
    expect(checkpoints).toBe(1); // the release's own
    expect(journal.liveBytes).toBeLessThan(64 << 10);
    await t.vol.close();
  });
});
