/**
 * Schedules in a real engine with a real vault folder: a scheduled run produces a snapshot
 * whose bytes are the volume's, retention prunes, catch-up after a restart runs once, the
 * vault folder appearing triggers a run, a busy volume is skipped, and bad input is refused by
 * the contract router with clear codes and nothing saved.
 */
import { describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Schedule } from '../../src-shared/contract';
import { Engine } from '../../src-main/engine/engine';
import { NodeEnv } from '../../src-main/engine/env/node-env';
import { createRouter } from '../../src-main/host/router';
import { useTempDirs } from '../engine/helpers';

const mk = useTempDirs();
const SIZE = 8 << 20;

class ShiftedEnv extends NodeEnv {
  constructor(private readonly shiftMs: number) {
    super();
  }
  override now(): number {
    return Date.now() + this.shiftMs;
  }
}

async function setup(d: string, env?: NodeEnv) {
  const e = await Engine.open({ dataDir: path.join(d, 'data'), env });
  if (!(await e.api['device.list']({})).length) {
    await e.api['device.add']({ path: path.join(d, 'disk.img'), create: true, size: 64 << 20 });
    await e.api['volume.create']({ name: 'work', size: SIZE });
    await e.api['vault.init']({ dir: path.join(d, 'usb', 'vault') });
  }
  return e;
}

async function restoredBytes(e: Engine, d: string, vault: string, id: string): Promise<Buffer> {
  const out = path.join(d, `restored-${id}.img`);
  await e.api['restore.start']({ id, vault, toFile: out });
  return fs.readFileSync(out);
}

describe('schedules in the engine', () => {
  it('a scheduled run makes a snapshot equal to the volume, and retention keeps the last two', async () => {
    const d = mk();
    const e = await setup(d);
    try {
      const vault = path.join(d, 'usb', 'vault');
      const router = createRouter(e.api);
      const created = await router.call('schedule.create', { target: { kind: 'volume', volume: 'work' }, frequency: { every: 'day', at: '03:00' }, vault, retention: { keepLast: 2 } });
      expect(created.ok).toBe(true);
      const s = (created as { result: Schedule }).result;
      const data = crypto.randomBytes(1 << 20);
      const ids: string[] = [];
      let full = '';
      for (let i = 0; i < 3; i++) {
        data[i] = 0xa0 + i;
        await e.volume('work').write(0, data);
        // Before the third run, a full backup by hand: the scheduled incremental builds on it, so the
        // first chain (runs 1 and 2) is no longer needed by a kept snapshot and retention can drop it.
        if (i === 2) full = (await e.api['backup.start']({ volume: 'work', vault, full: true })).snapshotId!;
        const r = await e.api['schedule.runNow']({ id: s.id, wait: true });
        expect(r.lastRun, r.lastRun?.error ?? '').toMatchObject({ trigger: 'manual', status: 'completed', error: null });
        ids.push(r.lastRun!.snapshotId!);
        expect(r.lastRun!.pruned).toBe(i < 2 ? 0 : 2);
      }
      const snaps = await e.api['snapshot.list']({ vault });
      expect(snaps.map((x) => x.id).sort()).toEqual([full, ids[2]!].sort());
      const bytes = await restoredBytes(e, d, vault, ids[2]!);
      expect(bytes.length).toBe(SIZE);
      expect(bytes.subarray(0, data.length).equals(data)).toBe(true);
      // The scheduled backup is an ordinary backup in the history.
      const b = (await e.api['backup.list']({})).find((x) => x.snapshotId === ids[2]);
      expect(b).toMatchObject({ volume: 'work', state: 'completed', vault });
    } finally {
      await e.close();
    }
  });

  it('a drive schedule images the drive (here an image file) into the vault and restores byte for byte', async () => {
    const d = mk();
    const e = await setup(d);
    try {
      const vault = path.join(d, 'usb', 'vault');
      const drive = path.join(d, 'stick.img');
      const content = crypto.randomBytes(3 << 20);
      fs.writeFileSync(drive, content);
      const s = await e.api['schedule.create']({ target: { kind: 'drive', drive }, frequency: { every: 'week', weekday: 6, at: '09:00' }, vault, retention: { keepLast: 3 } });
      expect(s.target).toEqual({ kind: 'drive', drive });
      const r = await e.api['schedule.runNow']({ id: s.id, wait: true });
      expect(r.lastRun, r.lastRun?.error ?? '').toMatchObject({ status: 'completed', pruned: 0 });
      expect(r.lastRun!.backupId).toMatch(/^img-/);
      const [snap] = await e.api['snapshot.list']({ vault });
      expect(snap).toMatchObject({ id: r.lastRun!.snapshotId, volume: 'drive-stick.img' });
      expect((await restoredBytes(e, d, vault, snap!.id)).equals(content)).toBe(true);
    } finally {
      await e.close();
    }
  });

  it('catches up once after the engine was off past several due times', async () => {
    const d = mk();
    let e = await setup(d);
    const vault = path.join(d, 'usb', 'vault');
    const s = await e.api['schedule.create']({ target: { kind: 'volume', volume: 'work' }, frequency: { every: 'hour', minute: 0 }, vault });
    await e.close();
    // Four hours later.
    e = await setup(d, new ShiftedEnv(4 * 3_600_000 + 60_000));
    try {
      e.startScheduler();
      await e.scheduler.idle();
      const [after] = await e.api['schedule.list']({});
      expect(after!.lastRun, after!.lastRun?.error ?? '').toMatchObject({ trigger: 'catch-up', status: 'completed' });
      expect(Date.parse(after!.nextRunAt!)).toBeGreaterThan(Date.now() + 4 * 3_600_000);
      expect(await e.api['snapshot.list']({ vault })).toHaveLength(1);
      await e.scheduler.tick();
      await e.scheduler.idle();
      expect(await e.api['snapshot.list']({ vault })).toHaveLength(1);
      expect(after!.id).toBe(s.id);
    } finally {
      await e.close();
    }
  });

  it('runs when the vault folder comes back (the backup drive is plugged in)', async () => {
    const d = mk();
    const e = await setup(d);
    try {
      const vault = path.join(d, 'usb', 'vault');
      await e.api['schedule.create']({ target: { kind: 'volume', volume: 'work' }, onPlugIn: true, vault, retention: { keepDaily: 7 } });
      e.startScheduler();
      await e.scheduler.idle();
      fs.renameSync(path.join(d, 'usb'), path.join(d, 'usb-unplugged'));
      await e.scheduler.tick();
      expect((await e.api['schedule.list']({}))[0]!.vaultPresent).toBe(false);
      fs.renameSync(path.join(d, 'usb-unplugged'), path.join(d, 'usb'));
      await e.scheduler.tick();
      await e.scheduler.idle();
      const [s] = await e.api['schedule.list']({});
      expect(s!.lastRun, s!.lastRun?.error ?? '').toMatchObject({ trigger: 'plug-in', status: 'completed' });
      expect(s!.vaultPresent).toBe(true);
      expect(await e.api['snapshot.list']({ vault })).toHaveLength(1);
    } finally {
      await e.close();
    }
  });

  it('skips a run while the volume is already being backed up, and records a failure when the vault is gone', async () => {
    const d = mk();
    const e = await setup(d);
    try {
      const vault = path.join(d, 'usb', 'vault');
      const s = await e.api['schedule.create']({ target: { kind: 'volume', volume: 'work' }, frequency: { every: 'day', at: '03:00' }, vault });
      const session = await e.beginBackup('work', 'range', 'bk-held-open');
      const skipped = await e.api['schedule.runNow']({ id: s.id, wait: true });
      expect(skipped.lastRun).toMatchObject({ status: 'skipped', backupId: null });
      expect(skipped.lastRun!.error).toMatch(/already being backed up/);
      await session.abort('test over');
      fs.rmSync(path.join(d, 'usb'), { recursive: true });
      const failed = await e.api['schedule.runNow']({ id: s.id, wait: true });
      expect(failed.lastRun).toMatchObject({ status: 'failed', snapshotId: null });
      expect(failed.lastRun!.error).toMatch(/vault/i);
      expect(failed.vaultPresent).toBe(false);
    } finally {
      await e.close();
    }
  });

  it('refuses bad input with clear codes and saves nothing; deleting the volume deletes its schedules', async () => {
    const d = mk();
    const e = await setup(d);
    try {
      const router = createRouter(e.api);
      const vault = path.join(d, 'usb', 'vault');
      const tries: Array<[unknown, string, RegExp]> = [
        [{ target: { kind: 'volume', volume: 'work' }, frequency: { every: 'day', at: '25:00' } }, 'INVALID_ARGUMENT', /HH:MM/],
        [{ target: { kind: 'volume', volume: 'work' }, frequency: { every: 'day', at: '2:30' } }, 'INVALID_ARGUMENT', /HH:MM/],
        [{ target: { kind: 'volume', volume: 'work' }, frequency: { every: 'hour', minute: 60 } }, 'INVALID_ARGUMENT', /0–59/],
        [{ target: { kind: 'volume', volume: 'work' }, frequency: { every: 'week', weekday: 7, at: '10:00' } }, 'INVALID_ARGUMENT', /Sunday/],
        [{ target: { kind: 'volume', volume: 'work' } }, 'INVALID_ARGUMENT', /Say when to back up/],
        [{ target: { kind: 'volume', volume: 'work' }, onPlugIn: true, retention: { keepLast: -1 } }, 'INVALID_ARGUMENT', /negative/],
        [{ target: { kind: 'volume', volume: 'nope' }, onPlugIn: true, vault }, 'NOT_FOUND', /no volume "nope"/],
        [{ target: { kind: 'volume', volume: 'work' }, onPlugIn: true, vault: path.join(d, 'missing') }, 'VAULT_MISSING', /No vault folder/],
        [{ target: { kind: 'drive', drive: path.join(d, 'no-such.img') }, onPlugIn: true, vault }, 'DEVICE_MISSING', /no file or drive/],
      ];
      for (const [input, code, msg] of tries) {
        const r = await router.call('schedule.create', input);
        expect(r.ok, JSON.stringify(input)).toBe(false);
        if (!r.ok) {
          expect(r.error.code, r.error.message).toBe(code);
          expect(r.error.message).toMatch(msg);
        }
      }
      await e.api['vault.init']({ dir: path.join(d, 'secret'), passphrase: 'pw' });
      const enc = await router.call('schedule.create', { target: { kind: 'volume', volume: 'work' }, onPlugIn: true, vault: path.join(d, 'secret') });
      expect(enc.ok ? null : enc.error.code).toBe('NOT_AVAILABLE');
      expect(await e.api['schedule.list']({})).toEqual([]);

      await e.api['schedule.create']({ target: { kind: 'volume', volume: 'work' }, onPlugIn: true, vault });
      expect(await e.api['schedule.list']({})).toHaveLength(1);
      await e.api['volume.delete']({ name: 'work' });
      expect(await e.api['schedule.list']({})).toEqual([]);
    } finally {
      await e.close();
    }
  });
});
