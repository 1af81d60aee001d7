/**
 * The engine's side of the scheduler: how a schedule's checks, backups and pruning map onto
 * the engine's contract operations (backup.start, drive.image, vault.prune, vault.gc), so a
 * scheduled backup is exactly the backup a person would start by hand.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Api } from '../../../src-shared/contract';
import { HoldfastError } from '../../../src-shared/errors';
import { driveVolumeName } from '../backup/drive-source';
import type { Catalog } from '../catalog/catalog';
import { probeDevicePath } from '../devices/probe';
import type { Env } from '../env/env';
import type { EngineEvents } from '../events';
import { VAULT_CONFIG_FILE } from '../vault/format';
import { Vault } from '../vault/vault';
import type { SchedulerHost } from './scheduler';

export interface ScheduleEngine {
  readonly catalog: Catalog;
  readonly events: EngineEvents;
  readonly env: Env;
  readonly defaultVault: string;
  /** The engine's api (read when a schedule runs, after construction). */
  api(): Api;
  isBackingUp(volume: string): boolean;
}

const drivePath = (drive: string) => (drive.includes('/') ? path.resolve(drive) : path.join('/dev', drive));

export function schedulerHostOf(e: ScheduleEngine): SchedulerHost {
  return {
    store: e.catalog.schedules,
    events: e.events,
    defaultVault: e.defaultVault,
    volumeId(name) {
      const v = e.catalog.getVolume(name);
      if (!v) throw new HoldfastError('NOT_FOUND', `There is no volume ${JSON.stringify(name)}; "holdfast volume list" shows the volumes.`, { name });
      return v.id;
    },
    volumeName: (id) => e.catalog.getVolume(id)?.name ?? null,
    isBackingUp: (name) => e.isBackingUp(name),
    async checkVault(dir) {
      if (path.resolve(dir) === path.resolve(e.defaultVault)) return; // created on first use
      let v: Vault;
      try {
        v = await Vault.open(dir, { env: e.env });
      } catch (err) {
        if (err instanceof HoldfastError && err.code === 'VAULT_LOCKED')
          throw new HoldfastError(
            'NOT_AVAILABLE',
            `The vault at ${dir} is encrypted; scheduled backups would need Holdfast to store its passphrase, which it does not do. Schedule into an unencrypted vault, or back up by hand.`,
          );
        throw err;
      }
      v.assertWritable();
    },
    async checkDrive(drive) {
      const dev = drivePath(drive);
      await probeDevicePath(dev, e.env, { minSize: 512 });
      return dev;
    },
    async vaultPresent(dir) {
      return (await e.env.stat(path.join(dir, VAULT_CONFIG_FILE))) !== null || path.resolve(dir) === path.resolve(e.defaultVault);
    },
    backupVolume: (volume, vault, policy) => e.api()['backup.start']({ volume, vault, policy }),
    async imageDrive(drive, vault) {
      // drive.image names its backup only in its progress events; remember the one for this drive.
      let real = drive;
      try {
        real = fs.realpathSync(drive);
      } catch {
        /* probe reports a missing drive */
      }
      const volume = driveVolumeName(real);
      let backupId: string | null = null;
      const sub = e.events.on('backup.progress', (p) => {
        if (backupId === null && p.volume === volume && p.id.startsWith('img-')) backupId = p.id;
      });
      try {
        const r = await e.api()['drive.image']({ drive, vault });
        return { snapshotId: r.snapshotId, volume: r.volume, backupId };
      } catch (err) {
        if (backupId !== null && err instanceof HoldfastError) throw new HoldfastError(err.code, err.message, { ...err.details, backupId });
        throw err;
      } finally {
        sub.dispose();
      }
    },
    async prune(vault, volume, retention) {
      const r = await e.api()['vault.prune']({ vault, volume, ...retention });
      if (r.removed.length) await e.api()['vault.gc']({ vault });
      return r.removed.length;
    },
  };
}
