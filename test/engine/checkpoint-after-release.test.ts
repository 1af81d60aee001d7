/**
 * The checkpoint after a backup's release runs later (CHECKPOINT_AFTER_RELEASE_MS), so the
 * kernel's own writeback gets the released pages to disk first: until then the released writes
 * stay journaled, and nothing a person or recovery relies on waits for it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BackupSession } from '../../src-main/engine/backup/backup-session';
import { noProbe, openTestVolume, pattern, readImage, useTempDirs } from './helpers';

const mk = useTempDirs();
const MiB = 1 << 20;

function segments(dir: string, name = 'vol'): number {
  return fs.readdirSync(path.join(dir, `journal-${name}`)).filter((n) => n.endsWith('.log')).length;
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A whole-volume backup that holds `mib` MiB of 64 KiB writes (patterns 1, 2, …), then ends. */
async function heldRound(t: Awaited<ReturnType<typeof openTestVolume>>, id: string, mib: number, tag: number): Promise<BackupSession> {
  const s = await BackupSession.begin(t.vol, id, 'volume', noProbe);
  const w: Promise<void>[] = [];
  for (let i = 0; i < mib * 16; i++) w.push(t.vol.write(i * 65536, pattern((tag + i) & 0xff, 65536)));
  await Promise.all(w);
  expect(t.vol.holdState().heldCount).toBe(mib * 16);
  return s;
}

describe('checkpoint after a release', () => {
  it('waits, keeping the released writes journaled, then drops their segments', async () => {
    const dir = mk();
    const t = await openTestVolume(dir, 'vol', 8 * MiB, { checkpointAfterReleaseMs: 400 });
    const s = await heldRound(t, 'b1', 4, 1);
    const held = t.vol.holdState().journalBytes;
    expect(held).toBeGreaterThan(4 * MiB);
    const ended = Date.now();
    await s.end('snap-1');
    // Released: on the device, out of the queue; still journaled until the checkpoint.
    expect(t.vol.holdState().heldCount).toBe(0);
    expect(readImage(t.imagePath, 65536 * 5, 65536).equals(pattern(6, 65536))).toBe(true);
    expect(t.vol.holdState().journalBytes).toBeGreaterThanOrEqual(held);
    const files = segments(dir);
    expect(files).toBeGreaterThanOrEqual(3);
    await until(() => t.vol.holdState().journalBytes < MiB);
    expect(Date.now() - ended).toBeGreaterThanOrEqual(350);
    expect(segments(dir)).toBeLessThan(files);
    await t.vol.close();
  });

  it('is skipped while another backup holds writes; that backup’s release checkpoints in turn', async () => {
    const dir = mk();
    const t = await openTestVolume(dir, 'vol', 8 * MiB, { checkpointAfterReleaseMs: 300 });
    await (await heldRound(t, 'b1', 3, 1)).end('snap-1');
    const s2 = await heldRound(t, 'b2', 1, 9);
    await new Promise((r) => setTimeout(r, 600)); // b1's checkpoint would have run by now
    expect(t.vol.holdState().journalBytes).toBeGreaterThan(4 * MiB);
    await s2.end('snap-2');
    await until(() => t.vol.holdState().journalBytes < MiB);
    await t.vol.close();
  });

  it('a crash before it loses nothing: reopening replays the journal, the writes stay applied and the next backup can be incremental', async () => {
    const dir = mk();
    const t = await openTestVolume(dir, 'vol', 8 * MiB, { checkpointAfterReleaseMs: 60_000 });
    await t.vol.write(6 * MiB, pattern(0x66, 4096)); // before the backup: in snap-1
    await (await heldRound(t, 'b1', 2, 3)).end('snap-1');
    await t.vol.write(7 * MiB, pattern(0x77, 4096)); // after the backup: changed since snap-1
    await t.vol.abandon(); // killed before the checkpoint
    const { vol, report } = await t.reopen();
    expect(report.interruptedBackupId).toBeNull();
    expect(report.recordsScanned).toBeGreaterThan(32);
    for (const i of [0, 17, 31]) expect(readImage(t.imagePath, i * 65536, 65536).equals(pattern((3 + i) & 0xff, 65536))).toBe(true);
    const { map, parentSnapshotId } = vol.changedSinceParent();
    expect(parentSnapshotId).toBe('snap-1');
    expect(map.allIn(7 * MiB, 4096)).toBe(true);
    expect(map.allIn(0, 2 * MiB)).toBe(true); // written while snap-1 was taken: not in it
    expect(map.allIn(6 * MiB, 4096)).toBe(false); // in snap-1
    expect(vol.holdState().journalBytes).toBeLessThan(MiB); // open checkpoints
    await vol.close();
  });

  it('close() checkpoints at once instead of waiting', async () => {
    const dir = mk();
    const t = await openTestVolume(dir, 'vol', 8 * MiB, { checkpointAfterReleaseMs: 60_000 });
    await (await heldRound(t, 'b1', 3, 1)).end('snap-1');
    const files = segments(dir);
    expect(files).toBeGreaterThanOrEqual(3);
    await t.vol.close();
    expect(segments(dir)).toBeLessThan(files);
  });
});
