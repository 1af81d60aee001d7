/**
 * The backup application (DESIGN.md §4): the in-process client of the volume manager's
 * backup messages. It sends begin/rangeCopied/end/abort through a BackupSession, streams
 * the point-in-time image into a vault, keeps the backup's record in the catalog, and
 * answers the vault-side contract operations (snapshots, verify, export, restore, prune, gc).
 *
 * Invariants: a backup record is `running` iff its session runs in this process (or the
 * process died, and recovery marks it failed); a snapshot is visible only once its manifest
 * is durable (the vault's job); every failure aborts the session, so the flag never stays set.
 */
import crypto from 'node:crypto';
import path from 'node:path';
import type { Api, Backup, HoldPolicy, OpInput, OpOutput, Snapshot } from '../../../src-shared/contract';
import { HoldfastError } from '../../../src-shared/errors';
import type { Catalog } from '../catalog/catalog';
import { probeDevicePath } from '../devices/probe';
import type { Env } from '../env/env';
import type { EngineEvents } from '../events';
import { runBackup, type BackupProgress } from '../vault/backup-writer';
import { VAULT_CONFIG_FILE, type SnapshotManifest } from '../vault/format';
import { collectGarbage, pruneSnapshots, verifySnapshot } from '../vault/maintenance';
import { exportSnapshot, restoreSnapshot } from '../vault/restore';
import { SnapshotExport } from '../vault/snapshot-export';
import type { ChunkWorkers } from '../vault/chunk-workers';
import { Vault } from '../vault/vault';
import { ChunkWorkerPools } from '../vault/worker-pools';
import { CpuSplit, type ThreadPlacement } from '../vault/cpu-split';
import { HelperSlices } from '../vault/helper-slices';
import type { BackupSession } from './backup-session';
import { BackupPacer, pacedSource } from './backup-pacer';
import { eventLoopLag } from './loop-lag';
import type { LiveVolume } from '../volumes/live-volume';

/** How long a backup of volumes being written waits for its chunk worker to boot before it begins anyway. */
const WORKER_BOOT_WAIT_MS = 2_000;

/** What the backup application needs from the engine that hosts it. */
export interface BackupHost {
  readonly catalog: Catalog;
  readonly events: EngineEvents;
  readonly env: Env;
  readonly defaultVault: string;
  beginBackup(volume: string, policy: HoldPolicy, backupId: string): Promise<BackupSession>;
  volume(name: string): LiveVolume;
  hasVolume(name: string): boolean;
  createVolume(name: string, size: number): Promise<LiveVolume>;
  revokeExports(volume: string): void;
  isBackingUp(volume: string): boolean;
  /** Grows with every write acknowledged by any volume (the backup throttle watches it). */
  foregroundWrites(): number;
}

interface Running {
  record: Backup;
  controller: AbortController;
  done: Promise<void>;
  lastEmit: number;
  progress: BackupProgress | null;
  pacer: BackupPacer;
}

const PROGRESS_INTERVAL_MS = 250;

export class BackupApp {
  private readonly running = new Map<string, Running>();
  private readonly vaults = new Map<string, Vault>();
  /** SHA-256 of the passphrase that opened each cached encrypted vault: every request must bring it again. */
  private readonly vaultKeys = new WeakMap<Vault, string>();
  /** While a throttled backup runs under write load: the engine thread on a CPU of its own (cpu-split.ts). */
  private readonly split = CpuSplit.forThisThread();
  /**
   * Every other thread preemptible by a woken client (helper-slices.ts): those the process has
   * now — libuv's pool and V8's helpers start before the engine is built — and each chunk worker
   * once it reports ready (after it set its own nice, so nothing else writes that thread's nice).
   */
  private readonly slices = HelperSlices.forThisThread();
  private readonly placement: ThreadPlacement = {
    addWorker: (tid) => {
      this.split.addWorker(tid);
      this.slices?.apply(tid);
    },
    removeWorker: (tid) => this.split.removeWorker(tid),
  };
  private readonly pools = new ChunkWorkerPools(undefined, this.placement);

  constructor(private readonly host: BackupHost) {
    this.slices?.sweep();
  }

  /** Opens (default vault: creating it on first use) and caches a vault. */
  async vault(dir: string | undefined, passphrase?: string): Promise<Vault> {
    const d = path.resolve(dir ?? this.host.defaultVault);
    const cached = this.vaults.get(d);
    if (cached && (!cached.encrypted || (passphrase !== undefined && this.vaultKeys.get(cached) === passphraseDigest(passphrase)))) return cached;
    if (cached) {
      // Opened earlier by another request (or client) with its passphrase: that does not unlock it
      // for this one. Vault.open answers VAULT_LOCKED for a missing or wrong passphrase.
      await Vault.open(d, { passphrase, env: this.host.env });
      this.vaultKeys.set(cached, passphraseDigest(passphrase!));
      return cached;
    }
    let v: Vault;
    // The data directory's own vault is created on first use, whether or not its path was given.
    const isDefault = d === path.resolve(this.host.defaultVault);
    if (isDefault && !(await this.host.env.stat(path.join(d, VAULT_CONFIG_FILE)))) v = await Vault.init(d, { env: this.host.env });
    else v = await Vault.open(d, { passphrase, env: this.host.env });
    if (v.encrypted && passphrase !== undefined) this.vaultKeys.set(v, passphraseDigest(passphrase));
    this.vaults.set(d, v);
    return v;
  }

  private toSnapshot(m: SnapshotManifest, vault: Vault): Snapshot {
    return {
      id: m.id,
      volume: m.volume,
      size: m.size,
      createdAt: m.createdAt,
      policy: m.policy,
      kind: m.kind,
      parent: m.parent,
      storedBytes: m.stats.storedBytes,
      vault: vault.dir,
    };
  }

  private save(r: Backup, volumeId: number | null): void {
    this.host.catalog.upsertBackup({ ...r, volumeId });
  }

  private emitProgress(run: Running, force = false): void {
    const now = Date.now();
    if (!force && now - run.lastEmit < PROGRESS_INTERVAL_MS) return;
    run.lastEmit = now;
    const p = run.progress;
    this.host.events.emit('backup.progress', {
      ...run.record,
      mbPerSec: p?.mbPerSec ?? 0,
      etaSec: p?.etaSec ?? null,
      dedupRatio: p?.dedupRatio ?? null,
      throttledToMiBPerSec: run.pacer.throttling() ? Math.round((run.pacer.rate / 2 ** 20) * 10) / 10 : null,
    });
  }

  async start(i: OpInput<'backup.start'>): Promise<Backup> {
    const policy: HoldPolicy = i.policy ?? 'range';
    const vault = await this.vault(i.vault, i.passphrase);
    vault.assertWritable();
    const vol = this.host.volume(i.volume);
    if (this.host.isBackingUp(i.volume)) throw new HoldfastError('BACKUP_RUNNING', `Volume ${i.volume} is already being backed up; wait for that backup or abort it.`);
    const id = `bk-${Date.now().toString(36)}-${crypto.randomBytes(3).toString('hex')}`;
    const record: Backup = {
      id,
      volume: vol.name,
      policy,
      vault: vault.dir,
      state: 'running',
      kind: i.full ? 'full' : 'incremental',
      startedAt: new Date().toISOString(),
      endedAt: null,
      bytesDone: 0,
      bytesTotal: vol.size(),
      snapshotId: null,
      error: null,
    };
    // The throttle's baseline is the engine's loop lateness before the backup begins; its
    // pressure, the volume's held data against the journal's capacity.
    const holdSplit = this.split.holder();
    const pacer = new BackupPacer({ mode: i.throttle ?? 'auto', activity: () => this.host.foregroundWrites(), lag: eventLoopLag(), pressure: () => vol.holdFill(), onBusyChange: holdSplit });
    const lease = this.pools.lease(vault);
    let session: Awaited<ReturnType<BackupHost['beginBackup']>>;
    try {
      // Volumes are being written: a chunk worker boots before the backup begins, not while it
      // holds their writes (a boot is ~70 ms of CPU that the volumes' clients wait behind).
      await pacer.calibrate(() => lease.workers.whenUp(WORKER_BOOT_WAIT_MS));
      session = await this.host.beginBackup(vol.name, policy, id);
    } catch (e) {
      pacer.close();
      lease.release();
      throw e;
    }
    this.save(record, vol.id);
    const controller = new AbortController();
    const run: Running = { record, controller, done: Promise.resolve(), lastEmit: 0, progress: null, pacer };
    this.running.set(id, run);
    run.done = runBackup(pacedSource(session, pacer), vault, {
      workers: lease.workers,
      full: i.full,
      signal: controller.signal,
      onProgress: (p) => {
        run.progress = p;
        record.bytesDone = p.bytesDone;
        record.bytesTotal = p.bytesTotal;
        record.kind = p.kind;
        this.emitProgress(run);
      },
    })
      .then((m) => {
        record.state = 'completed';
        record.snapshotId = m.id;
        record.kind = m.kind;
        record.bytesDone = record.bytesTotal;
      })
      .catch((e: unknown) => {
        record.state = controller.signal.aborted ? 'aborted' : 'failed';
        record.error = e instanceof Error ? e.message : String(e);
        return session.abort(record.error).catch(() => undefined);
      })
      .finally(() => {
        pacer.close();
        holdSplit(false);
        lease.release();
        record.endedAt = new Date().toISOString();
        this.save(record, vol.id);
        this.running.delete(id);
        this.emitProgress(run, true);
        if (record.state === 'completed') this.host.events.emit('snapshots.changed', { vault: vault.dir });
      });
    this.emitProgress(run, true);
    if (i.detach) return { ...record };
    await run.done;
    if (record.state !== 'completed') {
      const code = record.state === 'aborted' ? 'CANCELLED' : 'BACKUP_FAILED';
      throw new HoldfastError(code, `Backup of ${record.volume} ${record.state === 'aborted' ? 'was cancelled' : 'failed'}: ${record.error}`, { backupId: id });
    }
    return { ...record };
  }

  async abort(id: string): Promise<Backup> {
    const run = this.running.get(id);
    if (!run) {
      const b = this.host.catalog.getBackup(id);
      if (!b) throw new HoldfastError('NOT_FOUND', `There is no backup ${id}.`);
      throw new HoldfastError('BACKUP_NOT_RUNNING', `Backup ${id} is not running (it ${b.state}).`);
    }
    run.controller.abort(new HoldfastError('CANCELLED', 'Cancelled by the user.'));
    await run.done;
    return { ...run.record };
  }

  list(): Backup[] {
    return this.host.catalog.listBackups().map(({ volumeId: _v, ...b }) => {
      const live = this.running.get(b.id);
      return live ? { ...live.record } : b;
    });
  }

  /** Waits for every running backup (used at shutdown after aborting them). */
  async abortAll(reason: string): Promise<void> {
    for (const r of this.running.values()) r.controller.abort(new HoldfastError('CANCELLED', reason));
    await Promise.all([...this.running.values()].map((r) => r.done));
  }

  /** Shutdown: aborts running backups, then ends the worker pools. */
  async close(reason: string): Promise<void> {
    await this.abortAll(reason);
    await this.pools.close();
    await this.split.close();
  }

  /** Runs fn with the vault's long-lived worker pool. */
  private async withWorkers<T>(vault: Vault, fn: (workers: ChunkWorkers) => Promise<T>): Promise<T> {
    const lease = this.pools.lease(vault);
    try {
      return await fn(lease.workers);
    } finally {
      lease.release();
    }
  }

  async restore(i: OpInput<'restore.start'>): Promise<OpOutput<'restore.start'>> {
    const vault = await this.vault(i.vault, i.passphrase);
    const m = await vault.getManifest(i.id);
    const targets = [i.toVolume, i.toFile, i.toDevice].filter((t) => t !== undefined);
    if (targets.length !== 1) throw new HoldfastError('INVALID_ARGUMENT', 'Restore needs exactly one target: --to-volume NAME, --to-file PATH or --to-device DEV.');
    if (i.toFile) {
      const abs = path.resolve(i.toFile);
      if (await this.host.env.stat(abs)) throw new HoldfastError('ALREADY_EXISTS', `${abs} already exists; restore to a new file name (Holdfast never overwrites a file silently).`);
      const r = await exportSnapshot(vault, m.id, 'raw', abs);
      return { id: m.id, target: r.path, bytes: r.bytes };
    }
    if (i.toVolume) {
      let vol: LiveVolume;
      if (this.host.hasVolume(i.toVolume)) {
        vol = this.host.volume(i.toVolume);
        if (this.host.isBackingUp(vol.name)) throw new HoldfastError('BACKUP_RUNNING', `Volume ${vol.name} is being backed up; restore over it after the backup ends.`);
        if (i.confirm !== vol.name)
          throw new HoldfastError('CONFIRMATION_REQUIRED', `Restoring over the existing volume ${vol.name} replaces all its data. Confirm by typing its name (--confirm ${vol.name}).`);
        if (vol.size() < m.size) throw new HoldfastError('DEVICE_TOO_SMALL', `Volume ${vol.name} (${vol.size()} bytes) is smaller than snapshot ${m.id} (${m.size} bytes); grow it first or restore to a new volume.`);
        this.host.revokeExports(vol.name); // its NBD clients are disconnected first
      } else vol = await this.host.createVolume(i.toVolume, m.size);
      // Zero regions go only where the volume does not read as zeroes already (a new volume on a
      // sparse image stays sparse), and there as write-zeroes (holes where the image allows).
      await vol.holesLearnt();
      await this.withWorkers(vault, (workers) =>
        restoreSnapshot(
          vault,
          m.id,
          {
            size: vol.size(),
            sparse: false,
            readsZero: (o, l) => vol.readsZero(o, l),
            zero: (o, l) => vol.writeZeroes(o, l),
            write: (o, b) => vol.write(o, b),
            flush: () => vol.flush(),
          },
          { workers },
        ),
      );
      this.host.events.emit('volumes.changed', {});
      return { id: m.id, target: `volume:${vol.name}`, bytes: m.size };
    }
    const dev = path.resolve(i.toDevice!);
    const probed = await probeDevicePath(dev, this.host.env, { minSize: 1 });
    const name = path.basename(probed.realPath);
    if (i.confirm !== name) throw new HoldfastError('CONFIRMATION_REQUIRED', `Restoring to ${dev} erases everything on it. Confirm by typing its name (--confirm ${name}).`);
    if (probed.size < m.size) throw new HoldfastError('DEVICE_TOO_SMALL', `${dev} (${probed.size} bytes) is smaller than snapshot ${m.id} (${m.size} bytes).`);
    const file = await this.host.env.open(dev);
    try {
      await this.withWorkers(vault, (workers) =>
        restoreSnapshot(vault, m.id, { size: probed.size, sparse: false, write: (o, b) => file.write(b, o), flush: () => file.datasync() }, { workers }),
      );
    } finally {
      await file.close();
    }
    return { id: m.id, target: dev, bytes: m.size };
  }

  ops(): Pick<Api, 'backup.start' | 'backup.list' | 'backup.abort' | 'snapshot.list' | 'snapshot.verify' | 'snapshot.export' | 'restore.start' | 'vault.init' | 'vault.prune' | 'vault.gc'> {
    return {
      'backup.start': (i) => this.start(i),
      'backup.list': async () => this.list(),
      'backup.abort': (i) => this.abort(i.id),
      'snapshot.list': async (i) => {
        const v = await this.vault(i.vault, i.passphrase);
        return (await v.listSnapshots()).map((m) => this.toSnapshot(m, v));
      },
      'snapshot.verify': async (i) => {
        const v = await this.vault(i.vault, i.passphrase);
        const r = await verifySnapshot(v, i.id);
        return { ok: r.ok, chunks: r.chunks, bad: r.bad };
      },
      'snapshot.export': async (i) => {
        const v = await this.vault(i.vault, i.passphrase);
        const abs = path.resolve(i.path);
        if (await this.host.env.stat(abs)) throw new HoldfastError('ALREADY_EXISTS', `${abs} already exists; export to a new file name.`);
        return exportSnapshot(v, i.id, i.format, abs);
      },
      'restore.start': (i) => this.restore(i),
      'vault.init': async (i) => {
        const d = path.resolve(i.dir);
        const v = await Vault.init(d, { passphrase: i.passphrase, env: this.host.env });
        if (i.passphrase !== undefined) this.vaultKeys.set(v, passphraseDigest(i.passphrase));
        this.vaults.set(d, v);
        return { dir: d, encrypted: i.passphrase !== undefined };
      },
      'vault.prune': async (i) => {
        const v = await this.vault(i.vault, i.passphrase);
        if ([i.keepLast, i.keepDaily, i.keepWeekly, i.keepMonthly].every((k) => k === undefined))
          throw new HoldfastError('INVALID_ARGUMENT', 'Say what to keep: --keep-last N, --keep-daily N, --keep-weekly N and/or --keep-monthly N.');
        const r = await pruneSnapshots(v, { keepLast: i.keepLast, keepDaily: i.keepDaily, keepWeekly: i.keepWeekly, keepMonthly: i.keepMonthly, dryRun: i.dryRun, volume: i.volume });
        if (!r.dryRun && r.removed.length) this.host.events.emit('snapshots.changed', { vault: v.dir });
        return r;
      },
      'vault.gc': async (i) => {
        const v = await this.vault(i.vault, i.passphrase);
        const r = await collectGarbage(v, { dryRun: i.dryRun });
        return { removedChunks: r.removedChunks, freedBytes: r.freedBytes, keptChunks: r.keptChunks };
      },
    };
  }

  /** A read-only NBD export of a snapshot ("snapshot mount"). */
  async snapshotExport(id: string, vaultDir?: string, passphrase?: string): Promise<SnapshotExport> {
    return SnapshotExport.open(await this.vault(vaultDir, passphrase), id);
  }
}

const passphraseDigest = (p: string) => crypto.createHash('sha256').update(p, 'utf8').digest('hex');
