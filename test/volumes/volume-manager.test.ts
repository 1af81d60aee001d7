import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NodeEnv } from '../../src-main/engine/env/node-env';
import type { BlockFile, OpenOptions } from '../../src-main/engine/env/env';
import { Catalog } from '../../src-main/engine/catalog/catalog';
import { DeviceSet } from '../../src-main/engine/devices/device-set';
import { readLabel } from '../../src-main/engine/devices/label';
import { DATA_START } from '../../src-main/engine/devices/label-format';
import { checkLayout } from '../../src-main/engine/volumes/allocation';
import { VolumeManager } from '../../src-main/engine/volumes/volume-manager';
import { HoldfastError } from '../../src-shared/errors';
import { hookFileWrites } from '../engine/helpers';

const MiB = 1024 * 1024;

/** The real Env, with a switch that makes writes to one path fail with EIO (label area only, or everywhere). */
class FlakyEnv extends NodeEnv {
  failWritesTo: string | null = null;
  failLabelOnly = true;
  override async open(p: string, opts?: OpenOptions): Promise<BlockFile> {
    return hookFileWrites(await super.open(p, opts), (f, op, _buf, pos, next) => {
      if (op !== 'write' || this.failWritesTo !== f.path || (this.failLabelOnly && pos >= DATA_START)) return next();
      return Promise.reject(Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' }));
    });
  }
}

let dir: string;
let env: FlakyEnv;
let catalog: Catalog;
let devices: DeviceSet;
let vm: VolumeManager;

function open(catalogName = 'catalog.db') {
  catalog = Catalog.open(path.join(dir, catalogName));
  devices = new DeviceSet(env);
  vm = new VolumeManager(catalog, devices, env);
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hf-vm-'));
  env = new FlakyEnv();
  open();
});
afterEach(async () => {
  await devices.closeAll();
  catalog.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const img = (name: string) => path.join(dir, name);

/** Everything a failed operation must leave alone: catalog rows and the label area of every file in dir. */
function state(): string {
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.img'))
    .sort()
    .map((f) => {
      const fd = fs.openSync(img(f), 'r');
      const b = Buffer.alloc(DATA_START);
      fs.readSync(fd, b, 0, b.length, 0);
      fs.closeSync(fd);
      return [f, fs.statSync(img(f)).size, crypto.createHash('sha256').update(b).digest('hex')];
    });
  return JSON.stringify({ devices: catalog.listDevices(), volumes: catalog.listVolumes(), files });
}

async function expectRefused(op: () => Promise<unknown>, code: string, message?: RegExp): Promise<HoldfastError> {
  const before = state();
  const err = await op().then(
    () => {
      throw new Error(`expected ${code}, but it succeeded`);
    },
    (e: unknown) => e as HoldfastError,
  );
  expect(err).toBeInstanceOf(HoldfastError);
  expect(err.code).toBe(code);
  if (message) expect(err.message).toMatch(message);
  expect(state()).toBe(before);
  return err;
}

/** Writes through a volume's extents straight to the devices (what the write path does underneath). */
async function writeVolume(name: string, offset: number, data: Buffer) {
  const v = vm.getVolume(name);
  for (const e of v.extents) {
    const s = Math.max(offset, e.volumeOffset);
    const t = Math.min(offset + data.length, e.volumeOffset + e.length);
    if (s < t) await devices.file(e.deviceId).write(data.subarray(s - offset, t - offset), e.deviceOffset + (s - e.volumeOffset));
  }
}
async function readVolume(name: string, offset: number, length: number): Promise<Buffer> {
  const v = vm.getVolume(name);
  const out = Buffer.alloc(length);
  for (const e of v.extents) {
    const s = Math.max(offset, e.volumeOffset);
    const t = Math.min(offset + length, e.volumeOffset + e.length);
    if (s < t) await devices.file(e.deviceId).read(out.subarray(s - offset, t - offset), e.deviceOffset + (s - e.volumeOffset));
  }
  return out;
}
async function labelOf(p: string) {
  const f = await env.open(p, { readOnly: true });
  try {
    return await readLabel(f);
  } finally {
    await f.close();
  }
}

describe('VolumeManager: devices', () => {
  it('creating a volume with no devices says to add one first', async () => {
    await expectRefused(() => vm.createVolume({ name: 'data', size: MiB }), 'NOT_FOUND', /add one first/);
  });

  it('adds a new sparse image as a device with its free space, and refuses bad device input leaving state unchanged', async () => {
    const d = await vm.addDevice({ path: img('a.img'), create: true, size: 64 * MiB });
    expect(d).toMatchObject({ id: 1, kind: 'image', size: 64 * MiB, free: 63 * MiB, present: true });
    expect((await labelOf(img('a.img')))?.uuid).toBe(catalog.getDevice(1)!.labelUuid);

    await expectRefused(() => vm.addDevice({ path: img('missing.img') }), 'DEVICE_MISSING');
    fs.writeFileSync(img('tiny.img'), Buffer.alloc(64 * 1024));
    await expectRefused(() => vm.addDevice({ path: img('tiny.img') }), 'DEVICE_TOO_SMALL');
    await expectRefused(() => vm.addDevice({ path: img('a.img'), create: true, size: 64 * MiB }), 'ALREADY_EXISTS');
    await expectRefused(() => vm.addDevice({ path: img('a.img') }), 'ALREADY_EXISTS');
    await expectRefused(() => vm.addDevice({ path: img('b.img'), create: true }), 'INVALID_SIZE');
    await expectRefused(() => vm.addDevice({ path: img('b.img'), create: true, size: 0 }), 'INVALID_SIZE');
    await expectRefused(() => vm.addDevice({ path: img('b.img'), create: true, size: -MiB }), 'INVALID_SIZE');
    await expectRefused(() => vm.addDevice({ path: img('b.img'), create: true, size: 10 * MiB + 1 }), 'INVALID_SIZE', /multiple of 4 KiB/);
    await expectRefused(() => vm.addDevice({ path: img('b.img'), create: true, size: 2 ** 60 }), 'INVALID_SIZE');
    expect(fs.existsSync(img('b.img'))).toBe(false);
    // a file with data is never formatted: the message points at adopt
    const data = crypto.randomBytes(8 * MiB);
    fs.writeFileSync(img('photos.img'), data);
    await expectRefused(() => vm.addDevice({ path: img('photos.img') }), 'INVALID_ARGUMENT', /volume adopt/);
    expect(fs.readFileSync(img('photos.img')).equals(data)).toBe(true);
  });

  it('formats an existing all-zero file and refuses to remove a device that holds volumes', async () => {
    fs.writeFileSync(img('blank.img'), '');
    fs.truncateSync(img('blank.img'), 16 * MiB);
    const d = await vm.addDevice({ path: img('blank.img') });
    expect(d).toMatchObject({ kind: 'image', free: 15 * MiB });
    expect(await labelOf(img('blank.img'))).toMatchObject({ uuid: catalog.getDevice(d.id)!.labelUuid, volumes: [] });
    await vm.createVolume({ name: 'v1', size: MiB });
    await expectRefused(() => vm.removeDevice(d.id), 'IN_USE', /"v1"/);
    await expectRefused(() => vm.removeDevice('/no/such/device'), 'NOT_FOUND');
    await vm.deleteVolume('v1');
    await vm.removeDevice(String(d.id));
    expect(vm.listDevices()).toEqual([]);
  });
});

describe('VolumeManager: volumes', () => {
  beforeEach(async () => {
    await vm.addDevice({ path: img('a.img'), create: true, size: 64 * MiB });
  });

  it('refuses bad volume input with the right code and leaves catalog and labels unchanged', async () => {
    await vm.createVolume({ name: 'data', size: 4 * MiB });
    for (const size of [0, -4096, 4095, 1.5, 6000, Number.NaN, 2 ** 60]) await expectRefused(() => vm.createVolume({ name: 'x', size }), 'INVALID_SIZE');
    const huge = await expectRefused(() => vm.createVolume({ name: 'x', size: 2 ** 50 }), 'NO_SPACE', /Not enough free space/);
    expect(huge.details).toEqual({ needed: 2 ** 50, free: 59 * MiB });
    await expectRefused(() => vm.createVolume({ name: 'x', size: 60 * MiB }), 'NO_SPACE');
    for (const name of ['', '-x', '.hidden', 'a b', 'x'.repeat(65), '../etc', 'ünï', 'a/b']) await expectRefused(() => vm.createVolume({ name, size: MiB }), 'INVALID_NAME');
    await expectRefused(() => vm.createVolume({ name: 'data', size: MiB }), 'ALREADY_EXISTS');
    await expectRefused(() => vm.createVolume({ name: 'DATA', size: MiB }), 'ALREADY_EXISTS');
    await expectRefused(() => vm.createVolume({ name: 'x', size: MiB, ack: 'later' as never }), 'INVALID_ARGUMENT');
    await expectRefused(() => vm.createVolume({ name: 'x', size: MiB, devices: [99] }), 'NOT_FOUND');
    await expectRefused(() => vm.growVolume('data', 2 * MiB), 'INVALID_SIZE', /only grow/);
    await expectRefused(() => vm.growVolume('data', 4 * MiB + 100), 'INVALID_SIZE');
    await expectRefused(() => vm.growVolume('nope', 8 * MiB), 'NOT_FOUND');
    await expectRefused(() => vm.growVolume('data', 200 * MiB), 'NO_SPACE');
    await expectRefused(() => vm.renameVolume('data', 'bad name'), 'INVALID_NAME');
    await vm.createVolume({ name: 'other', size: MiB });
    await expectRefused(() => vm.renameVolume('data', 'Other'), 'ALREADY_EXISTS');
    await expectRefused(() => vm.deleteVolume('nope'), 'NOT_FOUND');
  });

  it('keeps many volumes on one device apart: data written to each reads back intact, labels list them all', async () => {
    const sizes = Array.from({ length: 30 }, (_, i) => ((i % 5) + 1) * 256 * 1024);
    const payload = new Map<string, Buffer>();
    for (const [i, size] of sizes.entries()) {
      const name = `vol-${i}`;
      await vm.createVolume({ name, size });
      const data = crypto.randomBytes(size);
      await writeVolume(name, 0, data);
      payload.set(name, data);
    }
    // free some in the middle and fill the holes with new volumes
    for (const i of [3, 7, 8, 20]) {
      await vm.deleteVolume(`vol-${i}`);
      payload.delete(`vol-${i}`);
    }
    for (const i of [100, 101]) {
      const name = `vol-${i}`;
      await vm.createVolume({ name, size: 512 * 1024 });
      const data = crypto.randomBytes(512 * 1024);
      await writeVolume(name, 0, data);
      payload.set(name, data);
    }
    checkLayout(catalog.listDevices().map((d) => ({ id: d.id, size: d.size, dataStart: d.dataStart })), catalog.listVolumes());
    for (const [name, data] of payload) expect((await readVolume(name, 0, data.length)).equals(data)).toBe(true);
    const label = await labelOf(img('a.img'));
    expect(label!.volumes.map((v) => v.name).sort()).toEqual([...payload.keys()].sort());
    const used = [...payload.values()].reduce((s, b) => s + b.length, 0);
    expect(vm.listDevices()[0]!.free).toBe(63 * MiB - used);
  });

  it('spans a volume over two devices; both labels describe it and data crosses the boundary intact', async () => {
    await vm.addDevice({ path: img('b.img'), create: true, size: 32 * MiB });
    const v = await vm.createVolume({ name: 'big', size: 80 * MiB });
    expect(new Set(v.extents.map((e) => e.deviceId))).toEqual(new Set([1, 2]));
    expect(v.extents.reduce((s, e) => s + e.length, 0)).toBe(80 * MiB);
    const boundary = v.extents[1]!.volumeOffset;
    const data = crypto.randomBytes(2 * MiB);
    await writeVolume('big', boundary - MiB, data);
    expect((await readVolume('big', boundary - MiB, 2 * MiB)).equals(data)).toBe(true);
    const [la, lb] = [await labelOf(img('a.img')), await labelOf(img('b.img'))];
    for (const l of [la, lb]) expect(l!.volumes).toEqual([expect.objectContaining({ name: 'big', size: 80 * MiB })]);
    expect(la!.volumes[0]!.extents.map((e) => e.deviceUuid)).toEqual([la!.uuid, lb!.uuid]);
    expect(vm.listDevices().map((d) => d.free)).toEqual([63 * MiB - boundary, 31 * MiB - (80 * MiB - boundary)]);
    await expectRefused(() => vm.removeDevice(2), 'IN_USE');
  });

  it('a new volume on space freed by a deleted one does not inherit its signatures', async () => {
    await vm.createVolume({ name: 'old', size: 8 * MiB });
    const junk = Buffer.alloc(8 * MiB, 0xab);
    await writeVolume('old', 0, junk);
    await vm.deleteVolume('old');
    const v = await vm.createVolume({ name: 'fresh', size: 8 * MiB });
    expect(v.extents[0]!.deviceOffset).toBe(DATA_START); // same place
    const head = await readVolume('fresh', 0, MiB);
    const tail = await readVolume('fresh', 7 * MiB, MiB);
    expect(head.every((b) => b === 0) && tail.every((b) => b === 0)).toBe(true);
  });

  it('concurrent creates and grows (UI and CLI at once) never share space', async () => {
    const results = await Promise.allSettled([
      ...Array.from({ length: 12 }, (_, i) => vm.createVolume({ name: `c${i}`, size: 4 * MiB })),
      vm.createVolume({ name: 'c0', size: MiB }), // duplicate of one racing above
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(12);
    expect(results.filter((r) => r.status === 'rejected').map((r) => ((r as PromiseRejectedResult).reason as HoldfastError).code)).toEqual(['ALREADY_EXISTS']);
    await Promise.all([vm.growVolume('c0', 6 * MiB), vm.growVolume('c1', 6 * MiB), vm.deleteVolume('c2'), vm.createVolume({ name: 'late', size: 2 * MiB })]);
    checkLayout(catalog.listDevices().map((d) => ({ id: d.id, size: d.size, dataStart: d.dataStart })), catalog.listVolumes());
    expect((await labelOf(img('a.img')))!.volumes.map((v) => v.name).sort()).toEqual(catalog.listVolumes().map((v) => v.name).sort());
  });

  it('places a volume only on the devices named', async () => {
    await vm.addDevice({ path: img('b.img'), create: true, size: 32 * MiB });
    const v = await vm.createVolume({ name: 'onb', size: 8 * MiB, devices: [img('b.img')] });
    expect(v.extents.every((e) => e.deviceId === 2)).toBe(true);
    await expectRefused(() => vm.createVolume({ name: 'toobig', size: 32 * MiB, devices: ['2'] }), 'NO_SPACE');
  });

  it('grows in place when it can, keeps data, and honours the engine hook', async () => {
    await vm.createVolume({ name: 'data', size: 4 * MiB, ack: 'device' });
    const data = crypto.randomBytes(4 * MiB);
    await writeVolume('data', 0, data);
    const g = await vm.growVolume('data', 10 * MiB);
    expect(g.extents).toEqual([{ volumeOffset: 0, deviceId: 1, deviceOffset: DATA_START, length: 10 * MiB }]);
    expect(g.ackMode).toBe('device');
    expect((await readVolume('data', 0, 4 * MiB)).equals(data)).toBe(true);
    expect((await labelOf(img('a.img')))!.volumes[0]).toMatchObject({ name: 'data', size: 10 * MiB });

    const seen: string[] = [];
    vm.beforeChange = (id, what) => {
      seen.push(`${id}:${what}`);
      throw new HoldfastError('IN_USE', 'a backup of this volume is running');
    };
    await expectRefused(() => vm.growVolume('data', 12 * MiB), 'IN_USE');
    await expectRefused(() => vm.renameVolume('data', 'd2'), 'IN_USE');
    await expectRefused(() => vm.deleteVolume('data'), 'IN_USE');
    expect(seen).toEqual([`${g.id}:grow`, `${g.id}:rename`, `${g.id}:delete`]);
    vm.beforeChange = undefined;
    const r = await vm.renameVolume('data', 'd2');
    expect(r).toMatchObject({ id: g.id, name: 'd2' });
    expect((await labelOf(img('a.img')))!.volumes.map((v) => v.name)).toEqual(['d2']);
  });

  it('a label write that fails leaves catalog and labels as they were', async () => {
    await vm.createVolume({ name: 'keep', size: MiB });
    env.failWritesTo = fs.realpathSync(img('a.img'));
    await expectRefused(() => vm.createVolume({ name: 'new', size: MiB }), 'IO_ERROR', /undone/);
    await expectRefused(() => vm.growVolume('keep', 2 * MiB), 'IO_ERROR');
    await expectRefused(() => vm.renameVolume('keep', 'kept'), 'IO_ERROR');
    await expectRefused(() => vm.deleteVolume('keep'), 'IO_ERROR');
    // a device that fails before anything is committed (wiping the new volume's space, which
    // holds a deleted volume's bytes: space that reads as zeroes is left unwritten)
    const k = vm.getVolume('keep').extents[0]!;
    const free = fs.statSync(img('a.img')).size - (k.deviceOffset + k.length);
    const fd = fs.openSync(img('a.img'), 'r+');
    fs.writeSync(fd, crypto.randomBytes(free), 0, free, k.deviceOffset + k.length);
    fs.closeSync(fd);
    env.failLabelOnly = false;
    await expectRefused(() => vm.createVolume({ name: 'new', size: MiB }), 'IO_ERROR', /Could not write to device 1/);
    env.failWritesTo = null;
    const keep = vm.getVolume('keep');
    expect(keep.id).toBe(1);
    await vm.deleteVolume('keep');
    expect((await labelOf(img('a.img')))!.volumes).toEqual([]);
  });
});
