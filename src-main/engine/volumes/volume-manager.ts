/**
 * The volume manager: devices and logical volumes over the catalog, the open device
 * handles and the device labels. It validates what callers ask for, allocates extents,
 * commits the catalog in one transaction and then rewrites the labels of the devices
 * involved from the catalog.
 *
 * Invariants: every failure leaves catalog and labels as they were — validation happens
 * before any change; the catalog change is one transaction; label writes come after the
 * commit and are idempotent re-writes of catalog state, and if one fails the catalog change
 * is undone and the labels rewritten again. The layout of all volumes satisfies
 * allocation.ts's checkLayout after every change (asserted before commit).
 * It emits no events; the engine does, from the records returned here.
 */
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { BlockFile, Env } from '../env/env';
import { AckMode as AckModeSchema, VOLUME_NAME_RE, type AckMode, type Device, type Extent } from '../../../src-shared/contract';
import { HoldfastError, invariant, toErrorPayload } from '../../../src-shared/errors';
import { formatSize } from '../../../src-shared/sizes';
import type { Catalog, DeviceRecord, VolumeRecord } from '../catalog/catalog';
import type { DeviceSet } from '../devices/device-set';
import { checkBlockSize, createImage } from '../devices/image';
import { readLabel, writeLabel } from '../devices/label';
import { DATA_START, type DeviceLabel } from '../devices/label-format';
import { probeDevicePath } from '../devices/probe';
import type { SystemView } from '../devices/system-view';
import { allocate, checkLayout, freeBytes, grow, type AllocDevice } from './allocation';
import { writePieces } from './small-folio-writes';

export type VolumeChange = 'grow' | 'rename' | 'delete';

/** Called before a volume changes; throws (e.g. IN_USE while a backup runs) to refuse. */
export type BeforeChangeHook = (volumeId: number, what: VolumeChange) => void;

export interface VolumeManagerOptions {
  beforeChange?: BeforeChangeHook;
  /** System view for mount/system checks (tests describe machines with it). */
  sys?: SystemView;
}

export interface AddDeviceInput {
  path: string;
  /** Create a new sparse image file of `size` bytes at path. */
  create?: boolean;
  size?: number;
  /** For a drive (block device): its name as `drive list` shows it (e.g. "sdb"), typed to confirm Holdfast may format it. */
  confirm?: string;
}

export interface CreateVolumeInput {
  name: string;
  size: number;
  /** Devices (id, or path) to place the volume on, in order; default: all devices. */
  devices?: Array<number | string>;
  ack?: AckMode;
}

const LABEL_PROBE = DATA_START;
/** Bytes zeroed at each end of a new volume: covers ext4/FAT/NTFS superblocks, MBR/GPT and their backups. */
const WIPE_BYTES = 1024 * 1024;
/** Path of a device known only from another device's label, until it is added itself. */
const PLACEHOLDER = '(not found) ';

function checkName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !VOLUME_NAME_RE.test(name))
    throw new HoldfastError(
      'INVALID_NAME',
      `"${String(name)}" is not a valid volume name: use 1–64 letters, digits, dot, dash or underscore, starting with a letter or digit.`,
      { name },
    );
}

const isLabelled = (d: DeviceRecord) => d.labelUuid !== null;
const toAlloc = (d: DeviceRecord): AllocDevice => ({ id: d.id, size: d.size, dataStart: d.dataStart });

export class VolumeManager {
  beforeChange: BeforeChangeHook | undefined;
  private readonly sys: SystemView | undefined;

  constructor(
    readonly catalog: Catalog,
    readonly devices: DeviceSet,
    private readonly env: Env,
    opts: VolumeManagerOptions = {},
  ) {
    this.beforeChange = opts.beforeChange;
    this.sys = opts.sys;
  }

  /**
   * Opens every catalog device. Missing ones, and ones that were mounted or became system
   * devices since they were added (an adopted partition the user mounted), are reported
   * present=false with the reason and are never written.
   */
  private async lockedOpenDevices(): Promise<void> {
    for (const d of this.catalog.listDevices()) {
      try {
        await probeDevicePath(d.path, this.env, { sys: this.sys, minSize: 0 });
      } catch (e) {
        if (e instanceof HoldfastError && (e.code === 'DEVICE_MOUNTED' || e.code === 'DEVICE_SYSTEM')) {
          await this.devices.markUnavailable(d.id, e.message);
          continue;
        }
      }
      await this.devices.open(d);
    }
  }

  // ---------- serialisation ----------

  private queue: Promise<unknown> = Promise.resolve();

  /**
   * Runs one change at a time: allocation reads the free space, then awaits device I/O before
   * committing, so two interleaved creates could otherwise pick the same free range.
   */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  // Public changes: each runs under exclusive(); what each does is documented on its locked* implementation.
  addDevice(input: AddDeviceInput): Promise<Device> {
    return this.exclusive(() => this.lockedAddDevice(input));
  }

  removeDevice(idOrPath: number | string): Promise<void> {
    return this.exclusive(() => this.lockedRemoveDevice(idOrPath));
  }

  createVolume(input: CreateVolumeInput): Promise<VolumeRecord> {
    return this.exclusive(() => this.lockedCreateVolume(input));
  }

  growVolume(name: string, size: number): Promise<VolumeRecord> {
    return this.exclusive(() => this.lockedGrowVolume(name, size));
  }

  renameVolume(name: string, newName: string): Promise<VolumeRecord> {
    return this.exclusive(() => this.lockedRenameVolume(name, newName));
  }

  deleteVolume(name: string): Promise<void> {
    return this.exclusive(() => this.lockedDeleteVolume(name));
  }

  adoptVolume(p: string, name?: string): Promise<VolumeRecord> {
    return this.exclusive(() => this.lockedAdoptVolume(p, name));
  }

  openDevices(): Promise<void> {
    return this.exclusive(() => this.lockedOpenDevices());
  }

  // ---------- devices ----------

  private toDevice(d: DeviceRecord): Device {
    const used = this.catalog.allExtents();
    return {
      id: d.id,
      path: d.path,
      kind: d.kind,
      size: d.size,
      free: isLabelled(d) ? freeBytes([toAlloc(d)], used) : 0,
      present: this.devices.isPresent(d.id),
      addedAt: d.addedAt,
    };
  }

  listDevices(): Device[] {
    return this.catalog.listDevices().map((d) => this.toDevice(d));
  }

  getDevice(idOrPath: number | string): Device {
    return this.toDevice(this.resolveDevice(idOrPath));
  }

  /** A device by id, numeric string id, or path (as given or resolved). NOT_FOUND otherwise. */
  resolveDevice(idOrPath: number | string): DeviceRecord {
    let d: DeviceRecord | null = null;
    if (typeof idOrPath === 'number') d = this.catalog.getDevice(idOrPath);
    else {
      d = this.catalog.getDevice(idOrPath) ?? this.catalog.getDevice(path.resolve(idOrPath));
      if (!d && /^\d+$/.test(idOrPath)) d = this.catalog.getDevice(Number(idOrPath));
    }
    if (!d) throw new HoldfastError('NOT_FOUND', `No device ${JSON.stringify(idOrPath)}; "holdfast device list" shows the devices.`, { device: idOrPath });
    return d;
  }

  private async lockedAddDevice(input: AddDeviceInput): Promise<Device> {
    if (typeof input.path !== 'string' || !input.path) throw new HoldfastError('INVALID_ARGUMENT', 'A device path is needed.');
    const abs = path.resolve(input.path);
    if (input.create) return this.addNewImage(abs, input.size);
    if (input.size !== undefined)
      throw new HoldfastError('INVALID_ARGUMENT', '--size only applies with --create; an existing device keeps its size.');

    const probe = await probeDevicePath(abs, this.env, { sys: this.sys });
    const known = this.catalog.getDevice(probe.realPath) ?? this.catalog.getDevice(abs);
    if (known) throw new HoldfastError('ALREADY_EXISTS', `${abs} is already device ${known.id}.`, { deviceId: known.id });
    const file = await this.env.open(probe.realPath);
    try {
      const label = await readLabel(file);
      if (label) return await this.addLabelledDevice(probe, label);
      // Unlabelled: format it only if its label area is blank, so no data is ever overwritten silently.
      const head = Buffer.alloc(Math.min(LABEL_PROBE, probe.size));
      await file.read(head, 0);
      if (!head.every((b) => b === 0))
        throw new HoldfastError(
          'INVALID_ARGUMENT',
          `${abs} already holds data, so Holdfast will not format it. To keep its content and use it as one volume, run "holdfast volume adopt ${abs}".`,
          { path: abs, reason: 'has-data' },
        );
      if (probe.kind === 'block') this.requireConfirm(probe.realPath, input.confirm);
      const uuid = randomUUID();
      const rec = this.catalog.addDevice({ path: probe.realPath, kind: probe.kind, size: probe.size, dataStart: DATA_START, labelUuid: uuid });
      try {
        await writeLabel(file, { uuid, dataStart: DATA_START, volumes: [] });
      } catch (e) {
        this.catalog.removeDevice(rec.id);
        await file.write(Buffer.alloc(head.length), 0).catch(() => undefined); // back to blank
        if (e instanceof HoldfastError) throw e;
        throw new HoldfastError('IO_ERROR', `Could not write the Holdfast label on ${abs}: ${toErrorPayload(e).message}`, { path: abs });
      }
      await this.devices.open(rec);
      return this.toDevice(rec);
    } finally {
      await file.close();
    }
  }

  private requireConfirm(realPath: string, confirm: string | undefined): void {
    const name = path.basename(realPath);
    if (confirm !== name)
      throw new HoldfastError('CONFIRMATION_REQUIRED', `Holdfast will format the drive ${realPath} for its volumes. Confirm by typing its name: ${name}.`, {
        expected: name,
      });
  }

  private async addNewImage(abs: string, size: number | undefined): Promise<Device> {
    if (size === undefined) throw new HoldfastError('INVALID_SIZE', 'Creating an image needs a size (e.g. --size 10G).');
    checkBlockSize(size, 'image');
    if (this.catalog.getDevice(abs)) throw new HoldfastError('ALREADY_EXISTS', `${abs} is already a Holdfast device.`, { path: abs });
    const img = await createImage(abs, size, this.env);
    let rec: DeviceRecord;
    try {
      const probe = await probeDevicePath(abs, this.env, { sys: this.sys });
      rec = this.catalog.addDevice({ path: probe.realPath, kind: 'image', size, dataStart: DATA_START, labelUuid: img.uuid });
    } catch (e) {
      await this.env.unlink(abs);
      throw e;
    }
    await this.devices.open(rec);
    return this.toDevice(rec);
  }

  /**
   * A device Holdfast formatted before: a known device found at a new path (moved image,
   * drive on another port), or one from another machine whose volumes come along. Devices
   * its volumes span that this catalog does not know yet get a placeholder row (not present,
   * never allocated from) that is filled in when that device is added in turn.
   */
  private async addLabelledDevice(probe: { kind: 'image' | 'block'; size: number; realPath: string }, label: DeviceLabel): Promise<Device> {
    const same = this.catalog.getDeviceByUuid(label.uuid);
    if (same && this.devices.isPresent(same.id))
      throw new HoldfastError('ALREADY_EXISTS', `${probe.realPath} is the same Holdfast device as device ${same.id} (${same.path}).`, { deviceId: same.id });
    const imported = label.volumes.filter((v) => {
      const local = this.catalog.getVolume(v.name);
      if (!local) return true;
      const localUuids = new Set(local.extents.map((e) => this.catalog.getDevice(e.deviceId)?.labelUuid));
      if (localUuids.has(label.uuid)) return false; // the same volume, already known
      throw new HoldfastError('ALREADY_EXISTS', `${probe.realPath} carries volume "${v.name}", and a different volume of that name exists here; rename the local one first.`, {
        name: v.name,
      });
    });
    const rec = this.catalog.transaction(() => {
      const d = same
        ? this.catalog.updateDevice(same.id, { path: probe.realPath, size: probe.size, kind: probe.kind })
        : this.catalog.addDevice({ path: probe.realPath, kind: probe.kind, size: probe.size, dataStart: label.dataStart, labelUuid: label.uuid });
      const idOf = (uuid: string, end: number): number => {
        const known = this.catalog.getDeviceByUuid(uuid);
        if (known && known.path.startsWith(PLACEHOLDER) && known.size < end) this.catalog.updateDevice(known.id, { size: end });
        if (known) return known.id;
        return this.catalog.addDevice({ path: `${PLACEHOLDER}${uuid}`, kind: 'image', size: end, dataStart: label.dataStart, labelUuid: uuid }).id;
      };
      for (const v of imported) {
        const extents: Extent[] = v.extents.map((e) => ({
          volumeOffset: e.volumeOffset,
          deviceId: idOf(e.deviceUuid, Math.max(...v.extents.filter((x) => x.deviceUuid === e.deviceUuid).map((x) => x.deviceOffset + x.length))),
          deviceOffset: e.deviceOffset,
          length: e.length,
        }));
        this.catalog.createVolume(v.name, v.size, v.ackMode === 'device' ? 'device' : 'journal', false, extents);
      }
      this.assertLayout();
      return d;
    });
    await this.devices.open(rec);
    return this.toDevice(rec);
  }

  private async lockedRemoveDevice(idOrPath: number | string): Promise<void> {
    const d = this.resolveDevice(idOrPath);
    const users = this.catalog.volumesOnDevice(d.id);
    if (users.length)
      throw new HoldfastError(
        'IN_USE',
        `Device ${d.id} (${d.path}) holds volume${users.length > 1 ? 's' : ''} ${users.map((v) => `"${v.name}"`).join(', ')}; delete ${users.length > 1 ? 'them' : 'it'} first.`,
        { volumes: users.map((v) => v.name) },
      );
    this.catalog.removeDevice(d.id);
    await this.devices.close(d.id);
  }

  // ---------- volumes ----------

  listVolumes(): VolumeRecord[] {
    return this.catalog.listVolumes();
  }

  /** NOT_FOUND when there is no such volume. */
  getVolume(nameOrId: string | number): VolumeRecord {
    const v = this.catalog.getVolume(nameOrId);
    if (!v) throw new HoldfastError('NOT_FOUND', `No volume named ${JSON.stringify(nameOrId)}; "holdfast volume list" shows the volumes.`, { name: nameOrId });
    return v;
  }

  /** Labelled devices that are present, restricted to `wanted` (in that order) if given. */
  private allocatableDevices(wanted?: Array<number | string>): DeviceRecord[] {
    const all = this.catalog.listDevices();
    if (all.length === 0)
      throw new HoldfastError('NOT_FOUND', 'There are no devices yet: add one first, e.g. "holdfast device add ~/holdfast.img --create --size 10G".');
    if (wanted?.length) {
      const picked = wanted.map((w) => this.resolveDevice(w));
      for (const d of picked) {
        if (!isLabelled(d))
          throw new HoldfastError('INVALID_ARGUMENT', `Device ${d.id} (${d.path}) is an adopted volume's device; new volumes cannot be placed on it.`, { deviceId: d.id });
        if (!this.devices.isPresent(d.id))
          throw new HoldfastError('DEVICE_MISSING', `Device ${d.id} (${d.path}) is not available: ${this.devices.statusOf(d.id).reason ?? ''}.`, { deviceId: d.id });
      }
      return [...new Map(picked.map((d) => [d.id, d])).values()];
    }
    const usable = all.filter((d) => isLabelled(d) && this.devices.isPresent(d.id));
    if (usable.length === 0)
      throw new HoldfastError('NOT_FOUND', 'No device can hold new volumes (adopted devices are whole volumes, missing ones are unplugged): add a device first.');
    return usable;
  }

  private assertLayout(): void {
    checkLayout(this.catalog.listDevices().map(toAlloc), this.catalog.listVolumes());
  }

  /** Device ids the volume's extents live on. */
  private static devicesOf(v: { extents: Extent[] }): number[] {
    return [...new Set(v.extents.map((e) => e.deviceId))];
  }

  private async lockedCreateVolume(input: CreateVolumeInput): Promise<VolumeRecord> {
    checkName(input.name);
    checkBlockSize(input.size, 'volume');
    const ack = input.ack ?? 'journal';
    if (!AckModeSchema.safeParse(ack).success) throw new HoldfastError('INVALID_ARGUMENT', `Acknowledgement mode must be "journal" or "device" (got "${String(ack)}").`);
    if (this.catalog.getVolume(input.name)) throw new HoldfastError('ALREADY_EXISTS', `A volume named "${input.name}" already exists.`, { name: input.name });
    const devs = this.allocatableDevices(input.devices);
    const extents = allocate(devs.map(toAlloc), this.catalog.allExtents(), input.size);
    // Free space may still hold a deleted volume's bytes; wipe where filesystem and partition
    // signatures live so a new volume never looks formatted. Free space is not state, so a
    // failure here changes nothing.
    await this.wipeSignatures(input.size, extents);
    const vol = this.catalog.transaction(() => {
      const v = this.catalog.createVolume(input.name, input.size, ack, false, extents);
      this.assertLayout();
      return v;
    });
    await this.labelsAfterCommit(VolumeManager.devicesOf(vol), () => this.catalog.deleteVolume(vol.id));
    return vol;
  }

  private async lockedGrowVolume(name: string, size: number): Promise<VolumeRecord> {
    const v = this.getVolume(name);
    checkBlockSize(size, 'volume');
    if (v.adopted) throw new HoldfastError('INVALID_ARGUMENT', `"${v.name}" is an adopted device used 1:1; it cannot grow. Grow the file or drive and adopt it again.`);
    if (size < v.size)
      throw new HoldfastError('INVALID_SIZE', `Volumes can only grow: "${v.name}" is ${formatSize(v.size)}, asked for ${formatSize(size)}.`, { size, current: v.size });
    if (size === v.size) return v;
    this.beforeChange?.(v.id, 'grow');
    const devs = this.allocatableDevices();
    const extents = grow(devs.map(toAlloc), this.catalog.allExtents(), v.extents, size, VolumeManager.devicesOf(v));
    const before = v;
    const grown = this.catalog.transaction(() => {
      const g = this.catalog.setExtents(v.id, size, extents);
      this.assertLayout();
      return g;
    });
    await this.labelsAfterCommit(VolumeManager.devicesOf(grown), () => this.catalog.setExtents(before.id, before.size, before.extents));
    return grown;
  }

  private async lockedRenameVolume(name: string, newName: string): Promise<VolumeRecord> {
    const v = this.getVolume(name);
    checkName(newName);
    if (newName === v.name) return v;
    const other = this.catalog.getVolume(newName);
    if (other && other.id !== v.id) throw new HoldfastError('ALREADY_EXISTS', `A volume named "${other.name}" already exists.`, { name: newName });
    this.beforeChange?.(v.id, 'rename');
    const renamed = this.catalog.renameVolume(v.id, newName);
    await this.labelsAfterCommit(VolumeManager.devicesOf(v), () => this.catalog.renameVolume(v.id, v.name));
    return renamed;
  }

  /**
   * Deletes the volume's mapping. Its space in image files is deallocated (punched: the host
   * file system gets it back and a later volume there reads zeroes); on drives, and where the
   * file system cannot punch, its bytes stay until reused. Adopted devices keep their content.
   */
  private async lockedDeleteVolume(name: string): Promise<void> {
    const v = this.getVolume(name);
    this.beforeChange?.(v.id, 'delete');
    const devIds = VolumeManager.devicesOf(v);
    const devRecords = devIds.map((id) => this.catalog.getDevice(id)!);
    this.catalog.deleteVolume(v.id);
    if (v.adopted) {
      for (const d of devRecords) if (!this.catalog.getDevice(d.id)) await this.devices.close(d.id);
      return;
    }
    await this.labelsAfterCommit(devIds, () =>
      this.catalog.transaction(() => {
        this.catalog.createVolume(v.name, v.size, v.ackMode, v.adopted, v.extents, { id: v.id, createdAt: v.createdAt });
      }),
    );
    // Still inside the manager's exclusive section: no new volume gets this space before it is punched.
    for (const e of v.extents) {
      try {
        await this.devices.file(e.deviceId).zeroRange(e.deviceOffset, e.length, 'punch');
      } catch {
        // Free space is not state: the volume is gone either way, its bytes unreachable.
      }
    }
  }

  /** Uses a whole image file or drive 1:1 as a volume, keeping its content; no label is written. */
  private async lockedAdoptVolume(p: string, name?: string): Promise<VolumeRecord> {
    if (typeof p !== 'string' || !p) throw new HoldfastError('INVALID_ARGUMENT', 'A path to adopt is needed.');
    const abs = path.resolve(p);
    const volName = name ?? VolumeManager.nameFromPath(abs);
    checkName(volName);
    const probe = await probeDevicePath(abs, this.env, { sys: this.sys, minSize: 4096 });
    const known = this.catalog.getDevice(probe.realPath) ?? this.catalog.getDevice(abs);
    if (known) throw new HoldfastError('ALREADY_EXISTS', `${abs} is already device ${known.id}.`, { deviceId: known.id });
    if (probe.size % 4096 !== 0)
      throw new HoldfastError(
        'INVALID_SIZE',
        `${abs} is ${probe.size} bytes, not a whole number of 4 KiB blocks; Holdfast volumes are. Extend it (e.g. truncate -s ${Math.ceil(probe.size / 4096) * 4096}) and adopt again.`,
        { size: probe.size },
      );
    const file = await this.env.open(probe.realPath);
    try {
      if (await readLabel(file))
        throw new HoldfastError('INVALID_ARGUMENT', `${abs} is a Holdfast device, not a plain image; add it with "holdfast device add ${abs}".`);
    } finally {
      await file.close();
    }
    if (this.catalog.getVolume(volName)) throw new HoldfastError('ALREADY_EXISTS', `A volume named "${volName}" already exists; pick another with --name.`, { name: volName });
    const vol = this.catalog.transaction(() => {
      const d = this.catalog.addDevice({ path: probe.realPath, kind: probe.kind === 'block' ? 'block' : 'adopted-image', size: probe.size, dataStart: 0, labelUuid: null });
      const v = this.catalog.createVolume(volName, probe.size, 'journal', true, [{ volumeOffset: 0, deviceId: d.id, deviceOffset: 0, length: probe.size }]);
      this.assertLayout();
      return v;
    });
    await this.devices.open(this.catalog.getDevice(vol.extents[0]!.deviceId)!);
    return vol;
  }

  /** "Disk Image (1).img" → "Disk-Image-1". */
  static nameFromPath(p: string): string {
    const base = path.basename(p).replace(/\.[^.]*$/, '');
    const cleaned = base.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '').replace(/-+$/, '').slice(0, 64);
    return cleaned || 'volume';
  }

  /**
   * Zeroes the first and last WIPE_BYTES of a new volume (like lvcreate's signature wipe), where
   * they are not zero already: space never written (a new sparse image) stays unallocated, and
   * block status reports it as a hole's zeroes rather than as written data.
   */
  private async wipeSignatures(size: number, extents: Extent[]): Promise<void> {
    const ranges = [
      [0, Math.min(WIPE_BYTES, size)],
      [Math.max(0, size - WIPE_BYTES), size],
    ] as const;
    const touched = new Set<number>();
    for (const [from, to] of ranges)
      for (const e of extents) {
        const s = Math.max(from, e.volumeOffset);
        const t = Math.min(to, e.volumeOffset + e.length);
        if (s >= t) continue;
        const zeroes = Buffer.alloc(t - s);
        const pos = e.deviceOffset + (s - e.volumeOffset);
        const old = Buffer.alloc(t - s);
        await this.deviceIo(e.deviceId, async (f) => {
          await f.read(old, pos);
        });
        if (old.equals(zeroes)) continue;
        await this.deviceIo(e.deviceId, (f) => writePieces(f, zeroes, pos));
        touched.add(e.deviceId);
      }
    for (const id of touched) await this.deviceIo(id, (f) => f.datasync());
  }

  /** Runs device I/O, turning OS errors into HoldfastErrors that name the device. */
  private async deviceIo(id: number, io: (f: BlockFile) => Promise<void>): Promise<void> {
    const f = this.devices.file(id);
    try {
      await io(f);
    } catch (e) {
      if (e instanceof HoldfastError) throw e;
      const p = toErrorPayload(e);
      throw new HoldfastError(p.code === 'INTERNAL' || p.code === 'NOT_FOUND' ? 'IO_ERROR' : p.code, `Could not write to device ${id} (${f.path}): ${p.message}`, { deviceId: id });
    }
  }

  // ---------- labels ----------

  /** The label a labelled device should carry now, from the catalog. */
  labelFor(d: DeviceRecord): DeviceLabel {
    invariant(d.labelUuid, `device ${d.id} is labelled`);
    const uuidOf = new Map(this.catalog.listDevices().map((x) => [x.id, x.labelUuid]));
    return {
      uuid: d.labelUuid,
      dataStart: d.dataStart,
      volumes: this.catalog.volumesOnDevice(d.id).map((v) => ({
        name: v.name,
        size: v.size,
        ackMode: v.ackMode,
        extents: v.extents.map((e) => ({ volumeOffset: e.volumeOffset, deviceUuid: uuidOf.get(e.deviceId) ?? '', deviceOffset: e.deviceOffset, length: e.length })),
      })),
    };
  }

  /** Rewrites the labels of the given devices (all labelled present devices by default) from the catalog. */
  async rewriteLabels(deviceIds?: number[]): Promise<void> {
    const ids = deviceIds ?? this.catalog.listDevices().map((d) => d.id);
    for (const id of ids) {
      const d = this.catalog.getDevice(id);
      if (!d || !isLabelled(d)) continue;
      await writeLabel(this.devices.file(id), this.labelFor(d));
    }
  }

  /** After a commit: rewrite labels; on failure undo the catalog change and restore the labels. */
  private async labelsAfterCommit(deviceIds: number[], undo: () => void): Promise<void> {
    try {
      await this.rewriteLabels(deviceIds);
    } catch (e) {
      undo();
      await this.rewriteLabels(deviceIds).catch(() => undefined);
      if (e instanceof HoldfastError) throw e;
      const p = toErrorPayload(e);
      throw new HoldfastError(p.code === 'INTERNAL' ? 'IO_ERROR' : p.code, `Could not update a device label (${p.message}); the change was undone.`, { cause: p.message });
    }
  }
}
