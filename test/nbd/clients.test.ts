/**
 * Real NBD clients against the Holdfast server over a file-backed export: every test checks
 * bytes that a user would check — in the backing image, in a converted image, in a file
 * system written through nbdfuse.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient } from './raw-client';
import { mustRun, run, serve, type Served } from './fixture';

let s: Served;
beforeAll(async () => {
  s = await serve();
});
afterAll(async () => {
  await s.cleanup();
});

function fileRange(p: string, offset: number, length: number): Buffer {
  const fd = fs.openSync(p, 'r');
  try {
    const b = Buffer.alloc(length);
    fs.readSync(fd, b, 0, length, offset);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

describe('NBD server with real clients', () => {
  it('nbdinfo --list shows every export with its description, and nbdinfo reports size and flags', async () => {
    const list = await mustRun('nbdinfo', ['--list', '--json', s.uri('')]);
    const exports = JSON.parse(list).exports as Array<{ 'export-name': string; description?: string }>;
    expect(exports.map((e) => e['export-name']).sort()).toEqual(['ro', 'vol']);
    expect(exports.find((e) => e['export-name'] === 'ro')?.description).toBe('read-only snapshot');

    const info = JSON.parse(await mustRun('nbdinfo', ['--json', s.uri('vol')]));
    const vol = info.exports[0];
    expect(vol['export-size']).toBe(64 * 1024 * 1024);
    expect(vol.is_read_only).toBe(false);
    expect(vol.can_multi_conn).toBe(true);
    expect(vol.can_flush).toBe(true);
    expect(vol.can_fua).toBe(true);
    expect(vol.can_trim).toBe(true);
    expect(vol.can_zero).toBe(true);
    expect(vol.block_size_maximum).toBe(32 * 1024 * 1024);
    expect(vol.contexts).toContain('base:allocation');

    const ro = JSON.parse(await mustRun('nbdinfo', ['--json', s.uri('ro')])).exports[0];
    expect(ro.is_read_only).toBe(true);
    expect(ro['export-size']).toBe(1024 * 1024);
  });

  it('nbdinfo on an unknown export fails with the server message', async () => {
    const r = await run('nbdinfo', [s.uri('nope')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/nope/);
  });

  it('qemu-io writes patterns that read back through NBD and land in the backing file', async () => {
    const out = await mustRun('qemu-io', ['-f', 'raw', s.uri('vol'),
      '-c', 'write -P 0xab 0 1M', '-c', 'read -P 0xab 0 1M',
      '-c', 'write -P 0x5c 3M 64k', '-c', 'write -z 3M 4k', '-c', 'read -P 0 3M 4k', '-c', 'read -P 0x5c 3076k 60k',
      '-c', 'write -P 0x11 5000 777', '-c', 'read -P 0x11 5000 777', '-c', 'flush']);
    expect(out).not.toMatch(/Pattern verification failed|error/i);
    expect(fileRange(s.volPath, 0, 4096).every((b) => b === 0xab)).toBe(true);
    expect(fileRange(s.volPath, 3 * 1024 * 1024 + 4096, 4096).every((b) => b === 0x5c)).toBe(true);
    expect(fileRange(s.volPath, 5000, 777).every((b) => b === 0x11)).toBe(true);
    // The bytes around the unaligned write keep the earlier pattern.
    expect(fileRange(s.volPath, 4096, 904).every((b) => b === 0xab)).toBe(true);
    expect(fileRange(s.volPath, 5777, 100).every((b) => b === 0xab)).toBe(true);
  });

  it('a read-only export serves its bytes and refuses writes', async () => {
    const r = await run('qemu-io', ['-f', 'raw', s.uri('ro'), '-c', 'write -P 1 0 4k']);
    expect(r.stdout + r.stderr).toMatch(/Operation not permitted|read-only|Permission denied/i);
    const dump = path.join(s.dir, 'ro-out.img');
    await mustRun('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', s.uri('ro'), dump]);
    expect(fs.readFileSync(dump).equals(fs.readFileSync(s.roPath))).toBe(true);
  });

  it('qemu-img convert copies an image in and out; qemu-img compare finds them identical', async () => {
    const src = path.join(s.dir, 'src.img');
    const data = Buffer.alloc(8 * 1024 * 1024);
    crypto.randomFillSync(data, 0, 2 * 1024 * 1024);
    crypto.randomFillSync(data, 6 * 1024 * 1024, 1024 * 1024);
    fs.writeFileSync(src, data);
    const small = await serve({ volBytes: 8 * 1024 * 1024 });
    try {
      await mustRun('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', src, small.uri('vol')]);
      const back = path.join(s.dir, 'back.img');
      await mustRun('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', small.uri('vol'), back]);
      await mustRun('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, back]);
      await mustRun('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, small.uri('vol')]);
      expect(fs.readFileSync(small.volPath).equals(data)).toBe(true);
    } finally {
      await small.cleanup();
    }
  });

  it('nbdcopy copies a file to an export and back byte for byte', async () => {
    const small = await serve({ volBytes: 16 * 1024 * 1024 });
    try {
      const src = path.join(small.dir, 'src.img');
      const data = crypto.randomBytes(16 * 1024 * 1024);
      fs.writeFileSync(src, data);
      await mustRun('nbdcopy', [src, small.uri('vol')]);
      expect(fs.readFileSync(small.volPath).equals(data)).toBe(true);
      const back = path.join(small.dir, 'back.img');
      await mustRun('nbdcopy', [small.uri('vol'), back]);
      expect(fs.readFileSync(back).equals(data)).toBe(true);
    } finally {
      await small.cleanup();
    }
  });

  it('nbdfuse exposes the export as a file: mkfs.ext4, debugfs writes a file, e2fsck is clean', async () => {
    const small = await serve({ volBytes: 64 * 1024 * 1024 });
    const mnt = path.join(small.dir, 'mnt');
    fs.mkdirSync(mnt);
    const pidFile = path.join(small.dir, 'fuse.pid');
    const fuse = run('nbdfuse', ['-P', pidFile, mnt, small.uri('vol')], 120_000);
    const dev = path.join(mnt, 'nbd');
    try {
      for (let i = 0; i < 100 && !fs.existsSync(dev); i++) await new Promise((r) => setTimeout(r, 100));
      await mustRun('mkfs.ext4', ['-q', '-F', dev]);
      const payload = path.join(small.dir, 'payload.bin');
      const data = crypto.randomBytes(300_000);
      fs.writeFileSync(payload, data);
      await mustRun('debugfs', ['-w', '-R', `write ${payload} payload.bin`, dev]);
      const out = path.join(small.dir, 'out.bin');
      await mustRun('debugfs', ['-R', `dump payload.bin ${out}`, dev]);
      expect(fs.readFileSync(out).equals(data)).toBe(true);
      await mustRun('e2fsck', ['-fn', dev]);
    } finally {
      await run('fusermount3', ['-u', mnt]);
      await fuse;
    }
    // The backing image itself holds the clean file system.
    const fsck = await run('e2fsck', ['-fn', small.volPath]);
    expect(fsck.code).toBe(0);
    await small.cleanup();
  });

  it('fio --ioengine=nbd random read/write verifies with crc32c', async () => {
    const r = await mustRun('fio', ['--name=verify', '--ioengine=nbd', `--uri=${s.uri('vol')}`, '--rw=randrw', '--bs=4k',
      '--iodepth=16', '--size=16M', '--offset=32M', '--verify=crc32c', '--do_verify=1', '--verify_fatal=1', '--output-format=json'], 120_000);
    const job = JSON.parse(r.slice(r.indexOf('{'))).jobs[0];
    expect(job.error).toBe(0);
    expect(job.write.io_bytes).toBeGreaterThan(0);
    expect(job.read.io_bytes).toBeGreaterThan(0);
  });

  it('serves several simultaneous connections to one export, each seeing the others\' flushed writes', async () => {
    const clients = await Promise.all([0, 1, 2, 3].map(() => RawClient.connect(s.socket)));
    try {
      await Promise.all(clients.map((c) => c.go('vol')));
      expect(s.server.clientCount('vol')).toBe(4);
      await Promise.all(clients.map(async (c, i) => {
        const r = await c.request(1, 40 * 1024 * 1024 + i * 65536, 65536, 1, Buffer.alloc(65536, 0x40 + i));
        expect(r.error).toBe(0);
      }));
      // Each connection reads what another one wrote.
      for (let i = 0; i < 4; i++) {
        const r = await clients[(i + 1) % 4]!.request(0, 40 * 1024 * 1024 + i * 65536, 65536);
        expect(r.error).toBe(0);
        expect(r.data!.every((b) => b === 0x40 + i)).toBe(true);
      }
      const procs = [0, 1, 2].map((i) => mustRun('qemu-io', ['-f', 'raw', s.uri('vol'), '-c', `write -P ${0x70 + i} ${48 + i}M 1M`, '-c', `read -P ${0x70 + i} ${48 + i}M 1M`]));
      await Promise.all(procs);
      for (let i = 0; i < 3; i++) expect(fileRange(s.volPath, (48 + i) * 1024 * 1024, 1024 * 1024).every((b) => b === 0x70 + i)).toBe(true);
    } finally {
      for (const c of clients) c.close();
    }
  });

  it('listens on loopback TCP with port 0', async () => {
    const { port } = await s.server.listenTcp(0);
    expect(port).toBeGreaterThan(0);
    const info = JSON.parse(await mustRun('nbdinfo', ['--json', `nbd://127.0.0.1:${port}/vol`]));
    expect(info.exports[0]['export-size']).toBe(64 * 1024 * 1024);
    await mustRun('qemu-io', ['-f', 'raw', `nbd://127.0.0.1:${port}/vol`, '-c', 'write -P 0x33 60M 64k', '-c', 'read -P 0x33 60M 64k']);
  });

  it('block status reports base:allocation extents covering the request', async () => {
    const c = await RawClient.connect(s.socket);
    try {
      await c.go('vol', { baseAllocation: true });
      const r = await c.request(7, 0, 1024 * 1024);
      expect(r.error).toBe(0);
      expect(r.extents!.reduce((n, [len]) => n + len, 0)).toBe(1024 * 1024);
      const map = await mustRun('nbdinfo', ['--map', s.uri('vol')]);
      expect(map).toMatch(/data/);
    } finally {
      c.close();
    }
  });

  it('revoking an export disconnects its clients and closes their leases', async () => {
    const c = await RawClient.connect(s.socket);
    await c.go('ro');
    expect(s.registry.openCount('ro')).toBe(1);
    s.registry.revoke('ro');
    expect(await c.waitClosed()).toBe(true);
    for (let i = 0; i < 50 && s.registry.openCount('ro') > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(s.registry.openCount('ro')).toBe(0);
    expect(s.server.clientCount('ro')).toBe(0);

    const d = await RawClient.connect(s.socket);
    await d.go('ro');
    await s.server.disconnectExport('ro');
    expect(await d.waitClosed()).toBe(true);
  });
});
