/**
 * Real NBD clients against engine volumes (journaled write path, hold queues) served by the
 * real NbdServer on `<data>/nbd.sock`, and against read-only snapshot exports `vol@snap`.
 * Every check is on bytes a user would check: what the engine volume holds, what a converted
 * or restored image holds, what e2fsck and fio's verifier say.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mustRun, run, serveEngine, type EngineServed } from './fixture';

const MiB = 1 << 20;
let s: EngineServed;
beforeAll(async () => {
  s = await serveEngine();
  await s.engine.api['volume.create']({ name: 'vol', size: 64 * MiB });
  await s.engine.api['volume.create']({ name: 'dev-ack', size: 16 * MiB, ack: 'device' });
}, 60_000);
afterAll(async () => {
  await s?.cleanup();
});

describe('engine volumes over NBD with real clients', () => {
  it('nbdinfo lists the engine volumes and reports an engine volume writable with flush, FUA and multi-conn', async () => {
    const list = JSON.parse(await mustRun('nbdinfo', ['--list', '--json', s.uri('')])).exports as Array<{ 'export-name': string }>;
    expect(list.map((e) => e['export-name'])).toEqual(expect.arrayContaining(['vol', 'dev-ack']));
    const info = JSON.parse(await mustRun('nbdinfo', ['--json', s.uri('vol')])).exports[0];
    expect(info['export-size']).toBe(64 * MiB);
    expect(info.is_read_only).toBe(false);
    expect(info.can_flush).toBe(true);
    expect(info.can_fua).toBe(true);
  });

  for (const name of ['vol', 'dev-ack']) {
    it(`qemu-io write/read patterns land in engine volume ${name}`, async () => {
      const out = await mustRun('qemu-io', ['-f', 'raw', s.uri(name),
        '-c', 'write -P 0xab 0 1M', '-c', 'read -P 0xab 0 1M',
        '-c', 'write -P 0x5c 3M 64k', '-c', 'write -z 3M 4k', '-c', 'read -P 0 3M 4k', '-c', 'read -P 0x5c 3076k 60k',
        '-c', 'write -P 0x11 5000 777', '-c', 'read -P 0x11 5000 777', '-c', 'flush']);
      expect(out).not.toMatch(/Pattern verification failed|error/i);
      const vol = s.engine.volume(name);
      expect((await vol.read(0, 4096)).every((b) => b === 0xab)).toBe(true);
      expect((await vol.read(3 * MiB, 4096)).every((b) => b === 0)).toBe(true);
      expect((await vol.read(3 * MiB + 4096, 60 * 1024)).every((b) => b === 0x5c)).toBe(true);
      const around = await vol.read(4096, 4096); // bytes 4096..8191 hold 5000+777
      expect(around.subarray(0, 5000 - 4096).every((b) => b === 0xab)).toBe(true);
      expect(around.subarray(5000 - 4096, 5777 - 4096).every((b) => b === 0x11)).toBe(true);
      expect(around.subarray(5777 - 4096).every((b) => b === 0xab)).toBe(true);
    });
  }

  it('qemu-img convert copies an image into a volume and out again; qemu-img compare finds them identical', async () => {
    await s.engine.api['volume.create']({ name: 'conv', size: 8 * MiB });
    const src = path.join(s.dir, 'src.img');
    const data = Buffer.alloc(8 * MiB);
    crypto.randomFillSync(data, 0, 2 * MiB);
    crypto.randomFillSync(data, 6 * MiB, MiB);
    fs.writeFileSync(src, data);
    await mustRun('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', src, s.uri('conv')]);
    expect((await s.engine.volume('conv').read(0, 8 * MiB)).equals(data)).toBe(true);
    const back = path.join(s.dir, 'back.img');
    await mustRun('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', s.uri('conv'), back]);
    await mustRun('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, back]);
    await mustRun('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, s.uri('conv')]);
    // A changed byte is noticed: compare is not vacuous.
    await mustRun('qemu-io', ['-f', 'raw', s.uri('conv'), '-c', 'write -P 0x01 7M 512']);
    expect((await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, s.uri('conv')])).code).toBe(1);
  });

  it('nbdfuse exposes an engine volume as a file: mkfs.ext4, debugfs writes a file, e2fsck is clean', async () => {
    await s.engine.api['volume.create']({ name: 'fs', size: 64 * MiB });
    const mnt = path.join(s.dir, 'mnt-fs');
    fs.mkdirSync(mnt);
    const fuse = run('nbdfuse', [mnt, s.uri('fs')], 120_000);
    const dev = path.join(mnt, 'nbd');
    const data = crypto.randomBytes(300_000);
    try {
      for (let i = 0; i < 100 && !fs.existsSync(dev); i++) await new Promise((r) => setTimeout(r, 100));
      await mustRun('mkfs.ext4', ['-q', '-F', dev]);
      const payload = path.join(s.dir, 'payload.bin');
      fs.writeFileSync(payload, data);
      await mustRun('debugfs', ['-w', '-R', `write ${payload} payload.bin`, dev]);
      await mustRun('e2fsck', ['-fn', dev]);
    } finally {
      await run('fusermount3', ['-u', mnt]);
      await fuse;
    }
    // The engine volume itself (read through the engine, not NBD) is the clean file system.
    const img = path.join(s.dir, 'fs-copy.img');
    fs.writeFileSync(img, await s.engine.volume('fs').read(0, 64 * MiB));
    await mustRun('e2fsck', ['-fn', img]);
    const out = path.join(s.dir, 'payload-out.bin');
    await mustRun('debugfs', ['-R', `dump payload.bin ${out}`, img]);
    expect(fs.readFileSync(out).equals(data)).toBe(true);
  }, 120_000);

  for (const name of ['vol', 'dev-ack']) {
    it(`fio --ioengine=nbd randrw QD16 on engine volume ${name} verifies with crc32c`, async () => {
      const r = await mustRun('fio', ['--name=verify', '--ioengine=nbd', `--uri=${s.uri(name)}`, '--rw=randrw', '--bs=4k',
        '--iodepth=16', '--size=8M', '--offset=4M', '--verify=crc32c', '--do_verify=1', '--verify_fatal=1', '--output-format=json'], 120_000);
      const job = JSON.parse(r.slice(r.indexOf('{'))).jobs[0];
      expect(job.error).toBe(0);
      expect(job.write.io_bytes).toBeGreaterThan(0);
      expect(job.read.io_bytes).toBeGreaterThan(0);
    }, 120_000);
  }
});

describe('snapshots exported read-only as VOLUME@SNAPSHOT', () => {
  it('a snapshot read with nbdcopy and qemu-img equals its restored file, and refuses writes', async () => {
    await s.engine.api['volume.create']({ name: 'snapsrc', size: 16 * MiB });
    const data = Buffer.alloc(16 * MiB);
    crypto.randomFillSync(data, 0, 3 * MiB);
    crypto.randomFillSync(data, 9 * MiB, 5 * MiB + 12345);
    const src = path.join(s.dir, 'snapsrc.img');
    fs.writeFileSync(src, data);
    await mustRun('nbdcopy', [src, s.uri('snapsrc')]);
    const b = await s.engine.api['backup.start']({ volume: 'snapsrc', policy: 'range' });
    expect(b.state).toBe('completed');
    const snap = b.snapshotId!;
    // The volume changes after the backup; the snapshot must not.
    await mustRun('qemu-io', ['-f', 'raw', s.uri('snapsrc'), '-c', 'write -P 0x77 0 1M']);
    await s.registry.refresh();
    const name = `snapsrc@${snap}`;

    const list = JSON.parse(await mustRun('nbdinfo', ['--list', '--json', s.uri('')])).exports as Array<{ 'export-name': string; description: string }>;
    expect(list.find((e) => e['export-name'] === name)?.description).toMatch(/read-only/);
    const info = JSON.parse(await mustRun('nbdinfo', ['--json', s.uri(name)])).exports[0];
    expect(info.is_read_only).toBe(true);
    expect(info['export-size']).toBe(16 * MiB);

    const restored = path.join(s.dir, 'restored.img');
    await s.engine.api['restore.start']({ id: snap, toFile: restored });
    expect(fs.readFileSync(restored).equals(data)).toBe(true);

    const viaNbdcopy = path.join(s.dir, 'via-nbdcopy.img');
    await mustRun('nbdcopy', [s.uri(name), viaNbdcopy]);
    expect(fs.readFileSync(viaNbdcopy).equals(fs.readFileSync(restored))).toBe(true);
    const viaQemu = path.join(s.dir, 'via-qemu.img');
    await mustRun('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', s.uri(name), viaQemu]);
    await mustRun('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', restored, viaQemu]);
    await mustRun('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', restored, s.uri(name)]);

    const w = await run('qemu-io', ['-f', 'raw', s.uri(name), '-c', 'write -P 1 0 4k']);
    expect(w.stdout + w.stderr).toMatch(/Operation not permitted|read-only|Permission denied/i);
    const w2 = await run('nbdcopy', [src, s.uri(name)]);
    expect(w2.code).not.toBe(0);
    // Nothing changed in the snapshot.
    const again = path.join(s.dir, 'again.img');
    await mustRun('nbdcopy', [s.uri(name), again]);
    expect(fs.readFileSync(again).equals(data)).toBe(true);
  }, 120_000);

  it('an unknown snapshot name fails the handshake with a message naming it', async () => {
    const r = await run('nbdinfo', [s.uri('snapsrc@19990101T000000Z-000000')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/19990101T000000Z-000000/);
  });
});
