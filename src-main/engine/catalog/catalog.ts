/**
 * The catalog: devices, volumes and their extents, backup history and settings, in one
 * SQLite file (better-sqlite3) owned by one process (DataDir's lock).
 *
 * Durability: WAL with synchronous=FULL. The catalog changes only on administrative
 * operations (add a device, create/grow a volume, backup state changes) — never per write,
 * the journal carries the write path — so one fsync per commit costs nothing users notice,
 * while NORMAL could lose the last commits on power loss after device labels had already
 * been rewritten from them. Invariants: user_version = number of migrations applied; a
 * volume's extents are contiguous from 0 and sum to its size (the volume manager checks
 * allocations with checkLayout before committing; every multi-row change is one transaction).
 */
import fs from 'node:fs';
import Database from 'better-sqlite3';
import type { AckMode, Backup, Extent } from '../../../src-shared/contract';
import { HoldfastError, invariant } from '../../../src-shared/errors';
import { MIGRATIONS, SCHEMA_VERSION } from './migrations';
import { ScheduleStore } from './schedule-store';

export type DeviceKind = 'image' | 'adopted-image' | 'block';

export interface DeviceRecord {
  id: number;
  path: string;
  kind: DeviceKind;
  size: number;
  /** First byte volumes may use (DATA_START for labelled devices, 0 for adopted ones). */
  dataStart: number;
  /** uuid in the device's label; null for adopted devices (no label). */
  labelUuid: string | null;
  addedAt: string;
}

export interface NewDevice {
  path: string;
  kind: DeviceKind;
  size: number;
  dataStart: number;
  labelUuid: string | null;
}

/** The catalog part of a contract Volume (backup and nbd are filled in by the engine). */
export interface VolumeRecord {
  id: number;
  name: string;
  size: number;
  ackMode: AckMode;
  adopted: boolean;
  extents: Extent[];
  createdAt: string;
}

export interface BackupRecord extends Backup {
  volumeId: number | null;
}

export interface CatalogOptions {
  /** Path to a better-sqlite3 binding built for another ABI (the Electron build). */
  nativeBinding?: string;
}

interface DeviceRow {
  id: number;
  path: string;
  kind: DeviceKind;
  size: number;
  data_start: number;
  label_uuid: string | null;
  added_at: string;
}
interface VolumeRow {
  id: number;
  name: string;
  size: number;
  ack_mode: AckMode;
  adopted: number;
  created_at: string;
}
interface ExtentRow {
  volume_id: number;
  volume_offset: number;
  device_id: number;
  device_offset: number;
  length: number;
}
interface BackupRow {
  id: string;
  volume_id: number | null;
  volume_name: string;
  policy: Backup['policy'];
  vault: string;
  state: Backup['state'];
  kind: Backup['kind'];
  started_at: string;
  ended_at: string | null;
  bytes_done: number;
  bytes_total: number;
  snapshot_id: string | null;
  error: string | null;
}

const toDevice = (r: DeviceRow): DeviceRecord => ({
  id: r.id,
  path: r.path,
  kind: r.kind,
  size: r.size,
  dataStart: r.data_start,
  labelUuid: r.label_uuid,
  addedAt: r.added_at,
});
const toExtent = (r: ExtentRow): Extent => ({ volumeOffset: r.volume_offset, deviceId: r.device_id, deviceOffset: r.device_offset, length: r.length });
const toBackup = (r: BackupRow): BackupRecord => ({
  id: r.id,
  volumeId: r.volume_id,
  volume: r.volume_name,
  policy: r.policy,
  vault: r.vault,
  state: r.state,
  kind: r.kind,
  startedAt: r.started_at,
  endedAt: r.ended_at,
  bytesDone: r.bytes_done,
  bytesTotal: r.bytes_total,
  snapshotId: r.snapshot_id,
  error: r.error,
});

function isUniqueViolation(e: unknown): boolean {
  return typeof (e as { code?: unknown })?.code === 'string' && (e as { code: string }).code.startsWith('SQLITE_CONSTRAINT_UNIQUE');
}

function tooNew(path: string, version: number): HoldfastError {
  return new HoldfastError(
    'CATALOG_TOO_NEW',
    `The catalog ${path} was written by a newer Holdfast (schema ${version}, this one knows up to ${SCHEMA_VERSION}). Update Holdfast to open it; nothing was changed.`,
    { version, known: SCHEMA_VERSION },
  );
}

export class Catalog {
  private constructor(
    private readonly db: Database.Database,
    readonly path: string,
  ) {}

  /**
   * Opens (creating if needed) and migrates the catalog. Throws CATALOG_TOO_NEW without touching
   * a newer one, and IO_ERROR for a file that is not a catalog (or is damaged).
   */
  static open(path: string, opts: CatalogOptions = {}): Catalog {
    try {
      return Catalog.openUnchecked(path, opts);
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT')
        throw new HoldfastError('IO_ERROR', `${path} is not a readable Holdfast catalog (${(e as Error).message}); restore it from a copy or move it away to start afresh.`, {
          path,
        });
      throw e;
    }
  }

  /** Statements by SQL text, prepared once (every statement here is a literal): preparing one costs more than most of these queries. */
  private readonly statements = new Map<string, Database.Statement<unknown[]>>();
  private sql(text: string): Database.Statement<unknown[]> {
    let st = this.statements.get(text);
    if (!st) this.statements.set(text, (st = this.db.prepare(text)));
    return st;
  }

  private static openUnchecked(path: string, opts: CatalogOptions): Catalog {
    const dbOpts: Database.Options = opts.nativeBinding ? { nativeBinding: opts.nativeBinding } : {};
    if (fs.existsSync(path)) {
      // Look before we touch: switching journal mode or migrating would modify a newer file.
      const peek = new Database(path, { ...dbOpts, readonly: true, fileMustExist: true });
      try {
        const v = peek.pragma('user_version', { simple: true }) as number;
        if (v > SCHEMA_VERSION) throw tooNew(path, v);
      } finally {
        peek.close();
      }
    }
    const db = new Database(path, dbOpts);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      db.pragma('busy_timeout = 5000');
      const cat = new Catalog(db, path);
      cat.migrate();
      return cat;
    } catch (e) {
      db.close();
      throw e;
    }
  }

  /** Schedules (migration 2), in the same database and transactions. */
  get schedules(): ScheduleStore {
    return (this.scheduleStore ??= new ScheduleStore(this.db));
  }
  private scheduleStore: ScheduleStore | null = null;

  get schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  private migrate(): void {
    const v = this.schemaVersion;
    if (v > SCHEMA_VERSION) throw tooNew(this.path, v);
    for (let i = v; i < SCHEMA_VERSION; i++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[i]!);
        this.db.pragma(`user_version = ${i + 1}`);
      })();
    }
  }

  /** Runs fn in one transaction (nested calls join the outer one). */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  // ---------- devices ----------

  addDevice(d: NewDevice): DeviceRecord {
    try {
      const info = this.sql('INSERT INTO devices (path, kind, size, data_start, label_uuid, added_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(d.path, d.kind, d.size, d.dataStart, d.labelUuid, new Date().toISOString());
      return this.getDevice(Number(info.lastInsertRowid))!;
    } catch (e) {
      if (isUniqueViolation(e)) throw new HoldfastError('ALREADY_EXISTS', `${d.path} is already a Holdfast device.`, { path: d.path });
      throw e;
    }
  }

  listDevices(): DeviceRecord[] {
    return (this.sql('SELECT * FROM devices ORDER BY id').all() as DeviceRow[]).map(toDevice);
  }

  /** By id (number) or exact path (string); null when unknown. */
  getDevice(idOrPath: number | string): DeviceRecord | null {
    const row =
      typeof idOrPath === 'number'
        ? (this.sql('SELECT * FROM devices WHERE id = ?').get(idOrPath) as DeviceRow | undefined)
        : (this.sql('SELECT * FROM devices WHERE path = ?').get(idOrPath) as DeviceRow | undefined);
    return row ? toDevice(row) : null;
  }

  getDeviceByUuid(uuid: string): DeviceRecord | null {
    const row = this.sql('SELECT * FROM devices WHERE label_uuid = ?').get(uuid) as DeviceRow | undefined;
    return row ? toDevice(row) : null;
  }

  /** A known device found at a new path (drive letters shift, images move) or with a new size. */
  updateDevice(id: number, change: { path?: string; size?: number; kind?: DeviceKind }): DeviceRecord {
    const d = this.getDevice(id);
    if (!d) throw new HoldfastError('NOT_FOUND', `No device with id ${id}.`);
    try {
      this.sql('UPDATE devices SET path = ?, size = ?, kind = ? WHERE id = ?').run(change.path ?? d.path, change.size ?? d.size, change.kind ?? d.kind, id);
    } catch (e) {
      if (isUniqueViolation(e)) throw new HoldfastError('ALREADY_EXISTS', `${change.path} is already a Holdfast device.`, { path: change.path });
      throw e;
    }
    return this.getDevice(id)!;
  }

  /** Throws IN_USE when extents still live on the device. */
  removeDevice(id: number): void {
    this.transaction(() => {
      const users = this.volumesOnDevice(id);
      if (users.length)
        throw new HoldfastError('IN_USE', `The device holds volumes ${users.map((v) => v.name).join(', ')}; delete them first.`, {
          volumes: users.map((v) => v.name),
        });
      const info = this.sql('DELETE FROM devices WHERE id = ?').run(id);
      if (info.changes === 0) throw new HoldfastError('NOT_FOUND', `No device with id ${id}.`);
    });
  }

  /** Every extent on every device, with its volume id. */
  allExtents(): Array<Extent & { volumeId: number }> {
    return (this.sql('SELECT * FROM extents ORDER BY device_id, device_offset').all() as ExtentRow[]).map((r) => ({ ...toExtent(r), volumeId: r.volume_id }));
  }

  volumesOnDevice(deviceId: number): VolumeRecord[] {
    const ids = this.sql('SELECT DISTINCT volume_id FROM extents WHERE device_id = ? ORDER BY volume_id').pluck().all(deviceId) as number[];
    return ids.map((id) => this.getVolume(id)!);
  }

  // ---------- volumes ----------

  private extentsOf(volumeId: number): Extent[] {
    return (this.sql('SELECT * FROM extents WHERE volume_id = ? ORDER BY volume_offset').all(volumeId) as ExtentRow[]).map(toExtent);
  }

  private toVolume(r: VolumeRow): VolumeRecord {
    return { id: r.id, name: r.name, size: r.size, ackMode: r.ack_mode, adopted: r.adopted === 1, extents: this.extentsOf(r.id), createdAt: r.created_at };
  }

  private insertExtents(volumeId: number, size: number, extents: Extent[]): void {
    let off = 0;
    const ins = this.sql('INSERT INTO extents (volume_id, volume_offset, device_id, device_offset, length) VALUES (?, ?, ?, ?, ?)');
    for (const e of extents) {
      invariant(e.volumeOffset === off, `extents of volume ${volumeId} are contiguous`);
      ins.run(volumeId, e.volumeOffset, e.deviceId, e.deviceOffset, e.length);
      off += e.length;
    }
    invariant(off === size, `extents of volume ${volumeId} sum to its size`);
  }

  /**
   * Inserts the volume and its extents in one transaction. Throws ALREADY_EXISTS for a taken name.
   * `restore` puts back a deleted volume with its id and creation time (undo after a failed label write).
   */
  createVolume(name: string, size: number, ackMode: AckMode, adopted: boolean, extents: Extent[], restore?: { id: number; createdAt: string }): VolumeRecord {
    return this.transaction(() => {
      let id: number;
      try {
        id = Number(
          this.sql('INSERT INTO volumes (id, name, size, ack_mode, adopted, created_at) VALUES (?, ?, ?, ?, ?, ?)')
            .run(restore?.id ?? null, name, size, ackMode, adopted ? 1 : 0, restore?.createdAt ?? new Date().toISOString()).lastInsertRowid,
        );
      } catch (e) {
        if (isUniqueViolation(e)) throw new HoldfastError('ALREADY_EXISTS', `A volume named "${name}" already exists.`, { name });
        throw e;
      }
      this.insertExtents(id, size, extents);
      return this.getVolume(id)!;
    });
  }

  listVolumes(): VolumeRecord[] {
    return (this.sql('SELECT * FROM volumes ORDER BY id').all() as VolumeRow[]).map((r) => this.toVolume(r));
  }

  /** By id (number) or name (string, case-insensitive); null when unknown. */
  getVolume(nameOrId: number | string): VolumeRecord | null {
    const row =
      typeof nameOrId === 'number'
        ? (this.sql('SELECT * FROM volumes WHERE id = ?').get(nameOrId) as VolumeRow | undefined)
        : (this.sql('SELECT * FROM volumes WHERE name = ?').get(nameOrId) as VolumeRow | undefined);
    return row ? this.toVolume(row) : null;
  }

  renameVolume(id: number, newName: string): VolumeRecord {
    try {
      const info = this.sql('UPDATE volumes SET name = ? WHERE id = ?').run(newName, id);
      if (info.changes === 0) throw new HoldfastError('NOT_FOUND', `No volume with id ${id}.`);
    } catch (e) {
      if (isUniqueViolation(e)) throw new HoldfastError('ALREADY_EXISTS', `A volume named "${newName}" already exists.`, { name: newName });
      throw e;
    }
    return this.getVolume(id)!;
  }

  /** Deletes the volume and its extents (and, for an adopted volume, the device row made for it). */
  deleteVolume(id: number): void {
    this.transaction(() => {
      const v = this.getVolume(id);
      if (!v) throw new HoldfastError('NOT_FOUND', `No volume with id ${id}.`);
      this.sql('DELETE FROM volumes WHERE id = ?').run(id);
      if (v.adopted) for (const e of v.extents) if (this.volumesOnDevice(e.deviceId).length === 0) this.sql('DELETE FROM devices WHERE id = ?').run(e.deviceId);
    });
  }

  /** Replaces a volume's size and extents (grow) in one transaction. */
  setExtents(volumeId: number, size: number, extents: Extent[]): VolumeRecord {
    return this.transaction(() => {
      const info = this.sql('UPDATE volumes SET size = ? WHERE id = ?').run(size, volumeId);
      if (info.changes === 0) throw new HoldfastError('NOT_FOUND', `No volume with id ${volumeId}.`);
      this.sql('DELETE FROM extents WHERE volume_id = ?').run(volumeId);
      this.insertExtents(volumeId, size, extents);
      return this.getVolume(volumeId)!;
    });
  }

  // ---------- backups ----------

  /**
   * A backup's row. A running one is committed without an fsync (synchronous NORMAL for that
   * commit): it is saved while the backup holds its volume's writes, on the thread that answers
   * NBD clients, and an fsync there waited up to 160 ms behind the vault's writeback. Power lost
   * before the next durable commit can lose that row — the volume's journal still aborts the
   * backup on the next start; only its history line is missing. Terminal rows are durable.
   */
  upsertBackup(b: BackupRecord): void {
    const lazy = b.state === 'running' && !this.db.inTransaction;
    if (lazy) this.db.pragma('synchronous = NORMAL');
    try {
      this.upsertBackupRow(b);
    } finally {
      if (lazy) this.db.pragma('synchronous = FULL');
    }
  }

  private upsertBackupRow(b: BackupRecord): void {
    this.sql(
      `INSERT INTO backups (id, volume_id, volume_name, policy, vault, state, kind, started_at, ended_at, bytes_done, bytes_total, snapshot_id, error)
         VALUES (@id, @volumeId, @volume, @policy, @vault, @state, @kind, @startedAt, @endedAt, @bytesDone, @bytesTotal, @snapshotId, @error)
         ON CONFLICT(id) DO UPDATE SET volume_id = excluded.volume_id, volume_name = excluded.volume_name, policy = excluded.policy,
           vault = excluded.vault, state = excluded.state, kind = excluded.kind, started_at = excluded.started_at, ended_at = excluded.ended_at,
           bytes_done = excluded.bytes_done, bytes_total = excluded.bytes_total, snapshot_id = excluded.snapshot_id, error = excluded.error`,
    ).run(b);
  }

  /** Newest first. */
  listBackups(): BackupRecord[] {
    return (this.sql('SELECT * FROM backups ORDER BY started_at DESC, id DESC').all() as BackupRow[]).map(toBackup);
  }

  getBackup(id: string): BackupRecord | null {
    const row = this.sql('SELECT * FROM backups WHERE id = ?').get(id) as BackupRow | undefined;
    return row ? toBackup(row) : null;
  }

  // ---------- settings ----------

  getSetting(key: string): string | null {
    const v = this.sql('SELECT value FROM settings WHERE key = ?').pluck().get(key) as string | undefined;
    return v ?? null;
  }

  setSetting(key: string, value: string): void {
    this.sql('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
  }
}
