/**
 * The scheduler: runs each enabled schedule's backup when its time comes, when its backup
 * drive is plugged in, or when asked (run now), then prunes that target's snapshots by the
 * schedule's retention. It also answers the schedule.* contract operations (validation first,
 * so nothing is half-saved). Backups go through the same backup application as `backup.start`
 * (volumes) and `drive.image` (drives); this module only decides when.
 *
 * One job, driven by `tick()` (every few seconds once `start()`ed; tests call it with a fake
 * clock): for every enabled schedule, (1) if it has a plug-in trigger, stat its vault and run
 * when the vault is present now after having been seen absent; (2) if its persisted
 * `nextDueAt` has passed, move `nextDueAt` to the first slot after now and run once. Because
 * (2) jumps past every slot that was missed, a schedule whose time passed while the engine
 * was not running runs exactly once at start (trigger `catch-up`), not once per missed slot.
 *
 * Invariants: at most one run per schedule at a time (a trigger that arrives during its own
 * run is dropped — the run in progress is that backup); a run never starts a second backup of
 * a volume already being backed up — it is recorded `skipped` with the reason; every run that
 * starts ends in the catalog as completed, failed or skipped, with `schedule.finished` emitted.
 * The first look at a vault only establishes whether it is there; it does not trigger a run.
 */
import path from 'node:path';
import type { Api, Backup, HoldPolicy, OpInput, Retention, Schedule, ScheduleRun, ScheduleTarget } from '../../../src-shared/contract';
import { SCHEDULE_NEEDS_WHEN } from '../../../src-shared/contract';
import { HoldfastError, toErrorPayload } from '../../../src-shared/errors';
import type { ScheduleStore, ScheduleRecord, NewSchedule, StoredTarget } from '../catalog/schedule-store';
import { notFound } from '../catalog/schedule-store';
import type { EngineEvents } from '../events';
import { nextDue, systemCalendar, type Calendar } from './next-due';

/** Time for the scheduler: wall clock and a repeating timer (tests drive `tick()` themselves). */
export interface SchedulerClock {
  now(): number;
  /** Calls fn every ms until the returned function is called. */
  every(ms: number, fn: () => void): () => void;
}

export const realClock = (now: () => number = Date.now): SchedulerClock => ({
  now,
  every(ms, fn) {
    const t = setInterval(fn, ms);
    t.unref?.();
    return () => clearInterval(t);
  },
});

/** What the scheduler needs from the engine (the Engine provides it; tests fake it). */
export interface SchedulerHost {
  readonly store: ScheduleStore;
  readonly events: EngineEvents;
  readonly defaultVault: string;
  /** The volume's id; NOT_FOUND for an unknown name. */
  volumeId(name: string): number;
  /** The volume's current name, or null if it is gone. */
  volumeName(id: number): string | null;
  isBackingUp(volume: string): boolean;
  /** Throws VAULT_MISSING / READ_ONLY / NOT_AVAILABLE (encrypted) when scheduled backups cannot go into dir. */
  checkVault(dir: string): Promise<void>;
  /** Normalises a drive name or path (sdb → /dev/sdb) and checks it can be imaged; throws DEVICE_MISSING etc. */
  checkDrive(drive: string): Promise<string>;
  /** Cheap: whether the vault folder is there now (its vault.json exists). */
  vaultPresent(dir: string): Promise<boolean>;
  backupVolume(volume: string, vault: string, policy: HoldPolicy): Promise<Backup>;
  /** Images the drive; the vault volume name its snapshots are filed under comes back for pruning. */
  imageDrive(drive: string, vault: string): Promise<{ snapshotId: string; volume: string; backupId: string | null }>;
  /** Applies retention to one volume's snapshots (then collects garbage); returns how many were removed. */
  prune(vault: string, volume: string, retention: Retention): Promise<number>;
}

export interface SchedulerOptions {
  clock?: SchedulerClock;
  calendar?: Calendar;
  /** How often tick() runs once started: due times are honoured within this, vault plug-in noticed within this. */
  pollMs?: number;
}

export const DEFAULT_POLL_MS = 5_000;
const iso = (ms: number) => new Date(ms).toISOString();
const hasRetention = (r: Retention) => [r.keepLast, r.keepDaily, r.keepWeekly, r.keepMonthly].some((k) => k !== undefined);

export class Scheduler {
  private readonly clock: SchedulerClock;
  private readonly calendar: Calendar;
  private readonly pollMs: number;
  /** In-flight runs by schedule id. */
  private readonly running = new Map<number, Promise<void>>();
  /** Last seen presence of each plug-in schedule's vault (absent key: not looked yet). */
  private readonly presence = new Map<number, boolean>();
  private stopTimer: (() => void) | null = null;
  private startedAt: number | null = null;
  private ticking: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly host: SchedulerHost,
    opts: SchedulerOptions = {},
  ) {
    this.clock = opts.clock ?? realClock();
    this.calendar = opts.calendar ?? systemCalendar;
    this.pollMs = opts.pollMs ?? DEFAULT_POLL_MS;
  }

  /** Begins running schedules: catches up at once, then ticks every pollMs. */
  start(): void {
    if (this.stopTimer || this.stopped) return;
    this.startedAt = this.clock.now();
    this.stopTimer = this.clock.every(this.pollMs, () => void this.tick());
    void this.tick();
  }

  get started(): boolean {
    return this.stopTimer !== null;
  }

  /** Stops triggering new runs; runs in flight go on (the engine aborts their backups at shutdown). */
  stop(): void {
    this.stopped = true;
    this.stopTimer?.();
    this.stopTimer = null;
  }

  /** Resolves when no run is in flight (tests; shutdown). */
  async idle(): Promise<void> {
    while (this.ticking || this.running.size) {
      await this.ticking;
      await Promise.all([...this.running.values()]);
    }
  }

  /** One pass over the schedules; overlapping calls share the pass in progress. Never rejects (a timer calls it). */
  tick(): Promise<void> {
    if (!this.ticking) this.ticking = this.pass().finally(() => (this.ticking = null));
    return this.ticking;
  }

  private async pass(): Promise<void> {
    let list: ScheduleRecord[];
    try {
      list = this.host.store.list();
    } catch {
      return; // the catalog closed under a pass at shutdown
    }
    for (const s of list) {
      if (this.stopped) return;
      if (!s.enabled) continue;
      try {
        if (s.onPlugIn) {
          const present = await this.host.vaultPresent(s.vault).catch(() => false);
          if (this.stopped) return;
          const before = this.presence.get(s.id);
          this.presence.set(s.id, present);
          if (before === false && present) {
            void this.launch(s, 'plug-in');
            continue;
          }
        }
        if (s.frequency && s.nextDueAt !== null) {
          const due = Date.parse(s.nextDueAt);
          const now = this.clock.now();
          if (due > now) continue;
          // First slot after now: every missed slot collapses into this one run.
          this.host.store.setNextDue(s.id, iso(nextDue(s.frequency, now, this.calendar)));
          void this.launch(s, this.startedAt !== null && due < this.startedAt ? 'catch-up' : 'time');
        }
      } catch {
        // One schedule's bad moment (its row deleted meanwhile, the catalog closing) must not stop the others.
      }
    }
  }

  private targetName(s: ScheduleRecord): string {
    return s.target.kind === 'volume' ? (this.host.volumeName(s.target.volumeId) ?? `volume #${s.target.volumeId}`) : s.target.drive;
  }

  private save(s: ScheduleRecord, run: ScheduleRun): void {
    try {
      this.host.store.setLastRun(s.id, run);
    } catch {
      // The catalog closed under a run at shutdown, or the schedule was deleted mid-run: nothing to record.
    }
    this.host.events.emit('schedules.changed', {});
  }

  /** Starts a run (unless this schedule is already running); returns the run's completion. */
  private launch(s: ScheduleRecord, trigger: ScheduleRun['trigger']): Promise<void> {
    const inFlight = this.running.get(s.id);
    if (inFlight) return inFlight;
    const run: ScheduleRun = { trigger, status: 'running', startedAt: iso(this.clock.now()), endedAt: null, backupId: null, snapshotId: null, pruned: null, error: null };
    const name = this.targetName(s);
    const finish = (status: ScheduleRun['status'], error: string | null) => {
      Object.assign(run, { status, error: run.error ?? error, endedAt: iso(this.clock.now()) });
      this.save(s, run);
      this.host.events.emit('schedule.finished', { scheduleId: s.id, target: name, run: { ...run } });
    };
    const work = async () => {
      if (s.target.kind === 'volume' && this.host.isBackingUp(name)) {
        finish('skipped', `Volume ${name} was already being backed up, so this run was skipped; the next one backs up what changed.`);
        return;
      }
      this.save(s, run);
      try {
        let volume: string;
        if (s.target.kind === 'volume') {
          const b = await this.host.backupVolume(name, s.vault, s.policy);
          Object.assign(run, { backupId: b.id, snapshotId: b.snapshotId });
          volume = b.volume;
        } else {
          const r = await this.host.imageDrive(s.target.drive, s.vault);
          Object.assign(run, { backupId: r.backupId, snapshotId: r.snapshotId });
          volume = r.volume;
        }
        if (hasRetention(s.retention)) {
          try {
            run.pruned = await this.host.prune(s.vault, volume, s.retention);
          } catch (e) {
            run.error = `The backup worked, but pruning old snapshots by the retention failed: ${toErrorPayload(e).message}`;
          }
        }
        finish('completed', null);
      } catch (e) {
        const p = toErrorPayload(e);
        if (typeof p.details?.backupId === 'string') run.backupId = p.details.backupId;
        if (p.code === 'BACKUP_RUNNING' || (p.code === 'IN_USE' && s.target.kind === 'drive')) finish('skipped', `${p.message} This run was skipped.`);
        else finish('failed', p.message);
      }
    };
    const done = work()
      .catch((e: unknown) => finish('failed', toErrorPayload(e).message)) // e.g. the busy check on a volume deleted meanwhile
      .finally(() => this.running.delete(s.id));
    this.running.set(s.id, done);
    return done;
  }

  // ------------------------------------------------------------------ contract

  private async toSchedule(s: ScheduleRecord): Promise<Schedule> {
    const target: ScheduleTarget = s.target.kind === 'volume' ? { kind: 'volume', volume: this.targetName(s) } : { kind: 'drive', drive: s.target.drive };
    return {
      id: s.id,
      target,
      frequency: s.frequency,
      onPlugIn: s.onPlugIn,
      vault: s.vault,
      policy: s.policy,
      retention: s.retention,
      enabled: s.enabled,
      createdAt: s.createdAt,
      nextRunAt: s.nextDueAt,
      vaultPresent: await this.host.vaultPresent(s.vault).catch(() => false),
      lastRun: s.lastRun,
    };
  }

  private get(id: number): ScheduleRecord {
    const s = this.host.store.get(id);
    if (!s) throw notFound(id);
    return s;
  }

  /** Checks a complete schedule and resolves its target; throws before anything is written. */
  private async resolve(i: OpInput<'schedule.create'>, prev: ScheduleRecord | null, keepTarget = false): Promise<NewSchedule> {
    const frequency = i.frequency ?? null;
    const onPlugIn = i.onPlugIn ?? false;
    if (!frequency && !onPlugIn) throw new HoldfastError('INVALID_ARGUMENT', SCHEDULE_NEEDS_WHEN);
    let target: StoredTarget;
    if (keepTarget && prev) target = prev.target;
    else if (i.target.kind === 'volume') target = { kind: 'volume', volumeId: this.host.volumeId(i.target.volume) };
    else target = { kind: 'drive', drive: await this.host.checkDrive(i.target.drive) };
    const vault = path.resolve(i.vault ?? this.host.defaultVault);
    if (!prev || prev.vault !== vault) await this.host.checkVault(vault);
    const enabled = i.enabled ?? true;
    const sameTiming = prev && prev.enabled === enabled && JSON.stringify(prev.frequency) === JSON.stringify(frequency);
    const nextDueAt = !enabled || !frequency ? null : sameTiming && prev.nextDueAt ? prev.nextDueAt : iso(nextDue(frequency, this.clock.now(), this.calendar));
    return { target, frequency, onPlugIn, vault, policy: i.policy ?? 'range', retention: i.retention ?? {}, enabled, nextDueAt };
  }

  private changed(): void {
    this.host.events.emit('schedules.changed', {});
  }

  ops(): Pick<Api, 'schedule.list' | 'schedule.create' | 'schedule.update' | 'schedule.delete' | 'schedule.runNow'> {
    return {
      'schedule.list': async () => Promise.all(this.host.store.list().map((s) => this.toSchedule(s))),
      'schedule.create': async (i) => {
        const rec = this.host.store.create(await this.resolve(i, null), iso(this.clock.now()));
        // The vault was just checked, so it is present: a later unplug + plug-in triggers.
        this.presence.set(rec.id, true);
        this.changed();
        return this.toSchedule(rec);
      },
      'schedule.update': async (i) => {
        const prev = this.get(i.id);
        const prevTarget: ScheduleTarget = prev.target.kind === 'volume' ? { kind: 'volume', volume: this.targetName(prev) } : { kind: 'drive', drive: prev.target.drive };
        const merged = {
          target: i.target ?? prevTarget,
          frequency: i.frequency !== undefined ? i.frequency : prev.frequency,
          onPlugIn: i.onPlugIn ?? prev.onPlugIn,
          vault: i.vault ?? prev.vault,
          policy: i.policy ?? prev.policy,
          retention: i.retention ?? prev.retention,
          enabled: i.enabled ?? prev.enabled,
        };
        // The target is checked again only when it changes: a drive unplugged now must not block turning its schedule off.
        const next = await this.resolve(merged, prev, i.target === undefined);
        const rec = this.host.store.update(prev.id, next);
        if (rec.vault !== prev.vault) this.presence.set(rec.id, true);
        this.changed();
        return this.toSchedule(rec);
      },
      'schedule.delete': async (i) => {
        this.get(i.id);
        if (this.running.has(i.id))
          throw new HoldfastError('BACKUP_RUNNING', `Schedule ${i.id} is running a backup now; wait for it (or abort the backup), then delete the schedule.`);
        this.host.store.delete(i.id);
        this.presence.delete(i.id);
        this.changed();
        return { ok: true as const };
      },
      'schedule.runNow': async (i) => {
        const s = this.get(i.id);
        if (this.running.has(s.id)) throw new HoldfastError('BACKUP_RUNNING', `Schedule ${s.id} is already running a backup of ${this.targetName(s)}.`);
        const done = this.launch(s, 'manual');
        // launch() has recorded the run as running (or skipped) before returning.
        if (i.wait) await done;
        return this.toSchedule(this.get(s.id));
      },
    };
  }
}
