/**
 * `holdfast schedule list|add|remove|run|enable|disable` (an addition to DESIGN.md §6):
 *
 *   holdfast schedule add VOLUME | --drive DRIVE  [--every hour|day|week --at [HH]:MM [--day WEEKDAY]]
 *                         [--when-plugged-in] [--vault DIR] [--policy P] [--keep-last N ...] [--disabled]
 *
 * Each maps to one schedule.* operation. The time flags are checked here (exit 2 with a usage
 * line); volumes, drives and vaults are checked by the engine (exit 1 with its code).
 */
import path from 'node:path';
import type { Schedule, ScheduleFrequency } from '../../../src-shared/contract';
import { TIME_OF_DAY_RE } from '../../../src-shared/contract';
import { HoldfastError } from '../../../src-shared/errors';
import { describeFrequency } from '../../engine/schedule/next-due';
import { UsageError } from './argv';
import type { CmdArgs, CommandSpec } from './commands';
import { keyValues, table, yesNo } from './format';

const WEEKDAYS = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'];

function weekdayOf(text: string): number {
  const t = text.trim().toLowerCase();
  if (/^[0-6]$/.test(t)) return Number(t);
  const i = t.length >= 3 ? WEEKDAYS.findIndex((d) => d.startsWith(t)) : -1;
  if (i < 0) throw new UsageError(`--day takes a weekday: monday … sunday, mon … sun, or 0 (Sunday) … 6 (got "${text}").`);
  return i;
}

function frequencyOf(a: CmdArgs): ScheduleFrequency | undefined {
  const every = a.value('every');
  const at = a.value('at');
  const day = a.value('day');
  if (every === undefined) {
    if (at !== undefined || day !== undefined) throw new UsageError('--at and --day go with --every hour|day|week.');
    return undefined;
  }
  if (every === 'hour') {
    const m = /^:?([0-5]?\d)$/.exec(at ?? ':00');
    if (!m) throw new UsageError(`--every hour takes --at :MM, the minutes past each hour 0–59 (got "${at}").`);
    if (day !== undefined) throw new UsageError('--day goes with --every week.');
    return { every: 'hour', minute: Number(m[1]) };
  }
  if (every !== 'day' && every !== 'week') throw new UsageError(`--every takes hour, day or week (got "${every}").`);
  if (at === undefined) throw new UsageError(`--every ${every} needs --at HH:MM (24-hour local time, e.g. 02:30).`);
  const hhmm = /^\d:\d\d$/.test(at) ? `0${at}` : at;
  if (!TIME_OF_DAY_RE.test(hhmm)) throw new UsageError(`--at takes a time HH:MM on a 24-hour clock, e.g. 02:30 or 18:00 (got "${at}").`);
  if (every === 'day') {
    if (day !== undefined) throw new UsageError('--day goes with --every week.');
    return { every: 'day', at: hhmm };
  }
  if (day === undefined) throw new UsageError('--every week needs --day WEEKDAY (e.g. --day monday).');
  return { every: 'week', weekday: weekdayOf(day), at: hhmm };
}

const intFlag = (a: CmdArgs, name: string): number | undefined => {
  const v = a.value(name);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`--${name} takes a whole number (got "${v}").`);
  return Number(v);
};

const scheduleId = (a: CmdArgs): number => {
  const v = a.pos[0]!;
  if (!/^[1-9]\d*$/.test(v)) throw new UsageError(`A schedule is named by its number, as \`holdfast schedule list\` shows it (got "${v}").`);
  return Number(v);
};

const pad = (n: number) => String(n).padStart(2, '0');
/** An instant in the machine's local time, as schedules are set: 2025-03-10 02:30. */
const local = (iso: string | null) => {
  if (!iso) return '-';
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
};
const targetOf = (s: Schedule) => (s.target.kind === 'volume' ? s.target.volume : `drive ${s.target.drive}`);
export const whenOf = (s: Schedule) => [s.frequency ? describeFrequency(s.frequency) : null, s.onPlugIn ? 'when the vault drive is plugged in' : null].filter(Boolean).join(', or ');
const retentionOf = (s: Schedule) =>
  Object.entries(s.retention)
    .map(([k, v]) => `${k.replace(/^keep/, '').toLowerCase()} ${v}`)
    .join(', ') || 'keep all';
const lastRunOf = (s: Schedule) => (s.lastRun ? `${s.lastRun.status} ${local(s.lastRun.startedAt)} (${s.lastRun.trigger})${s.lastRun.error ? `: ${s.lastRun.error}` : ''}` : '-');

const describeSchedule = (s: Schedule) =>
  keyValues([
    ['id', String(s.id)],
    ['target', targetOf(s)],
    ['when', whenOf(s)],
    ['vault', `${s.vault}${s.vaultPresent ? '' : ' (not connected now)'}`],
    ['policy', s.policy],
    ['retention', retentionOf(s)],
    ['enabled', yesNo(s.enabled)],
    ['next run', local(s.nextRunAt)],
    ['last run', lastRunOf(s)],
    ...(s.lastRun?.snapshotId ? ([['snapshot', s.lastRun.snapshotId]] as Array<[string, string]>) : []),
  ]);

export const SCHEDULE_COMMANDS: CommandSpec[] = [
  {
    words: ['schedule', 'list'], usage: 'schedule list', summary: 'Scheduled backups with their next and last run', flags: [], args: [0, 0],
    op: 'schedule.list', input: () => ({}), output: 'list',
    human: (r: Schedule[]) =>
      table(
        r,
        [
          { header: 'ID', value: (s) => String(s.id), right: true },
          { header: 'TARGET', value: targetOf },
          { header: 'WHEN', value: whenOf },
          { header: 'ON', value: (s) => yesNo(s.enabled) },
          { header: 'NEXT RUN', value: (s) => local(s.nextRunAt) },
          { header: 'LAST RUN', value: (s) => (s.lastRun ? `${s.lastRun.status} ${local(s.lastRun.startedAt)}` : '-') },
          { header: 'RETENTION', value: retentionOf },
          { header: 'VAULT', value: (s) => `${s.vault}${s.vaultPresent ? '' : ' (absent)'}` },
        ],
        'No schedules. Add one with `holdfast schedule add VOLUME --every day --at 02:30`.',
      ),
  },
  {
    words: ['schedule', 'add'],
    usage: 'schedule add VOLUME|--drive DRIVE [--every hour|day|week --at [HH]:MM [--day DAY]] [--when-plugged-in] [--keep-… N]',
    summary: 'Back up on a schedule and/or when the vault drive is plugged in, then prune (--keep-last/daily/weekly/monthly N); also --vault DIR, --policy P, --disabled',
    flags: ['drive', 'every', 'at', 'day', 'when-plugged-in', 'vault', 'policy', 'keep-last', 'keep-daily', 'keep-weekly', 'keep-monthly', 'disabled'],
    args: [0, 1],
    op: 'schedule.create',
    input: (a) => {
      const drive = a.value('drive');
      if ((drive === undefined) === (a.pos[0] === undefined)) throw new UsageError('schedule add takes a VOLUME or --drive DRIVE (one of them).');
      const frequency = frequencyOf(a);
      const onPlugIn = a.flag('when-plugged-in');
      if (!frequency && !onPlugIn) throw new UsageError('Say when: --every hour|day|week --at [HH]:MM, and/or --when-plugged-in.');
      const retention = Object.fromEntries(
        (['keep-last', 'keep-daily', 'keep-weekly', 'keep-monthly'] as const)
          .map((f) => [f.replace(/-(\w)/, (_m, c: string) => c.toUpperCase()), intFlag(a, f)] as const)
          .filter(([, v]) => v !== undefined),
      );
      return {
        target: drive !== undefined ? { kind: 'drive', drive: drive.includes('/') ? path.resolve(drive) : drive } : { kind: 'volume', volume: a.pos[0] },
        ...(frequency ? { frequency } : {}),
        ...(onPlugIn ? { onPlugIn: true } : {}),
        ...(a.value('vault') !== undefined ? { vault: path.resolve(a.value('vault')!) } : {}),
        ...(a.value('policy') !== undefined ? { policy: a.value('policy') } : {}),
        ...(Object.keys(retention).length ? { retention } : {}),
        ...(a.flag('disabled') ? { enabled: false } : {}),
      };
    },
    output: 'object', human: describeSchedule,
  },
  {
    words: ['schedule', 'remove'], usage: 'schedule remove ID', summary: 'Delete a schedule (its snapshots stay in the vault)', flags: [], args: [1, 1],
    op: 'schedule.delete', input: (a) => ({ id: scheduleId(a) }), output: 'object', human: (_r, a) => `Removed schedule ${a.pos[0]}.`,
  },
  {
    words: ['schedule', 'enable'], usage: 'schedule enable ID', summary: 'Turn a schedule on (its next run is the next slot from now)', flags: [], args: [1, 1],
    op: 'schedule.update', input: (a) => ({ id: scheduleId(a), enabled: true }), output: 'object', human: describeSchedule,
  },
  {
    words: ['schedule', 'disable'], usage: 'schedule disable ID', summary: 'Turn a schedule off without deleting it', flags: [], args: [1, 1],
    op: 'schedule.update', input: (a) => ({ id: scheduleId(a), enabled: false }), output: 'object', human: describeSchedule,
  },
  {
    words: ['schedule', 'run'], usage: 'schedule run ID', summary: "Run a schedule's backup (and retention) now; waits, exit 1 if it failed or was skipped", flags: [], args: [1, 1],
    op: 'schedule.runNow', input: (a) => ({ id: scheduleId(a), wait: true }), output: 'object', human: describeSchedule,
    check: (s: Schedule) => {
      const run = s.lastRun;
      if (!run || run.status === 'completed') return;
      throw new HoldfastError(run.status === 'skipped' ? 'BACKUP_RUNNING' : 'BACKUP_FAILED', `Scheduled backup of ${targetOf(s)} ${run.status === 'skipped' ? 'was skipped' : 'failed'}: ${run.error ?? 'no reason given'}`);
    },
  },
];
