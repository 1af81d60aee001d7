/**
 * The scheduler with a fake clock and a fake engine side (real catalog in a temp file): when
 * it runs, what it records, catch-up once, plug-in, skip when busy, retention after a run, and
 * validation that leaves nothing half-saved.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import path from 'node:path';
import type { Backup, EventName, HoldPolicy, Retention } from '../../src-shared/contract';
import { HoldfastError } from '../../src-shared/errors';
import { Catalog } from '../../src-main/engine/catalog/catalog';
import { EngineEvents } from '../../src-main/engine/events';
import { fixedOffsetCalendar } from '../../src-main/engine/schedule/next-due';
import { Scheduler, type SchedulerClock, type SchedulerHost } from '../../src-main/engine/schedule/scheduler';
import { useTempDirs } from '../engine/helpers';

const mk = useTempDirs();
const T0 = Date.parse('2025-03-10T01:00:00Z'); // a Monday
const MIN = 60_000;
const HOUR = 60 * MIN;

class FakeClock implements SchedulerClock {
  t = T0;
  timers: Array<{ ms: number; fn: () => void }> = [];
  now = () => this.t;
  every(ms: number, fn: () => void) {
    const e = { ms, fn };
    this.timers.push(e);
    return () => (this.timers = this.timers.filter((x) => x !== e));
  }
}

interface Harness {
  catalog: Catalog;
  clock: FakeClock;
  host: SchedulerHost & { backups: Array<{ volume: string; vault: string; policy: HoldPolicy }>; prunes: Array<{ vault: string; volume: string; retention: Retention }> };
  scheduler: Scheduler;
  events: Array<{ name: EventName; payload: unknown }>;
  vaults: Set<string>;
  busy: Set<string>;
  fail: { next: HoldfastError | null };
  release: { next: Promise<void> | null };
  api: ReturnType<Scheduler['ops']>;
}

let h: Harness;

function harness(): Harness {
  const dir = mk();
  const catalog = Catalog.open(path.join(dir, 'catalog.db'));
  const dev = catalog.addDevice({ path: path.join(dir, 'disk.img'), kind: 'image', size: 1 << 20, dataStart: 0, labelUuid: null });
  catalog.createVolume('work', 4096, 'journal', false, [{ volumeOffset: 0, deviceId: dev.id, deviceOffset: 0, length: 4096 }]);
  catalog.createVolume('photos', 4096, 'journal', false, [{ volumeOffset: 0, deviceId: dev.id, deviceOffset: 4096, length: 4096 }]);
  const clock = new FakeClock();
  const ev = new EngineEvents();
  const events: Harness['events'] = [];
  ev.onAny((name, payload) => events.push({ name, payload }));
  const vaults = new Set(['/media/usb/vault', '/data/vault']);
  const busy = new Set<string>();
  const fail: Harness['fail'] = { next: null };
  const release: Harness['release'] = { next: null };
  let n = 0;
  const host: Harness['host'] = {
    store: catalog.schedules,
    events: ev,
    defaultVault: '/data/vault',
    backups: [],
    prunes: [],
    volumeId(name) {
      const v = catalog.getVolume(name);
      if (!v) throw new HoldfastError('NOT_FOUND', `There is no volume "${name}".`);
      return v.id;
    },
    volumeName: (id) => catalog.getVolume(id)?.name ?? null,
    isBackingUp: (v) => busy.has(v),
    async checkVault(d) {
      if (!vaults.has(d)) throw new HoldfastError('VAULT_MISSING', `No vault folder at ${d}.`);
    },
    async checkDrive(d) {
      if (d !== 'sdb') throw new HoldfastError('DEVICE_MISSING', `There is no file or drive at /dev/${d}.`);
      return '/dev/sdb';
    },
    vaultPresent: async (d) => vaults.has(d),
    async backupVolume(volume, vault, policy): Promise<Backup> {
      host.backups.push({ volume, vault, policy });
      if (release.next) await release.next;
      const f = fail.next;
      fail.next = null;
      if (f) throw f;
      n++;
      return { id: `bk-${n}`, volume, policy, vault, state: 'completed', kind: 'full', startedAt: '', endedAt: '', bytesDone: 1, bytesTotal: 1, snapshotId: `snap-${n}`, error: null };
    },
    async imageDrive(drive) {
      n++;
      return { snapshotId: `img-snap-${n}`, volume: `drive-${path.basename(drive)}`, backupId: `img-${n}` };
    },
    async prune(vault, volume, retention) {
      host.prunes.push({ vault, volume, retention });
      return 2;
    },
  };
  const scheduler = new Scheduler(host, { clock, calendar: fixedOffsetCalendar(0), pollMs: 5000 });
  return { catalog, clock, host, scheduler, events, vaults, busy, fail, release, api: scheduler.ops() };
}

beforeEach(() => {
  h = harness();
});
afterEach(async () => {
  h.scheduler.stop();
  await h.scheduler.idle();
  h.catalog.close();
});

const advance = async (ms: number) => {
  h.clock.t += ms;
  await h.scheduler.tick();
  await h.scheduler.idle();
};
const start = async () => {
  h.scheduler.start();
  await h.scheduler.idle();
};
const list = () => h.api['schedule.list']({});

describe('scheduler', () => {
  it('stores a schedule with its next run in local time and lists it with its vault present', async () => {
    const s = await h.api['schedule.create']({ target: { kind: 'volume', volume: 'work' }, frequency: { every: 'day', at: '02:30' }, vault: '/media/usb/vault', retention: { keepLast: 3 } });
    expect(s).toMatchObject({ target: { kind: 'volume', volume: 'work' }, frequency: { every: 'day', at: '02:30' }, onPlugIn: false, vault: '/media/usb/vault', policy: 'range', retention: { keepLast: 3 }, enabled: true, vaultPresent: true, lastRun: null });
    expect(s.nextRunAt).toBe('2025-03-10T02:30:00.000Z');
    expect(await list()).toEqual([s]);
    expect(h.events.map((e) => e.name)).toContain('schedules.changed');
  });

  it('runs when due, through the backup application, then prunes that volume by the retention', async () => {
    const s = await h.api['schedule.create']({ target: { kind: 'volume', volume: 'work' }, frequency: { every: 'day', at: '02:30' }, vault: '/media/usb/vault', policy: 'metadata', retention: { keepLast: 3, keepDaily: 7 } });
    await start();
    expect(h.host.backups).toEqual([]); // not due yet
    await advance(HOUR + 29 * MIN); // 02:29
    expect(h.host.backups).toEqual([]);
    await advance(MIN); // 02:30
    expect(h.host.backups).toEqual([{ volume: 'work', vault: '/media/usb/vault', policy: 'metadata' }]);
    expect(h.host.prunes).toEqual([{ vault: '/media/usb/vault', volume: 'work', retention: { keepLast: 3, keepDaily: 7 } }]);
    const [after] = await list();
    expect(after!.lastRun).toMatchObject({ trigger: 'time', status: 'completed', backupId: 'bk-1', snapshotId: 'snap-1', pruned: 2, error: null });
    expect(after!.nextRunAt).toBe('2025-03-11T02:30:00.000Z');
    const finished = h.events.filter((e) => e.name === 'schedule.finished');
    expect(finished).toHaveLength(1);
    expect(finished[0]!.payload).toMatchObject({ scheduleId: s.id, target: 'work', run: { status: 'completed', snapshotId: 'snap-1' } });
    await advance(5000);
    expect(h.host.backups).toHaveLength(1); // once per slot
  });

  it('catches up once at start when due times passed while the engine was not running', async () => {
    await h.api['schedule.create']({ target: { kind: 'volume', volume: 'work' }, frequency: { every: 'hour', minute: 0 } });
    // The engine is "off" for five hours: five slots pass.
    h.clock.t += 5 * HOUR + 10 * MIN;
    await start();
    expect(h.host.backups).toHaveLength(1);
    const [s] = await list();
    expect(s!.lastRun).toMatchObject({ trigger: 'catch-up', status: 'completed' });
    expect(s!.nextRunAt).toBe(new Date(Date.parse('2025-03-10T07:00:00Z')).toISOString());
    await advance(30 * MIN); // 06:40: nothing more
    expect(h.host.backups).toHaveLength(1);
    await advance(20 * MIN); // 07:00: the regular slot
    expect(h.host.backups).toHaveLength(2);
    expect((await list())[0]!.lastRun!.trigger).toBe('time');
  });

  it('runs when the backup drive is plugged in after being absent, not at the first look, and not while absent', async () => {
    h.vaults.delete('/media/usb/vault');
    h.vaults.add('/media/usb/vault');
    await h.api['schedule.create']({ target: { kind: 'volume', volume: 'photos' }, onPlugIn: true, vault: '/media/usb/vault' });
    await start();
    await advance(5000);
    expect(h.host.backups).toHaveLength(0); // present since creation: no edge
    h.vaults.delete('/media/usb/vault'); // unplugged
    await advance(5000);
    await advance(5000);
    expect(h.host.backups).toHaveLength(0);
    expect((await list())[0]!.vaultPresent).toBe(false);
    h.vaults.add('/media/usb/vault'); // plugged in again
    await advance(5000);
    expect(h.host.backups).toEqual([{ volume: 'photos', vault: '/media/usb/vault', policy: 'range' }]);
    expect((await list())[0]!.lastRun).toMatchObject({ trigger: 'plug-in', status: 'completed' });
    await advance(5000);
    expect(h.host.backups).toHaveLength(1);
  });

  it('a schedule whose vault is present at engine start does not run just because it was looked at', async () => {
    await h.api['schedule.create']({ target: { kind: 'volume', volume: 'photos' }, onPlugIn: true, vault: '/media/usb/vault' });
    const fresh = new Scheduler(h.host, { clock: h.clock, calendar: fixedOffsetCalendar(0) }); // as after a restart
    fresh.start();
    await fresh.idle();
    h.clock.t += 5000;
    await fresh.tick();
    await fresh.idle();
    expect(h.host.backups).toHaveLength(0);
    fresh.stop();
  });

  it('skips, and says why, when the volume is already being backed up', async () => {
    await h.api['schedule.create']({ target: { kind: 'volume', volume: 'work' }, frequency: { every: 'hour', minute: 30 } });
    await start();
    h.busy.add('work');
    await advance(30 * MIN);
    expect(h.host.backups).toHaveLength(0);
    const [s] = await list();
    expect(s!.lastRun).toMatchObject({ trigger: 'time', status: 'skipped', backupId: null });
    expect(s!.lastRun!.error).toMatch(/already being backed up/);
    expect(s!.nextRunAt).toBe('2025-03-10T02:30:00.000Z');
    const fin = h.events.filter((e) => e.name === 'schedule.finished').at(-1)!.payload as { run: { status: string } };
    expect(fin.run.status).toBe('skipped');
  });

  it('records a failed run with the engine’s message and keeps its schedule', async () => {
    await h.api['schedule.create']({ target: { kind: 'volume', volume: 'work' }, frequency: { every: 'hour', minute: 30 }, retention: { keepLast: 1 } });
    await start();
    h.fail.next = new HoldfastError('VAULT_MISSING', 'The vault folder /data/vault is gone. Is the drive still connected?');
    await advance(30 * MIN);
    const [s] = await list();
    expect(s!.lastRun).toMatchObject({ status: 'failed', error: 'The vault folder /data/vault is gone. Is the drive still connected?', snapshotId: null });
    expect(h.host.prunes).toHaveLength(0); // no pruning after a failed backup
    expect(s!.nextRunAt).toBe('2025-03-10T02:30:00.000Z');
    h.fail.next = new HoldfastError('BACKUP_FAILED', 'Backup of work failed: EIO', { backupId: 'bk-x' });
    await advance(HOUR);
    expect((await list())[0]!.lastRun).toMatchObject({ status: 'failed', backupId: 'bk-x' });
  });

  it('run now: runs at once (even when disabled), refuses a second run of the same schedule, and waits when asked', async () => {
    const s = await h.api['schedule.create']({ target: { kind: 'volume', volume: 'work' }, frequency: { every: 'week', weekday: 0, at: '03:00' }, enabled: false });
    expect(s.nextRunAt).toBeNull();
    let open!: () => void;
    h.release.next = new Promise<void>((r) => (open = r));
    const started = await h.api['schedule.runNow']({ id: s.id });
    expect(started.lastRun).toMatchObject({ trigger: 'manual', status: 'running' });
    await expect(h.api['schedule.runNow']({ id: s.id })).rejects.toMatchObject({ code: 'BACKUP_RUNNING' });
    await expect(h.api['schedule.delete']({ id: s.id })).rejects.toMatchObject({ code: 'BACKUP_RUNNING' });
    open();
    await h.scheduler.idle();
    h.release.next = null;
    expect((await list())[0]!.lastRun).toMatchObject({ status: 'completed', snapshotId: 'snap-1' });
    const waited = await h.api['schedule.runNow']({ id: s.id, wait: true });
    expect(waited.lastRun).toMatchObject({ status: 'completed', snapshotId: 'snap-2' });
  });

  it('drive schedules image the drive and prune its images', async () => {
    const s = await h.api['schedule.create']({ target: { kind: 'drive', drive: 'sdb' }, frequency: { every: 'day', at: '01:30' }, retention: { keepMonthly: 6 } });
    expect(s.target).toEqual({ kind: 'drive', drive: '/dev/sdb' });
    const done = await h.api['schedule.runNow']({ id: s.id, wait: true });
    expect(done.lastRun).toMatchObject({ status: 'completed', backupId: 'img-1', snapshotId: 'img-snap-1', pruned: 2 });
    expect(h.host.prunes).toEqual([{ vault: '/data/vault', volume: 'drive-sdb', retention: { keepMonthly: 6 } }]);
  });

  it('update changes the timing and re-enabling does not catch up the disabled time; delete removes it', async () => {
    const s = await h.api['schedule.create']({ target: { kind: 'volume', volume: 'work' }, frequency: { every: 'day', at: '02:30' } });
    const off = await h.api['schedule.update']({ id: s.id, enabled: false });
    expect(off).toMatchObject({ enabled: false, nextRunAt: null });
    await start();
    await advance(3 * 24 * HOUR);
    expect(h.host.backups).toHaveLength(0);
    const on = await h.api['schedule.update']({ id: s.id, enabled: true, frequency: { every: 'week', weekday: 5, at: '22:00' } });
    expect(on.nextRunAt).toBe('2025-03-14T22:00:00.000Z'); // now is Thu 13th 01:00
    await advance(5000);
    expect(h.host.backups).toHaveLength(0);
    const renamed = h.catalog.renameVolume(h.catalog.getVolume('work')!.id, 'work2');
    expect(renamed.name).toBe('work2');
    expect((await list())[0]!.target).toEqual({ kind: 'volume', volume: 'work2' });
    await h.api['schedule.delete']({ id: s.id });
    expect(await list()).toEqual([]);
    await expect(h.api['schedule.delete']({ id: s.id })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('bad input: unknown volume, missing vault, missing drive, no trigger, unknown id — nothing is saved', async () => {
    await expect(h.api['schedule.create']({ target: { kind: 'volume', volume: 'nope' }, frequency: { every: 'day', at: '02:30' } })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(h.api['schedule.create']({ target: { kind: 'volume', volume: 'work' }, frequency: { every: 'day', at: '02:30' }, vault: '/media/gone' })).rejects.toMatchObject({ code: 'VAULT_MISSING' });
    await expect(h.api['schedule.create']({ target: { kind: 'drive', drive: 'sdz' }, onPlugIn: true })).rejects.toMatchObject({ code: 'DEVICE_MISSING' });
    await expect(h.api['schedule.create']({ target: { kind: 'volume', volume: 'work' } })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(await list()).toEqual([]);
    const s = await h.api['schedule.create']({ target: { kind: 'volume', volume: 'work' }, frequency: { every: 'day', at: '02:30' } });
    await expect(h.api['schedule.update']({ id: s.id, vault: '/media/gone' })).rejects.toMatchObject({ code: 'VAULT_MISSING' });
    await expect(h.api['schedule.update']({ id: s.id, frequency: null })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(h.api['schedule.update']({ id: 999, enabled: false })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(h.api['schedule.runNow']({ id: 999 })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(await list()).toEqual([s]);
  });
});
