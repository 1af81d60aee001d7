import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { Engine } from '../../src-main/engine/engine';
import { HoldfastError } from '../../src-shared/errors';
import { pattern, useTempDirs } from './helpers';

const mk = useTempDirs();

describe('Engine facade', () => {
  it('creates devices and volumes, writes through the journal, and reopens with the same state', async () => {
    const d = mk();
    const e = await Engine.open({ dataDir: path.join(d, 'data') });
    const dev = await e.api['device.add']({ path: path.join(d, 'disk.img'), create: true, size: 64 << 20 });
    expect(dev.kind).toBe('image');
    const a = await e.api['volume.create']({ name: 'alpha', size: 16 << 20 });
    const b = await e.api['volume.create']({ name: 'beta', size: 8 << 20 });
    expect(a.extents[0]!.deviceId).toBe(dev.id);
    expect(b.extents[0]!.deviceOffset).toBeGreaterThanOrEqual(a.extents[0]!.deviceOffset + a.size);
    await e.volume('alpha').write(0, pattern(0x5a, 4096));
    await e.volume('beta').write(0, pattern(0xa5, 4096));
    const holds = await e.api['holds.get']({});
    expect(holds.map((h) => h.volume).sort()).toEqual(['alpha', 'beta']);
    await expect(Engine.open({ dataDir: path.join(d, 'data') })).rejects.toMatchObject({ code: 'LOCKED' });
    await e.close();

    const e2 = await Engine.open({ dataDir: path.join(d, 'data') });
    expect((await e2.volume('alpha').read(0, 4096)).equals(pattern(0x5a, 4096))).toBe(true);
    expect((await e2.volume('beta').read(0, 4096)).equals(pattern(0xa5, 4096))).toBe(true);
    await e2.api['volume.grow']({ name: 'beta', size: 12 << 20 });
    await e2.volume('beta').write((12 << 20) - 4096, pattern(1, 4096));
    const s = await e2.beginBackup('alpha', 'volume', 'bk-1');
    await expect(e2.api['volume.delete']({ name: 'alpha' })).rejects.toMatchObject({ code: 'IN_USE' });
    await e2.volume('alpha').write(0, pattern(0x77, 4096));
    expect((await e2.api['holds.get']({ volume: 'alpha' }))[0]!.heldCount).toBe(1);
    await s.end('snap-x');
    expect((await e2.api['holds.get']({ volume: 'alpha' }))[0]!.heldCount).toBe(0);
    await e2.api['volume.delete']({ name: 'alpha' });
    await expect(e2.api['volume.list']({})).resolves.toHaveLength(1);
    await e2.close();
  });

  it('rejects bad volume input with codes and leaves the catalog unchanged', async () => {
    const d = mk();
    const e = await Engine.open({ dataDir: path.join(d, 'data') });
    await expect(e.api['volume.create']({ name: 'x', size: 4096 })).rejects.toBeInstanceOf(HoldfastError);
    await e.api['device.add']({ path: path.join(d, 'disk.img'), create: true, size: 16 << 20 });
    await e.api['volume.create']({ name: 'x', size: 4 << 20 });
    await expect(e.api['volume.create']({ name: 'x', size: 4 << 20 })).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    await expect(e.api['volume.create']({ name: 'y', size: 1 << 30 })).rejects.toMatchObject({ code: 'NO_SPACE' });
    await expect(e.api['volume.create']({ name: 'z', size: 1000 })).rejects.toMatchObject({ code: 'INVALID_SIZE' });
    await expect(e.api['volume.create']({ name: '../evil', size: 4096 })).rejects.toMatchObject({ code: 'INVALID_NAME' });
    expect((await e.api['volume.list']({})).map((v) => v.name)).toEqual(['x']);
    await e.close();
  });
});
