/**
 * An in-test implementation of the contract for renderer tests: in-memory drives, devices,
 * volumes, backups, snapshots and hold states; records every call; emits events to subscribers
 * the way a host would. Failures are HoldfastErrors, as the real transports deliver them.
 */
import { OP_NAMES, type Api, type Backup, type Device, type Drive, type EventName, type EventPayload, type HoldState, type OpName, type Schedule, type Snapshot, type Volume } from '../../src-shared/contract';
import type { EventMessage } from '../../src-shared/bridge';
import { HoldfastError } from '../../src-shared/errors';
import type { Client } from '../../src-renderer/api/transport';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

export function fixtureDrives(): Drive[] {
  return [
    { name: 'nvme0n1', path: '/dev/nvme0n1', size: 512 * GiB, model: 'Samsung SSD 980 PRO', removable: false, mounted: true, mountpoints: ['/', '/boot/efi'], system: true, partitions: [] },
    { name: 'sdb', path: '/dev/sdb', size: 64 * GiB, model: 'SanDisk Extreme', removable: true, mounted: false, mountpoints: [], system: false, partitions: [] },
    { name: 'sdc', path: '/dev/sdc', size: 2048 * GiB, model: 'WD Elements', removable: true, mounted: true, mountpoints: ['/media/backup'], system: false, partitions: [] },
  ];
}

export function fixtureDevices(): Device[] {
  return [
    { id: 1, path: '/srv/holdfast/disk1.img', kind: 'image', size: 16 * GiB, free: 4 * GiB, present: true, addedAt: '2025-11-20T09:00:00Z' },
    { id: 2, path: '/srv/holdfast/disk2.img', kind: 'image', size: 8 * GiB, free: 6 * GiB, present: true, addedAt: '2025-11-21T09:00:00Z' },
  ];
}

export const NBD_SOCKET = '/home/u/.local/share/holdfast/nbd.sock';
export const NBD_TCP = '127.0.0.1:10809';
/** A volume's own NBD addresses are complete URIs, as the engine sends them (contract: Volume.nbd). */
export const nbdUris = (name: string) => ({ socket: `nbd+unix:///${name}?socket=${NBD_SOCKET}`, tcp: `nbd://${NBD_TCP}/${name}` });

export function fixtureVolumes(): Volume[] {
  return [
    {
      id: 1, name: 'vm-disk', size: 10 * GiB, ackMode: 'journal', adopted: false, createdAt: '2025-11-20T10:00:00Z', backup: null,
      extents: [
        { volumeOffset: 0, deviceId: 1, deviceOffset: 1 * MiB, length: 8 * GiB },
        { volumeOffset: 8 * GiB, deviceId: 2, deviceOffset: 1 * MiB, length: 2 * GiB },
      ],
      nbd: { ...nbdUris('vm-disk'), clients: 1 },
    },
    {
      id: 2, name: 'photos', size: 4 * GiB, ackMode: 'device', adopted: false, createdAt: '2025-11-21T10:00:00Z', backup: null,
      extents: [{ volumeOffset: 0, deviceId: 1, deviceOffset: 8 * GiB + MiB, length: 4 * GiB }],
      nbd: { ...nbdUris('photos'), clients: 0 },
    },
  ];
}

export function idleHold(volume: string): HoldState {
  return { volume, backupFlag: false, policy: null, heldCount: 0, heldBytes: 0, oldestHeldAgeMs: null, queuedTotal: 0, releasedTotal: 0, copiedBytes: 0, journalBytes: 0, journalCapacity: 1 * GiB };
}

export function fixtureSnapshots(vault: string): Snapshot[] {
  return [
    { id: '20251124T220000Z-a1b2c3', volume: 'vm-disk', size: 10 * GiB, createdAt: '2025-11-24T22:00:00Z', policy: 'range', kind: 'full', parent: null, storedBytes: 3 * GiB, vault },
    { id: '20251124T220412Z-9c4e1d', volume: 'vm-disk', size: 10 * GiB, createdAt: '2025-11-24T22:04:12Z', policy: 'range', kind: 'incremental', parent: '20251124T220000Z-a1b2c3', storedBytes: 40 * MiB, vault },
    { id: '20251125T080000Z-ff00ee', volume: 'photos', size: 4 * GiB, createdAt: '2025-11-25T08:00:00Z', policy: 'metadata', kind: 'incremental', parent: null, storedBytes: 200 * MiB, vault },
  ];
}

export type Call = { op: OpName; input: unknown };

export class FakeEngine {
  drives = fixtureDrives();
  devices = fixtureDevices();
  volumes = fixtureVolumes();
  holds: HoldState[] = this.volumes.map((v) => idleHold(v.name));
  backups: Backup[] = [];
  snapshots = fixtureSnapshots('/media/backup/vault');
  schedules: Schedule[] = [];
  calls: Call[] = [];
  /** Next call of this op fails with this error (once). */
  failNext = new Map<OpName, HoldfastError>();
  /** Calls of this op wait for this promise before they answer (a slow engine). */
  waitFor = new Map<OpName, Promise<unknown>>();
  private listeners = new Set<(m: EventMessage) => void>();

  callsOf(op: OpName): Call[] {
    return this.calls.filter((c) => c.op === op);
  }

  emit<N extends EventName>(event: N, payload: EventPayload<N>): void {
    const m = { event, payload } as EventMessage;
    this.listeners.forEach((l) => l(m));
  }

  get listenerCount(): number {
    return this.listeners.size;
  }

  client(): Client {
    return { api: this.api(), onEvent: (l) => (this.listeners.add(l), () => this.listeners.delete(l)) };
  }

  api(): Api {
    const h = <N extends OpName>(op: N, fn: (input: Parameters<Api[N]>[0]) => Awaited<ReturnType<Api[N]>>) =>
      (async (input: Parameters<Api[N]>[0]) => {
        this.calls.push({ op, input });
        await Promise.resolve();
        await this.waitFor.get(op);
        const fail = this.failNext.get(op);
        if (fail) {
          this.failNext.delete(op);
          throw fail;
        }
        return structuredClone(fn(input));
      }) as Api[N];
    const impl: Partial<Api> = {
      'drive.list': h('drive.list', () => this.drives),
      'device.list': h('device.list', () => this.devices),
      'device.add': h('device.add', (i) => {
        const d: Device = { id: this.devices.length + 1, path: i.path, kind: i.create ? 'image' : 'block', size: i.size ?? GiB, free: i.size ?? GiB, present: true, addedAt: new Date().toISOString() };
        this.devices.push(d);
        return d;
      }),
      'device.remove': h('device.remove', (i) => {
        this.devices = this.devices.filter((d) => d.id !== i.device && d.path !== i.device);
        return { ok: true as const };
      }),
      'volume.list': h('volume.list', () => this.volumes),
      'volume.create': h('volume.create', (i) => {
        const v: Volume = { id: this.volumes.length + 1, name: i.name, size: i.size, ackMode: i.ack ?? 'journal', adopted: false, createdAt: new Date().toISOString(), backup: null, extents: [{ volumeOffset: 0, deviceId: 1, deviceOffset: 0, length: i.size }], nbd: null };
        this.volumes.push(v);
        this.holds.push(idleHold(v.name));
        return v;
      }),
      'volume.grow': h('volume.grow', (i) => {
        const v = this.volumes.find((x) => x.name === i.name)!;
        v.size = i.size;
        return v;
      }),
      'volume.rename': h('volume.rename', (i) => this.volumes.find((x) => x.name === i.name)!),
      'volume.delete': h('volume.delete', (i) => {
        this.volumes = this.volumes.filter((v) => v.name !== i.name);
        return { ok: true as const };
      }),
      'volume.adopt': h('volume.adopt', () => {
        throw new HoldfastError('NOT_AVAILABLE', 'not in fake');
      }),
      'holds.get': h('holds.get', () => this.holds),
      'backup.start': h('backup.start', (i) => {
        const b: Backup = { id: `b${this.backups.length + 1}`, volume: i.volume, policy: i.policy ?? 'range', vault: i.vault ?? '/vault', state: 'running', kind: i.full ? 'full' : 'incremental', startedAt: new Date().toISOString(), endedAt: null, bytesDone: 0, bytesTotal: this.volumes.find((v) => v.name === i.volume)!.size, snapshotId: null, error: null };
        this.backups.unshift(b);
        return b;
      }),
      'backup.list': h('backup.list', () => this.backups),
      'backup.abort': h('backup.abort', (i) => {
        const b = this.backups.find((x) => x.id === i.id)!;
        b.state = 'aborted';
        return b;
      }),
      'snapshot.list': h('snapshot.list', () => this.snapshots),
      'snapshot.verify': h('snapshot.verify', () => ({ ok: true, chunks: 768, bad: [] })),
      'snapshot.export': h('snapshot.export', (i) => ({ path: i.path, bytes: 10 * GiB })),
      'restore.start': h('restore.start', (i) => ({ id: i.id, target: i.toVolume ?? i.toFile ?? i.toDevice ?? '?', bytes: 10 * GiB })),
      'vault.init': h('vault.init', (i) => ({ dir: i.dir, encrypted: !!i.passphrase })),
      'schedule.list': h('schedule.list', () => this.schedules),
      'schedule.create': h('schedule.create', (i) => {
        if (i.target.kind === 'volume' && !this.volumes.some((v) => v.name === (i.target as { volume: string }).volume)) throw new HoldfastError('NOT_FOUND', `There is no volume "${i.target.volume}".`);
        const s: Schedule = {
          id: Math.max(0, ...this.schedules.map((x) => x.id)) + 1,
          target: i.target.kind === 'drive' && !i.target.drive.includes('/') ? { kind: 'drive', drive: `/dev/${i.target.drive}` } : i.target,
          frequency: i.frequency ?? null, onPlugIn: i.onPlugIn ?? false, vault: i.vault ?? '/media/backup/vault', policy: i.policy ?? 'range', retention: i.retention ?? {},
          enabled: i.enabled ?? true, createdAt: new Date().toISOString(), nextRunAt: i.frequency && i.enabled !== false ? '2025-11-26T02:30:00.000Z' : null, vaultPresent: true, lastRun: null,
        };
        this.schedules.push(s);
        return s;
      }),
      'schedule.update': h('schedule.update', (i) => {
        const s = this.schedules.find((x) => x.id === i.id);
        if (!s) throw new HoldfastError('NOT_FOUND', `There is no schedule ${i.id}.`);
        const { id: _id, ...rest } = i;
        Object.assign(s, Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)));
        s.nextRunAt = s.enabled && s.frequency ? '2025-11-26T02:30:00.000Z' : null;
        return s;
      }),
      'schedule.delete': h('schedule.delete', (i) => {
        this.schedules = this.schedules.filter((x) => x.id !== i.id);
        return { ok: true as const };
      }),
      'schedule.runNow': h('schedule.runNow', (i) => {
        const s = this.schedules.find((x) => x.id === i.id)!;
        s.lastRun = { trigger: 'manual', status: 'running', startedAt: new Date().toISOString(), endedAt: null, backupId: null, snapshotId: null, pruned: null, error: null };
        return s;
      }),
      'engine.info': h('engine.info', () => ({ version: '0.1.0', dataDir: '/home/u/.local/share/holdfast', defaultVault: '/media/backup/vault', nbd: { socket: NBD_SOCKET, tcp: NBD_TCP } })),
    };
    // Operations the contract gains later answer as a host does for an op the engine lacks.
    const api = impl as Record<string, unknown>;
    for (const op of OP_NAMES) {
      api[op] ??= async (input: unknown) => {
        this.calls.push({ op, input });
        throw new HoldfastError('NOT_AVAILABLE', `${op} is not available in the fake engine.`);
      };
    }
    return api as Api;
  }
}
