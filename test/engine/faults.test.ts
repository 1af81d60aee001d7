import { describe, expect, it } from 'vitest';
import { BackupSession } from '../../src-main/engine/backup/backup-session';
import { alignedSharedMemory } from '../../src-main/engine/env/aligned-memory';
import { FaultyEnv } from '../../src-main/engine/env/faulty-env';
import { NodeEnv } from '../../src-main/engine/env/node-env';
import { noProbe, openTestVolume, pattern, readImage, useTempDirs } from './helpers';

const mk = useTempDirs();

describe('faults injected through the Env', () => {
  it('an EIO on the device fails that write with IO_ERROR and the volume keeps working', async () => {
    const env = new FaultyEnv(new NodeEnv());
    const t = await openTestVolume(mk(), 'vol', 8 << 20, { env });
    env.inject({ op: 'write', path: '.img', error: 'EIO' });
    await expect(t.vol.write(0, pattern(1, 4096))).rejects.toMatchObject({ code: 'IO_ERROR' });
    await t.vol.write(0, pattern(2, 4096));
    expect(readImage(t.imagePath, 0, 4096).equals(pattern(2, 4096))).toBe(true);
    // The failed write's range is marked changed (its intent is journaled), so the next incremental re-reads it.
    expect(t.vol.changedSinceParent().map.has(0)).toBe(true);
    await t.vol.close();
  });

  it('a full journal disk fails the write with NO_SPACE before anything reaches the device', async () => {
    const env = new FaultyEnv(new NodeEnv());
    const t = await openTestVolume(mk(), 'vol', 8 << 20, { env });
    env.inject({ op: 'write', path: 'journal', error: 'ENOSPC', tornAt: 17 });
    await expect(t.vol.write(8192, pattern(3, 4096))).rejects.toMatchObject({ code: 'NO_SPACE' });
    expect(readImage(t.imagePath, 8192, 4096).equals(pattern(0, 4096))).toBe(true);
    await t.vol.write(8192, pattern(4, 4096));
    await t.vol.abandon();
    await t.file.close();
    const r = await t.reopen();
    expect(r.report.discarded).toBeNull(); // the torn bytes were overwritten by the next record
    expect((await r.vol.read(8192, 4096)).equals(pattern(4, 4096))).toBe(true);
    await r.vol.close();
  });

  it("an EIO on a backup's uncached read fails that read; the next read and the held writes are unharmed", async () => {
    const env = new FaultyEnv(new NodeEnv());
    const t = await openTestVolume(mk(), 'vol', 8 << 20, { env });
    await t.vol.write(0, pattern(1, 1 << 20));
    const s = await BackupSession.begin(t.vol, 'b', 'volume', noProbe);
    await t.vol.write(0, pattern(2, 4096)); // held: the image keeps pattern 1
    const target = Buffer.from(alignedSharedMemory(1 << 20), 0, 1 << 20); // aligned: the uncached path
    env.inject({ op: 'read', path: '.img', error: 'EIO' });
    await expect(s.readInto(0, target)).rejects.toMatchObject({ code: 'EIO' });
    await s.readInto(0, target);
    expect(target.equals(pattern(1, 1 << 20)), 'the point-in-time image').toBe(true);
    expect((await t.vol.read(0, 4096)).equals(pattern(2, 4096)), 'reads see the held write').toBe(true);
    await s.end('snap');
    expect(readImage(t.imagePath, 0, 4096).equals(pattern(2, 4096)), 'released to the device').toBe(true);
    await t.vol.close();
  });

  it('a crash after N bytes mid-backup loses no acknowledged held write', async () => {
    const d = mk();
    const env = new FaultyEnv(new NodeEnv());
    const t = await openTestVolume(d, 'vol', 8 << 20, { env });
    await BackupSession.begin(t.vol, 'b', 'volume', noProbe);
    for (let i = 0; i < 8; i++) await t.vol.write(i * 4096, pattern(i + 1, 4096));
    await t.vol.flush();
    env.crashAfter(6000); // the next record lands torn; nothing after it
    await t.vol.write(64 << 10, pattern(9, 8192)).catch(() => undefined);
    await t.vol.write(128 << 10, pattern(10, 4096)).catch(() => undefined);
    await t.vol.abandon();
    await t.file.close();
    // Reopen on a healthy disk, as after a reboot.
    const real = await openTestVolume(d, 'vol', 8 << 20, { bootId: 'boot-1' });
    for (let i = 0; i < 8; i++) expect((await real.vol.read(i * 4096, 4096)).equals(pattern(i + 1, 4096))).toBe(true);
    const tail = await real.vol.read(64 << 10, 8192);
    expect(tail.equals(pattern(9, 8192)) || tail.equals(pattern(0, 8192))).toBe(true);
    expect(real.vol.holdState().backupFlag).toBe(false);
    await real.vol.close();
  });

  it('a device error while releasing keeps the held writes queued and visible, and recovery applies them', async () => {
    const d = mk();
    const env = new FaultyEnv(new NodeEnv());
    const t = await openTestVolume(d, 'vol', 8 << 20, { env });
    const s = await BackupSession.begin(t.vol, 'b', 'volume', noProbe);
    await t.vol.write(0, pattern(0x31, 4096));
    await t.vol.write(4096, pattern(0x32, 4096));
    env.inject({ op: 'write', path: '.img', error: 'EIO', times: Infinity });
    await expect(s.end('snap')).rejects.toMatchObject({ code: 'IO_ERROR' });
    expect(t.vol.holdState().heldCount).toBe(2);
    expect((await t.vol.read(0, 8192)).equals(Buffer.concat([pattern(0x31, 4096), pattern(0x32, 4096)]))).toBe(true);
    await t.vol.abandon();
    await t.file.close();
    const r = await openTestVolume(d, 'vol', 8 << 20);
    expect(readImage(r.imagePath, 0, 8192).equals(Buffer.concat([pattern(0x31, 4096), pattern(0x32, 4096)]))).toBe(true);
    await r.vol.close();
  });

  it('a journal that cannot be read back fails the reads and the release that need a held write, and loses none', async () => {
    const d = mk();
    const env = new FaultyEnv(new NodeEnv());
    const t = await openTestVolume(d, 'vol', 8 << 20, { env });
    const s = await BackupSession.begin(t.vol, 'b', 'volume', noProbe);
    await t.vol.write(0, pattern(0x51, 4096));
    await t.vol.write(1 << 20, pattern(0x52, 8192));
    env.inject({ op: 'read', path: 'journal', error: 'EIO', times: Infinity });
    // A read that overlays a held write needs its bytes from the journal: it fails, with a code.
    await expect(t.vol.read(0, 4096)).rejects.toMatchObject({ code: 'IO_ERROR' });
    // One that overlays none does not touch the journal.
    expect((await t.vol.read(2 << 20, 4096)).equals(Buffer.alloc(4096))).toBe(true);
    await expect(s.end('snap')).rejects.toMatchObject({ code: 'IO_ERROR' });
    expect(t.vol.holdState().heldCount).toBe(2);
    expect(readImage(t.imagePath, 0, 4096).equals(Buffer.alloc(4096))).toBe(true);
    // The journal reads again: the next backup's begin writes them first.
    env.clear();
    expect((await t.vol.read(0, 4096)).equals(pattern(0x51, 4096))).toBe(true);
    const s2 = await BackupSession.begin(t.vol, 'b2', 'range', noProbe);
    expect(t.vol.holdState()).toMatchObject({ backupFlag: true, heldCount: 0 });
    expect(readImage(t.imagePath, 0, 4096).equals(pattern(0x51, 4096))).toBe(true);
    expect(readImage(t.imagePath, 1 << 20, 8192).equals(pattern(0x52, 8192))).toBe(true);
    await s2.end('snap-2');
    // A held write when the process dies: recovery replays it from the journal.
    await BackupSession.begin(t.vol, 'b3', 'volume', noProbe);
    await t.vol.write(4096, pattern(0x53, 4096));
    expect(t.vol.holdState().heldCount).toBe(1);
    await t.vol.abandon();
    await t.file.close();
    const r = await openTestVolume(d, 'vol', 8 << 20);
    expect((await r.vol.read(0, 8192)).equals(Buffer.concat([pattern(0x51, 4096), pattern(0x53, 4096)]))).toBe(true);
    await r.vol.close();
  });

  it('a backup cannot begin over writes a failed release left held; once the device takes them, its image has them', async () => {
    const env = new FaultyEnv(new NodeEnv());
    const t = await openTestVolume(mk(), 'vol', 8 << 20, { env });
    const s = await BackupSession.begin(t.vol, 'b1', 'volume', noProbe);
    await t.vol.write(0, pattern(0x41, 4096));
    await t.vol.write(1 << 20, pattern(0x42, 8192));
    env.inject({ op: 'write', path: '.img', error: 'EIO', times: Infinity });
    await expect(s.end('snap-1')).rejects.toMatchObject({ code: 'IO_ERROR' });
    expect(t.vol.holdState().heldCount).toBe(2);
    // The device still refuses them: the next backup does not begin (its image would miss them).
    const refused = BackupSession.begin(t.vol, 'b2', 'range', noProbe);
    await expect(refused).rejects.toMatchObject({ code: 'IO_ERROR' });
    await expect(refused).rejects.toThrow(/cannot begin: 2 writes held since the last backup/);
    expect(t.vol.holdState()).toMatchObject({ backupFlag: false, heldCount: 2 });
    // The device recovers: begin writes them first, and the point-in-time image has them.
    env.clear();
    const s2 = await BackupSession.begin(t.vol, 'b3', 'range', noProbe);
    expect(t.vol.holdState()).toMatchObject({ backupFlag: true, heldCount: 0 });
    expect((await t.vol.readPointInTime(0, 4096)).equals(pattern(0x41, 4096))).toBe(true);
    expect((await t.vol.readPointInTime(1 << 20, 8192)).equals(pattern(0x42, 8192))).toBe(true);
    expect(readImage(t.imagePath, 0, 4096).equals(pattern(0x41, 4096))).toBe(true);
    await s2.end('snap-3');
    await t.vol.close();
  });
});
