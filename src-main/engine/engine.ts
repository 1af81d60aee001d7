/**
 * The Engine facade: one object per data directory that owns the catalog, the devices, the
 * live volumes (journals + hold queues) and the backup sessions, and answers every contract
 * operation. Hosts (Electron main, serve, the CLI in-process, the control socket) only map
 * transports onto `engine.api`; nothing here knows about them.
 *
 * Invariants: one Engine per data directory (DataDir lock); a catalog volume is live iff all
 * its devices are present; a volume's backup flag is set iff a BackupSession for it runs.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Api, HoldPolicy, HoldState, Volume } from '../../src-shared/contract';
import { CellState, encodeBlockMap } from '../../src-shared/block-map';
import { HoldfastError } from '../../src-shared/errors';
import { BackupApp } from './backup/backup-app';
import { BackupSession } from './backup/backup-session';
import { ImageTransfer } from './backup/image-transfer';
import type { ExportLease, ExportRegistry } from './block-export';
import { Catalog, type VolumeRecord } from './catalog/catalog';
import { DataDir } from './datadir';
import { DeviceSet } from './devices/device-set';
import { listDrives } from './devices/drives';
import type { Env } from './env/env';
import { useNativeFsAddon } from './env/native-fs';
import { nodeEnv } from './env/node-env';
import { EngineEvents } from './events';
import { EventPacer } from './event-pacer';
import { probeFilesystem } from './fsprobe';
import { exportRegistryOf, type EngineExportRegistry } from './nbd-exports';
import { DEFAULT_JOURNAL_OPTIONS, type JournalOptions } from './journal/journal';
import { LiveVolume, type RecoveryReport } from './volumes/live-volume';
import { schedulerHostOf } from './schedule/engine-host';
import { Scheduler } from './schedule/scheduler';
import { VolumeManager } from './volumes/volume-manager';
import { WriteRateSampler } from './volumes/write-rate';

export const VERSION = '0.1.0';
// Hold-queue state is sampled at most every 25 ms per volume (≤ 40/s) on a fixed grid (see
// event-pacer.ts), so a panel gets ~40 updates/s under write load; hosts only guard bursts per client.
export const HOLD_EVENT_INTERVAL_MS = 25;
/**
 * Hold events carry the block map at most this often per backup (counts go out every event):
 * computing it costs ~1 ms per event on a 20k-entry queue, which at 40 events/s stalled
 * clients' writes.
 */
export const BLOCK_MAP_EVENT_MS = 200;

export interface EngineOptions {
  dataDir: string;
  env?: Env;
  journal?: Partial<JournalOptions>;
  /** better-sqlite3 binding built for Electron's ABI, when running inside Electron. */
  nativeBinding?: string;
  /** The holdfast-fs addon as a file of its own (the packaged app), instead of the package. */
  nativeFsAddon?: string;
  /** Period of the `volumes.stats` write-rate event (default 1 s). */
  writeRateIntervalMs?: number;
}

export function readBootId(): string {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return `boot-${Math.round((Date.now() - os.uptime() * 1000) / 10_000)}`;
  }
}

export class Engine {
  readonly events = new EngineEvents();
  readonly api: Api;
  /** What NBD serves: live volumes by name and default-vault snapshots as `<volume>@<snapshotId>` (read-only). */
  readonly exports: EngineExportRegistry;
  readonly recovery: RecoveryReport[] = [];
  private readonly live = new Map<number, LiveVolume>();
  private readonly sessions = new Map<number, BackupSession>();
  private readonly leases = new Map<number, Set<{ revoke: () => void }>>();
  private readonly holdEvents = new EventPacer<LiveVolume>(HOLD_EVENT_INTERVAL_MS, (vol) => {
    // Nobody watching (a headless `holdfast nbd`): the state is not even computed.
    if (!vol.isClosed && !this.closed && this.events.wants('holds.changed')) this.events.emit('holds.changed', this.holdStateOf(vol, BLOCK_MAP_EVENT_MS));
  });
  private writeRates: WriteRateSampler | null = null;
  private nbdAddress: { socket: string | null; tcp: string | null } = { socket: null, tcp: null };
  private closed = false;
  private readonly bootId = readBootId();

  readonly backups: BackupApp;
  readonly imageTransfer: ImageTransfer = new ImageTransfer(this);
  /** Schedules: answers schedule.* at once; runs them only after startScheduler() (hosts that own the data dir for long). */
  readonly scheduler: Scheduler;

  private constructor(
    readonly dataDir: DataDir,
    readonly catalog: Catalog,
    readonly manager: VolumeManager,
    readonly env: Env,
    private readonly journalOptions: JournalOptions,
  ) {
    manager.beforeChange = (volumeId, what) => this.beforeVolumeChange(volumeId, what);
    this.backups = new BackupApp({
      catalog,
      events: this.events,
      env,
      defaultVault: dataDir.defaultVault,
      beginBackup: (v, p, id) => this.beginBackup(v, p, id),
      volume: (n) => this.volume(n),
      hasVolume: (n) => catalog.getVolume(n) !== null,
      createVolume: async (name, size) => {
        await this.api['volume.create']({ name, size });
        return this.volume(name);
      },
      revokeExports: (n) => this.revokeExports(n),
      isBackingUp: (n) => this.sessionFor(n) !== null,
      foregroundWrites: () => {
        let n = 0;
        for (const v of this.live.values()) n += v.writesAcked;
        return n;
      },
    });
    this.scheduler = new Scheduler(
      schedulerHostOf({ catalog, events: this.events, env, defaultVault: dataDir.defaultVault, api: () => this.api, isBackingUp: (n) => this.sessionFor(n) !== null }),
      { clock: { now: () => env.now(), every: (ms, fn) => { const t = setInterval(fn, ms); t.unref?.(); return () => clearInterval(t); } } },
    );
    this.api = this.buildApi();
    this.exports = exportRegistryOf({
      volumes: this.buildExportRegistry(),
      events: this.events,
      backups: this.backups,
      api: this.api,
      env,
      defaultVault: dataDir.defaultVault,
    });
  }

  static async open(opts: EngineOptions): Promise<Engine> {
    const env = opts.env ?? nodeEnv;
    useNativeFsAddon(opts.nativeFsAddon);
    const dataDir = await DataDir.open(path.resolve(opts.dataDir), env);
    let catalog: Catalog | null = null;
    try {
      catalog = Catalog.open(dataDir.catalogPath, { nativeBinding: opts.nativeBinding });
      const devices = new DeviceSet(env);
      const manager = new VolumeManager(catalog, devices, env);
      await manager.openDevices();
      const engine = new Engine(dataDir, catalog, manager, env, { ...DEFAULT_JOURNAL_OPTIONS, ...opts.journal });
      for (const rec of catalog.listVolumes()) await engine.openVolume(rec);
      engine.writeRates = new WriteRateSampler(() => engine.live.values(), (st) => engine.events.emit('volumes.stats', st), () => env.monotonic(), opts.writeRateIntervalMs);
      engine.writeRates.start();
      return engine;
    } catch (e) {
      catalog?.close();
      await dataDir.release();
      throw e;
    }
  }

  get dataDirPath(): string {
    return this.dataDir.dir;
  }

  /** Hosts that keep the engine running (serve, nbd, the app) start the schedules; one-shot CLI commands do not. */
  startScheduler(): void {
    this.scheduler.start();
  }

  /** Hosts tell the engine where NBD listens, so volumes can show their address. */
  setNbdAddress(a: { socket: string | null; tcp: string | null }): void {
    this.nbdAddress = a;
  }

  private journalDirFor(volumeId: number): string {
    return path.join(this.dataDir.journalDir, `v${volumeId}`);
  }

  private async openVolume(rec: VolumeRecord): Promise<LiveVolume | null> {
    const deviceIds = [...new Set(rec.extents.map((e) => e.deviceId))];
    if (!deviceIds.every((id) => this.manager.devices.isPresent(id))) return null;
    const { volume, report } = await LiveVolume.open({
      id: rec.id,
      name: rec.name,
      size: rec.size,
      ackMode: rec.ackMode,
      extents: rec.extents,
      fileFor: (id) => this.manager.devices.file(id),
      journalDir: this.journalDirFor(rec.id),
      journalOptions: this.journalOptions,
      env: this.env,
      bootId: this.bootId,
    });
    volume.onHoldChange = () => this.scheduleHoldEvent(volume);
    this.live.set(rec.id, volume);
    if (report.redone || report.discarded || report.interruptedBackupId || report.powerLoss) this.recovery.push(report);
    if (report.interruptedBackupId) {
      const b = this.catalog.getBackup(report.interruptedBackupId);
      if (b && b.state === 'running')
        this.catalog.upsertBackup({ ...b, state: 'failed', endedAt: new Date().toISOString(), error: 'Holdfast stopped while this backup ran; the next backup re-reads what changed.' });
    }
    return volume;
  }

  /** The live volume by name; NOT_FOUND if unknown, DEVICE_MISSING if its devices are not attached. */
  volume(name: string): LiveVolume {
    const rec = this.manager.getVolume(name);
    const v = this.live.get(rec.id);
    if (!v) throw new HoldfastError('DEVICE_MISSING', `Volume ${name} is not available: one of its devices is not attached.`);
    return v;
  }

  private beforeVolumeChange(volumeId: number, what: string): void {
    const s = this.sessions.get(volumeId);
    if (s) throw new HoldfastError('IN_USE', `Cannot ${what} the volume while backup ${s.backupId} runs; wait for it or abort it.`);
    if (what === 'delete' && (this.leases.get(volumeId)?.size ?? 0) > 0)
      throw new HoldfastError('IN_USE', 'Cannot delete the volume while NBD clients are connected to it; disconnect them first.');
  }

  // ------------------------------------------------------------------ backups (the backup application's messages)

  /** Sends begin(volume, policy) and returns the session the backup application drives. */
  async beginBackup(volumeName: string, policy: HoldPolicy, backupId: string): Promise<BackupSession> {
    const vol = this.volume(volumeName);
    if (this.sessions.has(vol.id)) throw new HoldfastError('BACKUP_RUNNING', `Volume ${volumeName} is already being backed up.`);
    const session = await BackupSession.begin(vol, backupId, policy, (read, size) => probeFilesystem(read, size), (s) => {
      if (this.sessions.get(vol.id) === s) this.sessions.delete(vol.id);
      this.scheduleHoldEvent(vol);
    });
    this.sessions.set(vol.id, session);
    return session;
  }

  sessionFor(volumeName: string): BackupSession | null {
    const rec = this.manager.getVolume(volumeName);
    return this.sessions.get(rec.id) ?? null;
  }

  // ------------------------------------------------------------------ hold-queue state

  /** `blockMapMaxAgeMs`: a block map computed this recently may be sent again (events). */
  holdStateOf(vol: LiveVolume, blockMapMaxAgeMs = 0): HoldState {
    const st = vol.holdState();
    const session = this.sessions.get(vol.id);
    if (!session) return st;
    const now = this.env.monotonic();
    let cached = this.blockMaps.get(session);
    if (!cached || now - cached.at > blockMapMaxAgeMs) this.blockMaps.set(session, (cached = { at: now, map: this.blockMapOf(vol) }));
    return { ...st, blockMap: cached.map };
  }

  /** The last block map of each running backup (events send it at most every BLOCK_MAP_EVENT_MS). */
  private readonly blockMaps = new WeakMap<BackupSession, { at: number; map: HoldState['blockMap'] }>();

  /** Coarse map for the UI: copied / not copied / held, at most 1024 cells. */
  private blockMapOf(vol: LiveVolume): HoldState['blockMap'] {
    const size = vol.size();
    const cells = Math.min(1024, Math.max(1, Math.ceil(size / 4096)));
    const cellBytes = Math.ceil(size / cells / 4096) * 4096;
    const n = Math.ceil(size / cellBytes);
    const states = new Uint8Array(n);
    const copied = vol.copiedMap();
    for (let i = 0; i < n; i++) {
      const off = i * cellBytes;
      const len = Math.min(cellBytes, size - off);
      if (copied === null) states[i] = vol.backupPolicy === 'metadata' ? CellState.OUTSIDE : CellState.NOT_COPIED;
      else states[i] = copied.allIn(off, len) ? CellState.COPIED : CellState.NOT_COPIED;
    }
    vol.forEachHeldCell(cellBytes, (i) => {
      if (i < n) states[i] = CellState.HELD;
    });
    return { cells: n, cellBytes, states: encodeBlockMap(states) };
  }

  private scheduleHoldEvent(vol: LiveVolume): void {
    if (!this.closed) this.holdEvents.changed(vol);
  }

  // ------------------------------------------------------------------ contract

  private toVolume(rec: VolumeRecord): Volume {
    const s = this.sessions.get(rec.id);
    const b = s ? this.catalog.getBackup(s.backupId) : null;
    const clients = this.leases.get(rec.id)?.size ?? 0;
    const a = this.nbdAddress;
    return {
      ...rec,
      backup: s ? { id: s.backupId, policy: s.policy, startedAt: b?.startedAt ?? new Date().toISOString() } : null,
      nbd:
        a.socket || a.tcp
          ? {
              socket: a.socket ? `nbd+unix:///${rec.name}?socket=${a.socket}` : null,
              tcp: a.tcp ? `nbd://${a.tcp}/${rec.name}` : null,
              clients,
            }
          : null,
    };
  }

  private buildApi(): Api {
    const changed = (what: 'volumes.changed' | 'devices.changed') => this.events.emit(what, {});
    const volumeOps: Omit<Api, keyof ReturnType<BackupApp['ops']> | keyof ReturnType<ImageTransfer['ops']> | keyof ReturnType<Scheduler['ops']>> = {
      'engine.info': async () => ({
        version: VERSION,
        dataDir: this.dataDir.dir,
        defaultVault: this.dataDir.defaultVault,
        nbd: { ...this.nbdAddress },
      }),
      'drive.list': async () => listDrives(),
      'device.list': async () => this.manager.listDevices(),
      'device.add': async (i) => {
        const d = await this.manager.addDevice(i);
        changed('devices.changed');
        return d;
      },
      'device.remove': async (i) => {
        await this.manager.removeDevice(i.device);
        changed('devices.changed');
        return { ok: true as const };
      },
      'volume.list': async () => this.manager.listVolumes().map((r) => this.toVolume(r)),
      'volume.create': async (i) => {
        const rec = await this.manager.createVolume(i);
        try {
          await this.openVolume(rec);
        } catch (e) {
          // No half volume: a volume whose journal cannot open is removed again.
          await this.manager.deleteVolume(rec.name).catch(() => undefined);
          throw e;
        }
        changed('volumes.changed');
        changed('devices.changed');
        return this.toVolume(rec);
      },
      'volume.grow': async (i) => {
        const vol = this.volume(i.name);
        const rec = await this.manager.growVolume(i.name, i.size);
        vol.grow(rec.size, rec.extents);
        changed('volumes.changed');
        changed('devices.changed');
        return this.toVolume(rec);
      },
      'volume.rename': async (i) => {
        const rec = await this.manager.renameVolume(i.name, i.newName);
        this.live.get(rec.id)?.rename(rec.name);
        changed('volumes.changed');
        return this.toVolume(rec);
      },
      'volume.delete': async (i) => {
        const rec = this.manager.getVolume(i.name);
        this.beforeVolumeChange(rec.id, 'delete');
        const vol = this.live.get(rec.id);
        await this.manager.deleteVolume(i.name);
        if (vol) await vol.close();
        if (vol) this.holdEvents.forget(vol);
        this.live.delete(rec.id);
        await this.env.rmdir(this.journalDirFor(rec.id));
        changed('volumes.changed');
        changed('devices.changed');
        return { ok: true as const };
      },
      'volume.adopt': async (i) => {
        const rec = await this.manager.adoptVolume(i.path, i.name);
        await this.openVolume(rec);
        changed('volumes.changed');
        changed('devices.changed');
        return this.toVolume(rec);
      },
      'snapshot.mount': async (i) => {
        if (i.vault && path.resolve(i.vault) !== path.resolve(this.dataDir.defaultVault))
          throw new HoldfastError('NOT_AVAILABLE', 'Only snapshots in the default vault can be mounted over NBD for now; restore or export from other vaults.');
        const a = this.nbdAddress;
        if (!a.socket && !a.tcp)
          throw new HoldfastError('NOT_AVAILABLE', 'No NBD server is running: start `holdfast nbd` or `holdfast serve` (or the app), then mount the snapshot.');
        await this.exports.refresh();
        const snap = (await this.api['snapshot.list']({})).find((x) => x.id === i.id);
        if (!snap) throw new HoldfastError('SNAPSHOT_NOT_FOUND', `There is no snapshot ${i.id} in the default vault.`);
        const name = `${snap.volume}@${snap.id}`;
        return {
          export: name,
          socket: a.socket ? `nbd+unix:///${name}?socket=${a.socket}` : null,
          tcp: a.tcp ? `nbd://${a.tcp}/${name}` : null,
          readOnly: true as const,
        };
      },
      'holds.get': async (i) => {
        const vols = i.volume ? [this.volume(i.volume)] : [...this.live.values()];
        return vols.map((v) => this.holdStateOf(v));
      },
    };
    return { ...volumeOps, ...this.backups.ops(), ...this.imageTransfer.ops(), ...this.scheduler.ops() };
  }

  // ------------------------------------------------------------------ NBD exports

  private buildExportRegistry(): ExportRegistry {
    return {
      list: () =>
        this.manager
          .listVolumes()
          .filter((r) => this.live.has(r.id))
          .map((r) => ({ name: r.name, description: `Holdfast volume ${r.name} (${r.size} bytes)` })),
      open: (name: string): ExportLease => {
        const vol = this.volume(name);
        let set = this.leases.get(vol.id);
        if (!set) this.leases.set(vol.id, (set = new Set()));
        const callbacks: Array<() => void> = [];
        const entry = { revoke: () => callbacks.forEach((c) => c()) };
        set.add(entry);
        const leases = set;
        this.events.emit('volumes.changed', {});
        return {
          export: vol,
          onRevoke: (cb) => callbacks.push(cb),
          close: () => {
            if (leases.delete(entry)) this.events.emit('volumes.changed', {});
          },
        };
      },
    };
  }

  /** Disconnects every NBD client of a volume (before a restore overwrites it). */
  revokeExports(volumeName: string): void {
    const rec = this.manager.getVolume(volumeName);
    for (const l of [...(this.leases.get(rec.id) ?? [])]) l.revoke();
  }

  // ------------------------------------------------------------------ shutdown

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.exports.dispose();
    this.holdEvents.dispose();
    this.writeRates?.dispose();
    this.scheduler.stop();
    await this.backups.close('Holdfast is shutting down');
    // Scheduled runs record how they ended (their backups were just aborted); a drive image is not waited for long.
    await Promise.race([this.scheduler.idle(), new Promise((r) => setTimeout(r, 5_000).unref?.())]);
    for (const s of [...this.sessions.values()]) await s.abort('Holdfast is shutting down').catch(() => undefined);
    for (const v of this.live.values()) await v.close().catch(() => undefined);
    this.live.clear();
    await this.manager.devices.closeAll();
    this.catalog.close();
    await this.dataDir.release();
  }
}
