/**
 * The contract: one typed description of every operation and event that crosses a process
 * boundary (renderer ↔ Electron main, browser ↔ `holdfast serve`, CLI ↔ control socket).
 * Every request is validated against `operations[name].input` by the host before the engine
 * sees it; results and events are typed by the same schemas. No Node or DOM imports here.
 */
import { z } from 'zod';

export const VOLUME_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const BLOCK = 4096;

export const VolumeName = z
  .string()
  .regex(VOLUME_NAME_RE, 'Volume names are 1–64 letters, digits, dot, dash or underscore, starting with a letter or digit.');
export const Size = z.number().int().positive().max(2 ** 53 - 1);
export const HoldPolicy = z.enum(['volume', 'range', 'metadata']);
export type HoldPolicy = z.infer<typeof HoldPolicy>;
/**
 * Backup throttle: `auto` (default) reads the volume at a limited rate while volumes are being
 * written, so their writers keep their latency; `off` runs at full speed whatever happens.
 */
export const BackupThrottle = z.enum(['auto', 'off']);
export type BackupThrottle = z.infer<typeof BackupThrottle>;
export const AckMode = z.enum(['journal', 'device']);
export type AckMode = z.infer<typeof AckMode>;

// ---------- entities ----------
export const DeviceKind = z.enum(['image', 'adopted-image', 'block']);
export const Device = z.object({
  id: z.number().int(),
  path: z.string(),
  kind: DeviceKind,
  size: z.number().int(),
  /** Bytes not used by any extent (for adopted devices: 0). */
  free: z.number().int(),
  /** false when the file or drive is not there now (unplugged). */
  present: z.boolean(),
  addedAt: z.string(),
});
export type Device = z.infer<typeof Device>;

export const Drive = z.object({
  name: z.string(), // as `drive list` shows it, e.g. "sdb"; what --confirm takes
  path: z.string(), // /dev/sdb
  size: z.number().int(),
  model: z.string().nullable(),
  removable: z.boolean(),
  mounted: z.boolean(),
  mountpoints: z.array(z.string()),
  system: z.boolean(),
  partitions: z.array(z.object({ name: z.string(), path: z.string(), size: z.number().int(), mounted: z.boolean(), fstype: z.string().nullable() })),
});
export type Drive = z.infer<typeof Drive>;

export const Extent = z.object({
  volumeOffset: z.number().int(),
  deviceId: z.number().int(),
  deviceOffset: z.number().int(),
  length: z.number().int(),
});
export type Extent = z.infer<typeof Extent>;

export const Volume = z.object({
  id: z.number().int(),
  name: z.string(),
  size: z.number().int(),
  ackMode: AckMode,
  adopted: z.boolean(),
  extents: z.array(Extent),
  createdAt: z.string(),
  /** Name of the running backup's policy, or null. */
  backup: z.object({ id: z.string(), policy: HoldPolicy, startedAt: z.string() }).nullable(),
  /** Complete per-volume NBD URIs (`nbd+unix:///NAME?socket=PATH`, `nbd://HOST:PORT/NAME`), unlike engine.info's raw socket path and `host:port`. */
  nbd: z.object({ socket: z.string().nullable(), tcp: z.string().nullable(), clients: z.number().int() }).nullable(),
});
export type Volume = z.infer<typeof Volume>;

export const HoldState = z.object({
  volume: z.string(),
  backupFlag: z.boolean(),
  policy: HoldPolicy.nullable(),
  heldCount: z.number().int(),
  heldBytes: z.number().int(),
  oldestHeldAgeMs: z.number().nullable(),
  queuedTotal: z.number().int(), // writes ever held in this backup
  releasedTotal: z.number().int(),
  /** Range policy: bytes the backup has copied so far out of the volume size. */
  copiedBytes: z.number().int(),
  journalBytes: z.number().int(),
  journalCapacity: z.number().int(),
  /**
   * Optional compact map of the volume for the UI: `cells` cells of `cellBytes` each, 2 bits per
   * cell (0 not yet copied, 1 copied, 2 holds a held write, 3 not subject to the backup),
   * base64. Encode/decode with src-shared/block-map.ts. Absent when no backup runs.
   */
  blockMap: z
    .object({ cells: z.number().int().positive().max(65536), cellBytes: z.number().int().positive(), states: z.string() })
    .optional(),
});
export type HoldState = z.infer<typeof HoldState>;

/** A volume's acknowledged writes per second over the last sampling interval (write, write-zeroes, trim). */
export const VolumeWriteRate = z.object({ volume: z.string(), writesPerSec: z.number().nonnegative(), bytesPerSec: z.number().nonnegative() });
export type VolumeWriteRate = z.infer<typeof VolumeWriteRate>;

export const BackupState = z.enum(['running', 'completed', 'failed', 'aborted']);
export const Backup = z.object({
  id: z.string(),
  volume: z.string(),
  policy: HoldPolicy,
  vault: z.string(),
  state: BackupState,
  kind: z.enum(['full', 'incremental']),
  startedAt: z.string(),
  endedAt: z.string().nullable(),
  bytesDone: z.number().int(),
  bytesTotal: z.number().int(),
  snapshotId: z.string().nullable(),
  error: z.string().nullable(),
});
export type Backup = z.infer<typeof Backup>;

export const Snapshot = z.object({
  id: z.string(),
  volume: z.string(),
  size: z.number().int(),
  createdAt: z.string(),
  policy: HoldPolicy,
  kind: z.enum(['full', 'incremental']),
  parent: z.string().nullable(),
  storedBytes: z.number().int(),
  vault: z.string(),
});
export type Snapshot = z.infer<typeof Snapshot>;

// ---------- schedules ----------
export const TIME_OF_DAY_RE = /^([01]\d|2[0-3]):[0-5]\d$/;
export const TimeOfDay = z.string().regex(TIME_OF_DAY_RE, 'Times are HH:MM on a 24-hour clock, for example 02:30 or 18:00.');
const minutePastHour = z.number().int('Minutes past the hour are a whole number 0–59.').min(0, 'Minutes past the hour are 0–59.').max(59, 'Minutes past the hour are 0–59.');
const weekday = z.number().int().min(0, 'Weekdays are 0 (Sunday) to 6 (Saturday).').max(6, 'Weekdays are 0 (Sunday) to 6 (Saturday).');
/** When a schedule runs, in the engine's local time: every hour at :MM, every day at HH:MM, or one weekday (0 = Sunday) at HH:MM. */
export const ScheduleFrequency = z.discriminatedUnion('every', [
  z.object({ every: z.literal('hour'), minute: minutePastHour }),
  z.object({ every: z.literal('day'), at: TimeOfDay }),
  z.object({ every: z.literal('week'), weekday, at: TimeOfDay }),
]);
export type ScheduleFrequency = z.infer<typeof ScheduleFrequency>;
/** What a schedule backs up: a volume (through backup.start) or a drive/image file (through drive.image). */
export const ScheduleTarget = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('volume'), volume: VolumeName }),
  z.object({ kind: z.literal('drive'), drive: z.string().min(1, 'Name the drive, e.g. sdb or /dev/sdb.') }),
]);
export type ScheduleTarget = z.infer<typeof ScheduleTarget>;
const keep = z.number().int('Retention counts are whole numbers.').nonnegative('Retention counts cannot be negative.').max(10_000);
/** Applied after every successful run, to this target's snapshots only (as `vault prune`). Empty: keep everything. */
export const Retention = z.object({ keepLast: keep.optional(), keepDaily: keep.optional(), keepWeekly: keep.optional(), keepMonthly: keep.optional() });
export type Retention = z.infer<typeof Retention>;
export const ScheduleRun = z.object({
  trigger: z.enum(['time', 'catch-up', 'plug-in', 'manual']),
  status: z.enum(['running', 'completed', 'failed', 'skipped']),
  startedAt: z.string(),
  endedAt: z.string().nullable(),
  /** The backup (or drive image) this run started; null when it was skipped or failed before one began. */
  backupId: z.string().nullable(),
  snapshotId: z.string().nullable(),
  /** Snapshots the retention removed after this run. */
  pruned: z.number().int().nullable(),
  /** Why it failed or was skipped (or what went wrong pruning after a good backup). */
  error: z.string().nullable(),
});
export type ScheduleRun = z.infer<typeof ScheduleRun>;
export const Schedule = z.object({
  id: z.number().int(),
  target: ScheduleTarget,
  frequency: ScheduleFrequency.nullable(),
  /** Also run when the vault folder appears after being absent (the backup drive is plugged in). */
  onPlugIn: z.boolean(),
  vault: z.string(),
  policy: HoldPolicy,
  retention: Retention,
  enabled: z.boolean(),
  createdAt: z.string(),
  /** Next time-based run (ISO); null when disabled or plug-in only. */
  nextRunAt: z.string().nullable(),
  /** Whether the vault folder is reachable now. */
  vaultPresent: z.boolean(),
  lastRun: ScheduleRun.nullable(),
});
export type Schedule = z.infer<typeof Schedule>;
const ScheduleFields = z.object({
  target: ScheduleTarget,
  frequency: ScheduleFrequency.nullable().optional(),
  onPlugIn: z.boolean().optional(),
  /** Default: the data directory's vault. */
  vault: z.string().min(1).optional(),
  policy: HoldPolicy.optional(),
  retention: Retention.optional(),
  enabled: z.boolean().optional(),
});
export const SCHEDULE_NEEDS_WHEN = 'Say when to back up: hourly, daily or weekly, and/or when the backup drive is plugged in.';

// ---------- operations ----------
const op = <I extends z.ZodType, O extends z.ZodType>(input: I, output: O) => ({ input, output });
const Ok = z.object({ ok: z.literal(true) });
/** Every vault operation names a vault folder (default: the data directory's vault) and, for an encrypted vault, its passphrase. */
const VaultOpt = z.object({ vault: z.string().optional(), passphrase: z.string().optional() });

export const operations = {
  'drive.list': op(z.object({}), z.array(Drive)),
  'device.list': op(z.object({}), z.array(Device)),
  'device.add': op(
    // confirm: a drive's name as `drive list` shows it (e.g. "sdb"), required before Holdfast formats a block device.
    z.object({ path: z.string().min(1), create: z.boolean().optional(), size: Size.optional(), confirm: z.string().optional() }),
    Device,
  ),
  'device.remove': op(z.object({ device: z.union([z.number().int(), z.string().min(1)]) }), Ok),
  'volume.list': op(z.object({}), z.array(Volume)),
  'volume.create': op(
    z.object({ name: VolumeName, size: Size, devices: z.array(z.union([z.number().int(), z.string().min(1)])).optional(), ack: AckMode.optional() }),
    Volume,
  ),
  'volume.grow': op(z.object({ name: VolumeName, size: Size }), Volume),
  'volume.rename': op(z.object({ name: VolumeName, newName: VolumeName }), Volume),
  'volume.delete': op(z.object({ name: VolumeName }), Ok),
  'volume.adopt': op(z.object({ path: z.string().min(1), name: VolumeName.optional() }), Volume),
  'holds.get': op(z.object({ volume: VolumeName.optional() }), z.array(HoldState)),
  'backup.start': op(
    VaultOpt.extend({ volume: VolumeName, policy: HoldPolicy.optional(), full: z.boolean().optional(), detach: z.boolean().optional(), throttle: BackupThrottle.optional() }),
    Backup,
  ),
  'backup.list': op(z.object({}), z.array(Backup)),
  'backup.abort': op(z.object({ id: z.string().min(1) }), Backup),
  'snapshot.list': op(VaultOpt, z.array(Snapshot)),
  'snapshot.verify': op(VaultOpt.extend({ id: z.string().min(1) }), z.object({ ok: z.boolean(), chunks: z.number().int(), bad: z.array(z.string()) })),
  'snapshot.export': op(
    VaultOpt.extend({ id: z.string().min(1), format: z.enum(['raw', 'vhd', 'qcow2']), path: z.string().min(1) }),
    z.object({ path: z.string(), bytes: z.number().int() }),
  ),
  /** A snapshot of the default vault as a read-only NBD export named `<volume>@<id>` (needs `holdfast nbd`/`serve` running). */
  'snapshot.mount': op(
    z.object({ id: z.string().min(1), vault: z.string().optional() }),
    z.object({ export: z.string(), socket: z.string().nullable(), tcp: z.string().nullable(), readOnly: z.literal(true) }),
  ),
  'restore.start': op(
    VaultOpt.extend({
      id: z.string().min(1),
      toVolume: VolumeName.optional(),
      toFile: z.string().min(1).optional(),
      toDevice: z.string().min(1).optional(),
      confirm: z.string().optional(),
    }),
    z.object({ id: z.string(), target: z.string(), bytes: z.number().int() }),
  ),
  // Import/flash (DESIGN.md §4): an image file (raw/.img/.iso, .gz, .zst) into a volume, or a file or snapshot onto a drive, verified by read-back.
  'image.import': op(
    z.object({ file: z.string().min(1), volume: VolumeName, create: z.boolean().optional() }),
    z.object({ volume: z.string(), bytes: z.number().int(), sha256: z.string() }),
  ),
  'image.flash': op(
    // source: an image file path, or a snapshot id in the vault; confirm: the device's name as `drive list` shows it.
    VaultOpt.extend({ source: z.string().min(1), device: z.string().min(1), confirm: z.string().optional() }),
    z.object({ device: z.string(), bytes: z.number().int(), sha256: z.string(), verified: z.literal(true) }),
  ),
  // A drive (or image file) read directly, not mounted, into the vault; unchanged chunks are deduplicated against its earlier images.
  'drive.image': op(
    VaultOpt.extend({ drive: z.string().min(1) }),
    z.object({
      snapshotId: z.string(),
      drive: z.string(),
      volume: z.string(),
      bytes: z.number().int(),
      storedBytes: z.number().int(),
      newChunks: z.number().int(),
      reusedChunks: z.number().int(),
      previous: z.string().nullable(),
      vault: z.string(),
    }),
  ),
  'vault.init': op(z.object({ dir: z.string().min(1), passphrase: z.string().min(1).optional() }), z.object({ dir: z.string(), encrypted: z.boolean() })),
  'vault.prune': op(
    VaultOpt.extend({
      keepLast: z.number().int().nonnegative().optional(),
      keepDaily: z.number().int().nonnegative().optional(),
      keepWeekly: z.number().int().nonnegative().optional(),
      keepMonthly: z.number().int().nonnegative().optional(),
      volume: VolumeName.optional(),
      dryRun: z.boolean().optional(),
    }),
    z.object({ kept: z.array(z.object({ id: z.string(), volume: z.string(), reasons: z.array(z.string()) })), removed: z.array(z.object({ id: z.string(), volume: z.string(), createdAt: z.string() })), dryRun: z.boolean() }),
  ),
  'vault.gc': op(VaultOpt.extend({ dryRun: z.boolean().optional() }), z.object({ removedChunks: z.number().int(), freedBytes: z.number().int(), keptChunks: z.number().int() })),
  // Schedules (issue 6): automatic backups per volume or drive, with retention. Run by the engine host that owns the data directory (serve, nbd, the app).
  'schedule.list': op(z.object({}), z.array(Schedule)),
  'schedule.create': op(ScheduleFields.refine((s) => !!s.frequency || s.onPlugIn === true, { message: SCHEDULE_NEEDS_WHEN, path: ['frequency'] }), Schedule),
  'schedule.update': op(ScheduleFields.partial().extend({ id: z.number().int().positive() }), Schedule),
  'schedule.delete': op(z.object({ id: z.number().int().positive() }), Ok),
  /** Starts the schedule's backup now; `wait` resolves when the run has ended (the CLI), otherwise at once with the run `running`. */
  'schedule.runNow': op(z.object({ id: z.number().int().positive(), wait: z.boolean().optional() }), Schedule),
  'engine.info': op(
    z.object({}),
    z.object({ version: z.string(), dataDir: z.string(), defaultVault: z.string(), nbd: z.object({ socket: z.string().nullable(), tcp: z.string().nullable() }) }),
  ),
} as const;

export type Operations = typeof operations;
export type OpName = keyof Operations;
export type OpInput<N extends OpName> = z.input<Operations[N]['input']>;
export type OpOutput<N extends OpName> = z.output<Operations[N]['output']>;

/** What every transport exposes: one async function per operation. */
export type Api = { [N in OpName]: (input: OpInput<N>) => Promise<OpOutput<N>> };

// ---------- events ----------
export const events = {
  'holds.changed': HoldState,
  /** About once a second, every live volume's write rate; sent while some volume writes and once more when all went idle. */
  'volumes.stats': z.object({ intervalMs: z.number().int().nonnegative(), volumes: z.array(VolumeWriteRate) }),
  'backup.progress': Backup.extend({
    mbPerSec: z.number(),
    etaSec: z.number().nullable(),
    dedupRatio: z.number().nullable(),
    /** The throttle's read rate now (MiB/s) while volumes are being written; absent or null at full speed. */
    throttledToMiBPerSec: z.number().nullable().optional(),
  }),
  'volumes.changed': z.object({}),
  'devices.changed': z.object({}),
  'snapshots.changed': z.object({ vault: z.string() }),
  'schedules.changed': z.object({}),
  /** A schedule's run ended (completed, failed or skipped); a run that started a backup also produced `backup.progress` events. */
  'schedule.finished': z.object({ scheduleId: z.number().int(), target: z.string(), run: ScheduleRun }),
} as const;
export type Events = typeof events;
export type EventName = keyof Events;
export type EventPayload<N extends EventName> = z.output<Events[N]>;

export const OP_NAMES = Object.keys(operations) as OpName[];
