/**
 * image.import / image.flash / drive.image through a real Engine (DESIGN.md §4): real image
 * files (gzip/zstd made by their CLIs), real volumes on a real device image, real loop devices
 * when running as root. Every case checks the bytes that arrived and their SHA-256, and that a
 * failure leaves nothing half done.
 */
import { afterEach, describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Engine } from '../../src-main/engine/engine';
import { cachedBytes, tempDir } from '../engine/helpers';
import { sampleImage } from './helpers';

const MiB = 1 << 20;
const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) {
    try {
      await c();
    } catch {
      /* best effort */
    }
  }
});

async function setup(): Promise<{ d: string; e: Engine }> {
  const d = tempDir('hf-imgxfer-');
  cleanup.push(() => fs.rmSync(d, { recursive: true, force: true }));
  const e = await Engine.open({ dataDir: path.join(d, 'data') });
  cleanup.push(() => e.close());
  await e.api['device.add']({ path: path.join(d, 'disk.img'), create: true, size: 96 * MiB });
  return { d, e };
}

async function volumeBytes(e: Engine, name: string): Promise<Buffer> {
  const v = e.volume(name);
  return v.read(0, v.size());
}

describe('image.import', () => {
  it('imports raw, .gz and .zst images into new volumes of the image size (4 KiB rounded) and existing ones, verified', async () => {
    const { d, e } = await setup();
    const data = sampleImage(5 * MiB + 1000); // not a multiple of 512
    const raw = path.join(d, 'os.img');
    fs.writeFileSync(raw, data);
    execFileSync('gzip', ['-k', raw]);
    execFileSync('zstd', ['-q', '-k', raw, '-o', `${raw}.zst`]);

    for (const [file, vol] of [[raw, 'fromraw'], [`${raw}.gz`, 'fromgz'], [`${raw}.zst`, 'fromzst']] as const) {
      const r = await e.api['image.import']({ file, volume: vol, create: true });
      expect(r).toEqual({ volume: vol, bytes: data.length, sha256: sha(data) });
      const v = await volumeBytes(e, vol);
      expect(v.length).toBe(Math.ceil(data.length / 4096) * 4096);
      expect(sha(v.subarray(0, data.length))).toBe(sha(data));
      expect(v.subarray(data.length).every((x) => x === 0)).toBe(true);
    }

    // Into an existing, larger volume that held other data: the image replaces its start, the rest stays.
    await e.api['volume.create']({ name: 'big', size: 8 * MiB });
    const big = e.volume('big');
    await big.write(0, Buffer.alloc(8 * MiB, 0x77));
    const r = await e.api['image.import']({ file: `${raw}.gz`, volume: 'big' });
    expect(r).toEqual({ volume: 'big', bytes: data.length, sha256: sha(data) });
    const after = await volumeBytes(e, 'big');
    expect(sha(after.subarray(0, data.length))).toBe(sha(data));
    const sectorEnd = Math.ceil(data.length / 512) * 512;
    expect(after.subarray(data.length, sectorEnd).every((x) => x === 0)).toBe(true); // the last sector is padded
    expect(after.subarray(sectorEnd).every((x) => x === 0x77)).toBe(true);

    // A volume is a backup source like any other: the imported bytes are what a snapshot holds.
    const b = await e.api['backup.start']({ volume: 'fromzst' });
    const out = path.join(d, 'snap.raw');
    await e.api['snapshot.export']({ id: b.snapshotId!, format: 'raw', path: out });
    expect(sha(fs.readFileSync(out).subarray(0, data.length))).toBe(sha(data));
  });

  it('refuses missing files, damaged images and images too big for the volume, changing nothing', async () => {
    const { d, e } = await setup();
    const data = sampleImage(6 * MiB);
    const raw = path.join(d, 'six.img');
    fs.writeFileSync(raw, data);
    execFileSync('gzip', ['-k', raw]);
    const gz = fs.readFileSync(`${raw}.gz`);
    fs.writeFileSync(path.join(d, 'bad.img.gz'), Buffer.concat([gz.subarray(0, 300), Buffer.alloc(100, 0x5a), gz.subarray(400)]));
    fs.writeFileSync(path.join(d, 'short.img.gz'), gz.subarray(0, gz.length - 2000));

    await expect(e.api['image.import']({ file: path.join(d, 'missing.img'), volume: 'x', create: true })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    for (const f of ['bad.img.gz', 'short.img.gz'])
      await expect(e.api['image.import']({ file: path.join(d, f), volume: 'x', create: true }), f).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
        message: expect.stringContaining('not a valid gzip file'),
      });
    expect((await e.api['volume.list']({})).map((v) => v.name)).toEqual([]); // no half volume

    await e.api['volume.create']({ name: 'small', size: 4 * MiB });
    await e.volume('small').write(0, Buffer.alloc(4 * MiB, 0x33));
    for (const f of [raw, `${raw}.gz`])
      await expect(e.api['image.import']({ file: f, volume: 'small' }), f).rejects.toMatchObject({ code: 'DEVICE_TOO_SMALL' });
    // A damaged image that would fit is refused before anything is written.
    const three = path.join(d, 'three.img');
    fs.writeFileSync(three, sampleImage(3 * MiB, 5));
    execFileSync('gzip', ['-k', three]);
    const gz3 = fs.readFileSync(`${three}.gz`);
    fs.writeFileSync(path.join(d, 'bad3.img.gz'), Buffer.concat([gz3.subarray(0, gz3.length - 8), Buffer.alloc(8, 0xff)])); // wrong CRC and length
    await expect(e.api['image.import']({ file: path.join(d, 'bad3.img.gz'), volume: 'small' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect((await volumeBytes(e, 'small')).every((x) => x === 0x33)).toBe(true); // untouched
    await expect(e.api['image.import']({ file: raw, volume: 'small', create: true })).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    await expect(e.api['image.import']({ file: raw, volume: 'nosuch' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    // Too big for every device: the volume cannot be created, so nothing is left behind.
    const huge = path.join(d, 'huge.img');
    fs.writeFileSync(huge, '');
    fs.truncateSync(huge, 200 * MiB);
    await expect(e.api['image.import']({ file: huge, volume: 'huge', create: true })).rejects.toMatchObject({ code: 'NO_SPACE' });
    expect((await e.api['volume.list']({})).map((v) => v.name)).toEqual(['small']);
  });
});

describe('image.flash to an image file', () => {
  it('needs the typed name, writes a file or a snapshot, verifies, and refuses Holdfast devices', async () => {
    const { d, e } = await setup();
    const data = sampleImage(3 * MiB + 512);
    const src = path.join(d, 'src.img');
    fs.writeFileSync(src, data);
    execFileSync('zstd', ['-q', '-k', src, '-o', `${src}.zst`]);
    const target = path.join(d, 'card.bin');
    fs.writeFileSync(target, Buffer.alloc(4 * MiB, 0xee));

    await expect(e.api['image.flash']({ source: `${src}.zst`, device: target })).rejects.toMatchObject({ code: 'CONFIRMATION_REQUIRED', message: expect.stringContaining('--confirm card.bin') });
    await expect(e.api['image.flash']({ source: `${src}.zst`, device: target, confirm: 'sdb' })).rejects.toMatchObject({ code: 'CONFIRMATION_REQUIRED' });
    expect(fs.readFileSync(target).every((x) => x === 0xee)).toBe(true);
    const r = await e.api['image.flash']({ source: `${src}.zst`, device: target, confirm: 'card.bin' });
    expect(r).toEqual({ device: target, bytes: data.length, sha256: sha(data), verified: true });
    const t = fs.readFileSync(target);
    expect(sha(t.subarray(0, data.length))).toBe(sha(data));
    expect(t.subarray(data.length).every((x) => x === 0xee)).toBe(true); // past the image: untouched

    // A snapshot id as the source.
    await e.api['volume.create']({ name: 'sv', size: 2 * MiB });
    const pattern = sampleImage(2 * MiB, 7);
    await e.volume('sv').write(0, pattern);
    const b = await e.api['backup.start']({ volume: 'sv' });
    const r2 = await e.api['image.flash']({ source: b.snapshotId!, device: target, confirm: 'card.bin' });
    expect(r2).toEqual({ device: target, bytes: 2 * MiB, sha256: sha(pattern), verified: true });
    expect(sha(fs.readFileSync(target).subarray(0, 2 * MiB))).toBe(sha(pattern));

    await expect(e.api['image.flash']({ source: 'no-such-snapshot', device: target, confirm: 'card.bin' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(e.api['image.flash']({ source: path.join(d, 'gone.img'), device: target, confirm: 'card.bin' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(e.api['image.flash']({ source: src, device: path.join(d, 'disk.img'), confirm: 'disk.img' })).rejects.toMatchObject({ code: 'IN_USE' });
    await expect(e.api['image.flash']({ source: src, device: path.join(d, 'absent.bin'), confirm: 'absent.bin' })).rejects.toMatchObject({ code: 'DEVICE_MISSING' });
  });
});

/** Real loop devices: needs root and losetup. */
function loopSupport(): string | null {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root';
  try {
    execFileSync('losetup', ['-f']);
    execFileSync('which', ['mkfs.ext4']);
  } catch (err) {
    return `losetup/mkfs.ext4 unavailable: ${(err as Error).message.split('\n')[0]}`;
  }
  return null;
}
const noLoop = loopSupport();
if (noLoop) console.log(`skipping loop-device image tests: ${noLoop}`);

describe.skipIf(noLoop !== null)('loop devices: flash and drive image', () => {
  function attach(img: string): string {
    const loop = execFileSync('losetup', ['-f', '--show', img]).toString().trim();
    cleanup.push(() => execFileSync('losetup', ['-d', loop]));
    return loop;
  }

  it('flashes a .gz image onto a loop device with read-back, refuses it while mounted and when too small', async () => {
    const { d, e } = await setup();
    const backing = path.join(d, 'stick.img');
    fs.writeFileSync(backing, Buffer.alloc(8 * MiB, 0xcd));
    const loop = attach(backing);
    const name = path.basename(loop);
    const data = sampleImage(5 * MiB + 4096, 3);
    const src = path.join(d, 'os.img');
    fs.writeFileSync(src, data);
    execFileSync('gzip', ['-k', src]);

    await expect(e.api['image.flash']({ source: `${src}.gz`, device: loop, confirm: 'wrong' })).rejects.toMatchObject({ code: 'CONFIRMATION_REQUIRED', message: expect.stringContaining(`--confirm ${name}`) });
    const r = await e.api['image.flash']({ source: `${src}.gz`, device: loop, confirm: name });
    expect(r).toEqual({ device: loop, bytes: data.length, sha256: sha(data), verified: true });
    const dev = Buffer.alloc(8 * MiB);
    const fd = fs.openSync(loop, 'r');
    fs.readSync(fd, dev, 0, dev.length, 0);
    fs.closeSync(fd);
    expect(sha(dev.subarray(0, data.length))).toBe(sha(data));
    expect(dev.subarray(data.length).every((x) => x === 0xcd)).toBe(true);

    const tooBig = path.join(d, 'big.img');
    fs.writeFileSync(tooBig, sampleImage(9 * MiB, 4));
    execFileSync('gzip', ['-k', tooBig]);
    await expect(e.api['image.flash']({ source: `${tooBig}.gz`, device: loop, confirm: name })).rejects.toMatchObject({ code: 'DEVICE_TOO_SMALL' });

    execFileSync('mkfs.ext4', ['-q', loop]);
    const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'hf-mnt-'));
    execFileSync('mount', [loop, mnt]);
    cleanup.push(() => fs.rmdirSync(mnt));
    cleanup.push(() => execFileSync('umount', [mnt], { stdio: 'ignore' }));
    await expect(e.api['image.flash']({ source: src, device: loop, confirm: name })).rejects.toMatchObject({ code: 'DEVICE_MOUNTED' });
    await expect(e.api['drive.image']({ drive: loop })).rejects.toMatchObject({ code: 'DEVICE_MOUNTED' });
  });

  it('images a loop device into the vault twice: the second stores only the changed region; the snapshot restores to its bytes', async () => {
    const { d, e } = await setup();
    const backing = path.join(d, 'drive.img');
    const content = crypto.randomBytes(24 * MiB); // incompressible, so stored bytes are real sizes
    fs.writeFileSync(backing, content);
    const loop = attach(backing);

    const cachedBefore = cachedBytes(loop); // a new loop device: only what the drive probe read
    const r1 = await e.api['drive.image']({ drive: loop });
    expect(r1).toMatchObject({ drive: loop, volume: `drive-${path.basename(loop)}`, bytes: 24 * MiB, previous: null, reusedChunks: 0 });
    expect(cachedBytes(loop) - cachedBefore, 'the drive was read around the page cache (O_DIRECT)').toBeLessThan(MiB);
    expect(r1.newChunks).toBe(6); // 24 MiB of 4 MiB chunks, none zero
    // Change 1 MiB in the middle of the drive (one 4 MiB region).
    const patch = crypto.randomBytes(MiB);
    const fd = fs.openSync(loop, 'r+');
    fs.writeSync(fd, patch, 0, patch.length, 9 * MiB);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    patch.copy(content, 9 * MiB);

    const r2 = await e.api['drive.image']({ drive: path.basename(loop) }); // by its name, as drive list shows it
    expect(r2).toMatchObject({ previous: r1.snapshotId, newChunks: 1, reusedChunks: 5 });
    expect(r2.storedBytes).toBeLessThanOrEqual(4 * MiB + 4096); // one 4 MiB chunk (random data does not compress)
    const snaps = await e.api['snapshot.list']({});
    expect(snaps.filter((s) => s.volume === r1.volume).map((s) => s.id)).toEqual([r1.snapshotId, r2.snapshotId]);
    const out = path.join(d, 'restored.raw');
    await e.api['restore.start']({ id: r2.snapshotId, toFile: out });
    expect(sha(fs.readFileSync(out))).toBe(sha(content));
    expect((await e.api['snapshot.verify']({ id: r2.snapshotId })).ok).toBe(true);
  });
});
