/**
 * Schedules in the catalog (migration 2): rows ↔ contract shapes. Only storage: the scheduler
 * decides when a schedule runs and the engine validates targets and vaults before anything is
 * written here. Invariants (also CHECKs in the table): a row targets exactly one volume (by id)
 * or one drive (by path); it has a frequency, a plug-in trigger, or both; `next_due_at` is set
 * iff the schedule is enabled and has a frequency.
 */
import type Database from 'better-sqlite3';
import type { HoldPolicy, Retention, ScheduleFrequency, ScheduleRun } from '../../../src-shared/contract';
import { HoldfastError } from '../../../src-shared/errors';

export type StoredTarget = { kind: 'volume'; volumeId: number } | { kind: 'drive'; drive: string };

export interface ScheduleRecord {
  id: number;
  target: StoredTarget;
  frequency: ScheduleFrequency | null;
  onPlugIn: boolean;
  vault: string;
  policy: HoldPolicy;
  retention: Retention;
  enabled: boolean;
  createdAt: string;
  nextDueAt: string | null;
  lastRun: ScheduleRun | null;
}

export type NewSchedule = Omit<ScheduleRecord, 'id' | 'createdAt' | 'lastRun'>;

interface ScheduleRow {
  id: number;
  target_kind: 'volume' | 'drive';
  volume_id: number | null;
  drive: string | null;
  every: 'hour' | 'day' | 'week' | null;
  at_minute: number | null;
  weekday: number | null;
  on_plug_in: number;
  vault: string;
  policy: HoldPolicy;
  keep_last: number | null;
  keep_daily: number | null;
  keep_weekly: number | null;
  keep_monthly: number | null;
  enabled: number;
  created_at: string;
  next_due_at: string | null;
  last_run: string | null;
}

const hhmm = (minuteOfDay: number) => `${String(Math.floor(minuteOfDay / 60)).padStart(2, '0')}:${String(minuteOfDay % 60).padStart(2, '0')}`;

function frequencyOf(r: ScheduleRow): ScheduleFrequency | null {
  if (r.every === null || r.at_minute === null) return null;
  if (r.every === 'hour') return { every: 'hour', minute: r.at_minute };
  if (r.every === 'day') return { every: 'day', at: hhmm(r.at_minute) };
  return { every: 'week', weekday: r.weekday ?? 0, at: hhmm(r.at_minute) };
}

function frequencyColumns(f: ScheduleFrequency | null): { every: string | null; at_minute: number | null; weekday: number | null } {
  if (!f) return { every: null, at_minute: null, weekday: null };
  if (f.every === 'hour') return { every: 'hour', at_minute: f.minute, weekday: null };
  const [h, m] = f.at.split(':').map(Number);
  return { every: f.every, at_minute: h! * 60 + m!, weekday: f.every === 'week' ? f.weekday : null };
}

const strip = (r: Retention): Retention => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined && v !== null)) as Retention;

function toRecord(r: ScheduleRow): ScheduleRecord {
  return {
    id: r.id,
    target: r.target_kind === 'volume' ? { kind: 'volume', volumeId: r.volume_id! } : { kind: 'drive', drive: r.drive! },
    frequency: frequencyOf(r),
    onPlugIn: r.on_plug_in === 1,
    vault: r.vault,
    policy: r.policy,
    retention: strip({ keepLast: r.keep_last ?? undefined, keepDaily: r.keep_daily ?? undefined, keepWeekly: r.keep_weekly ?? undefined, keepMonthly: r.keep_monthly ?? undefined }),
    enabled: r.enabled === 1,
    createdAt: r.created_at,
    nextDueAt: r.next_due_at,
    lastRun: r.last_run ? (JSON.parse(r.last_run) as ScheduleRun) : null,
  };
}

function columns(s: NewSchedule) {
  return {
    target_kind: s.target.kind,
    volume_id: s.target.kind === 'volume' ? s.target.volumeId : null,
    drive: s.target.kind === 'drive' ? s.target.drive : null,
    ...frequencyColumns(s.frequency),
    on_plug_in: s.onPlugIn ? 1 : 0,
    vault: s.vault,
    policy: s.policy,
    keep_last: s.retention.keepLast ?? null,
    keep_daily: s.retention.keepDaily ?? null,
    keep_weekly: s.retention.keepWeekly ?? null,
    keep_monthly: s.retention.keepMonthly ?? null,
    enabled: s.enabled ? 1 : 0,
    next_due_at: s.nextDueAt,
  };
}

export class ScheduleStore {
  constructor(private readonly db: Database.Database) {}

  create(s: NewSchedule, now: string): ScheduleRecord {
    const info = this.db
      .prepare(
        `INSERT INTO schedules (target_kind, volume_id, drive, every, at_minute, weekday, on_plug_in, vault, policy, keep_last, keep_daily, keep_weekly, keep_monthly, enabled, created_at, next_due_at)
         VALUES (@target_kind, @volume_id, @drive, @every, @at_minute, @weekday, @on_plug_in, @vault, @policy, @keep_last, @keep_daily, @keep_weekly, @keep_monthly, @enabled, @created_at, @next_due_at)`,
      )
      .run({ ...columns(s), created_at: now });
    return this.get(Number(info.lastInsertRowid))!;
  }

  /** Replaces every settable field (not the id, creation time or last run). */
  update(id: number, s: NewSchedule): ScheduleRecord {
    const info = this.db
      .prepare(
        `UPDATE schedules SET target_kind = @target_kind, volume_id = @volume_id, drive = @drive, every = @every, at_minute = @at_minute, weekday = @weekday,
           on_plug_in = @on_plug_in, vault = @vault, policy = @policy, keep_last = @keep_last, keep_daily = @keep_daily, keep_weekly = @keep_weekly,
           keep_monthly = @keep_monthly, enabled = @enabled, next_due_at = @next_due_at WHERE id = @id`,
      )
      .run({ ...columns(s), id });
    if (info.changes === 0) throw notFound(id);
    return this.get(id)!;
  }

  setNextDue(id: number, nextDueAt: string | null): void {
    this.db.prepare('UPDATE schedules SET next_due_at = ? WHERE id = ?').run(nextDueAt, id);
  }

  setLastRun(id: number, run: ScheduleRun): void {
    this.db.prepare('UPDATE schedules SET last_run = ? WHERE id = ?').run(JSON.stringify(run), id);
  }

  delete(id: number): void {
    const info = this.db.prepare('DELETE FROM schedules WHERE id = ?').run(id);
    if (info.changes === 0) throw notFound(id);
  }

  get(id: number): ScheduleRecord | null {
    const row = this.db.prepare('SELECT * FROM schedules WHERE id = ?').get(id) as ScheduleRow | undefined;
    return row ? toRecord(row) : null;
  }

  list(): ScheduleRecord[] {
    return (this.db.prepare('SELECT * FROM schedules ORDER BY id').all() as ScheduleRow[]).map(toRecord);
  }
}

export function notFound(id: number): HoldfastError {
  return new HoldfastError('NOT_FOUND', `There is no schedule ${id}; \`holdfast schedule list\` shows the schedules.`, { id });
}
