import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { listDrives, parseLsblk } from '../../src-main/engine/devices/drives';
import { Drive } from '../../src-shared/contract';

// Captured from util-linux 2.38 on a laptop: NVMe system disk with EFI + root + swap, a USB stick with one mounted partition.
const MODERN = JSON.stringify({
  blockdevices: [
    { name: 'loop0', path: '/dev/loop0', size: 58720256, model: null, rm: false, mountpoints: ['/snap/core/1'], type: 'loop', fstype: 'squashfs', pkname: null },
    {
      name: 'nvme0n1', path: '/dev/nvme0n1', size: 512110190592, model: 'Samsung SSD 980 PRO 512GB', rm: false, mountpoints: [null], type: 'disk', fstype: null, pkname: null,
      children: [
        { name: 'nvme0n1p1', path: '/dev/nvme0n1p1', size: 536870912, model: null, rm: false, mountpoints: ['/boot/efi'], type: 'part', fstype: 'vfat', pkname: 'nvme0n1' },
        { name: 'nvme0n1p2', path: '/dev/nvme0n1p2', size: 494927822848, model: null, rm: false, mountpoints: ['/'], type: 'part', fstype: 'ext4', pkname: 'nvme0n1' },
        { name: 'nvme0n1p3', path: '/dev/nvme0n1p3', size: 16644096000, model: null, rm: false, mountpoints: ['[SWAP]'], type: 'part', fstype: 'swap', pkname: 'nvme0n1' },
      ],
    },
    {
      name: 'sdb', path: '/dev/sdb', size: 31037849600, model: 'Ultra Fit       ', rm: true, mountpoints: [null], type: 'disk', fstype: null, pkname: null,
      children: [{ name: 'sdb1', path: '/dev/sdb1', size: 31036800000, model: null, rm: true, mountpoints: ['/media/me/STICK', '/mnt/again'], type: 'part', fstype: 'exfat', pkname: 'sdb' }],
    },
    { name: 'sdc', path: '/dev/sdc', size: 2000398934016, model: 'Expansion HDD', rm: false, mountpoints: [null], type: 'disk', fstype: null, pkname: null,
      children: [{ name: 'sdc1', path: '/dev/sdc1', size: 2000397795328, model: null, rm: false, mountpoints: [null], type: 'part', fstype: 'ntfs', pkname: 'sdc',
        children: [{ name: 'luks-1', path: '/dev/mapper/luks-1', size: 2000381018112, model: null, rm: false, mountpoints: ['/srv/backup'], type: 'crypt', fstype: 'ext4', pkname: 'sdc1' }] }] },
    { name: 'sr0', path: '/dev/sr0', size: 1073741312, model: 'DVD-RW', rm: true, mountpoints: [null], type: 'rom', fstype: null, pkname: null },
    { name: 'zram0', path: '/dev/zram0', size: 8589934592, model: null, rm: false, mountpoints: ['[SWAP]'], type: 'disk', fstype: null, pkname: null },
    { name: 'sdd', path: '/dev/sdd', size: 0, model: 'Card Reader', rm: true, mountpoints: [null], type: 'disk', fstype: null, pkname: null },
  ],
});

// util-linux 2.33 (Debian 10): MOUNTPOINT column, every value a string.
const OLD = `{
   "blockdevices": [
      {"name": "sda", "path": "/dev/sda", "size": "128035676160", "model": "KINGSTON SA400", "rm": "0", "mountpoint": null, "type": "disk", "fstype": null, "pkname": null,
         "children": [
            {"name": "sda1", "path": "/dev/sda1", "size": "1048576", "model": null, "rm": "0", "mountpoint": null, "type": "part", "fstype": null, "pkname": "sda"},
            {"name": "sda2", "path": "/dev/sda2", "size": "128033562624", "model": null, "rm": "0", "mountpoint": "/", "type": "part", "fstype": "ext4", "pkname": "sda"}
         ]
      },
      {"name": "sdb", "path": "/dev/sdb", "size": "8015314944", "model": "Flash Disk", "rm": "1", "mountpoint": null, "type": "disk", "fstype": "iso9660", "pkname": null}
   ]
}`;

describe('parseLsblk', () => {
  it('lists whole disks with nested partitions, flags the system disk and mounted drives, skips ram, roms and empty slots', () => {
    const drives = parseLsblk(MODERN);
    for (const d of drives) Drive.parse(d);
    expect(drives.map((d) => d.name)).toEqual(['nvme0n1', 'sdb', 'sdc']);
    const [nvme, sdb, sdc] = drives;
    expect(nvme).toMatchObject({ system: true, mounted: true, removable: false, model: 'Samsung SSD 980 PRO 512GB', mountpoints: ['/boot/efi', '/'] });
    expect(nvme!.partitions.map((p) => [p.name, p.mounted, p.fstype])).toEqual([
      ['nvme0n1p1', true, 'vfat'],
      ['nvme0n1p2', true, 'ext4'],
      ['nvme0n1p3', true, 'swap'],
    ]);
    expect(sdb).toMatchObject({ path: '/dev/sdb', size: 31037849600, model: 'Ultra Fit', removable: true, mounted: true, system: false, mountpoints: ['/media/me/STICK', '/mnt/again'] });
    // mounted through a LUKS mapping on its partition
    expect(sdc).toMatchObject({ mounted: true, system: false, mountpoints: ['/srv/backup'] });
    expect(sdc!.partitions[0]).toMatchObject({ name: 'sdc1', mounted: true, fstype: 'ntfs' });
  });

  it('includes loop devices only when asked', () => {
    expect(parseLsblk(MODERN, { showLoop: true }).map((d) => d.name)).toContain('loop0');
  });

  it('reads older lsblk output (MOUNTPOINT, string numbers)', () => {
    const drives = parseLsblk(OLD);
    expect(drives).toEqual([
      expect.objectContaining({ name: 'sda', size: 128035676160, removable: false, system: true, mounted: true, mountpoints: ['/'] }),
      expect.objectContaining({ name: 'sdb', size: 8015314944, removable: true, system: false, mounted: false, partitions: [] }),
    ]);
    expect(drives[0]!.partitions[1]).toEqual({ name: 'sda2', path: '/dev/sda2', size: 128033562624, mounted: true, fstype: 'ext4' });
  });

  it('matches what this machine\'s lsblk says about its root disk', async () => {
    const drives = await listDrives({ showLoop: false });
    for (const d of drives) Drive.parse(d);
    const rootSource = execFileSync('findmnt', ['-n', '-o', 'SOURCE', '/']).toString().trim();
    const rootDisk = drives.find((d) => d.path === rootSource || d.partitions.some((p) => p.path === rootSource));
    if (!rootDisk) {
      console.log(`root ${rootSource} is not on a listed disk (container overlay?); checked schema only`);
      return;
    }
    expect(rootDisk.system).toBe(true);
  });
});

function loopSupport(): string | null {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root';
  try {
    execFileSync('losetup', ['-f']);
  } catch (e) {
    return `losetup unavailable: ${(e as Error).message.split('\n')[0]}`;
  }
  return null;
}
const noLoop = loopSupport();
if (noLoop) console.log(`skipping real loop-device drive listing: ${noLoop}`);

describe.skipIf(noLoop !== null)('listDrives with real loop devices', () => {
  it('shows a loop device only with HOLDFAST_SHOW_LOOP, with its size and mount state', async () => {
    const fs = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hf-drives-'));
    const img = path.join(dir, 'disk.img');
    fs.writeFileSync(img, '');
    fs.truncateSync(img, 24 * 1024 * 1024);
    execFileSync('mkfs.ext4', ['-q', img]);
    const loop = execFileSync('losetup', ['-f', '--show', img]).toString().trim();
    const mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt);
    try {
      expect((await listDrives({ showLoop: false })).some((d) => d.path === loop)).toBe(false);
      const unmounted = (await listDrives({ showLoop: true })).find((d) => d.path === loop);
      expect(unmounted).toMatchObject({ name: loop.replace('/dev/', ''), size: 24 * 1024 * 1024, mounted: false, system: false });
      execFileSync('mount', [loop, mnt]);
      const mounted = (await listDrives({ showLoop: true })).find((d) => d.path === loop);
      expect(mounted).toMatchObject({ mounted: true, mountpoints: [mnt] });
    } finally {
      try {
        execFileSync('umount', [mnt], { stdio: 'ignore' });
      } catch {
        /* not mounted */
      }
      execFileSync('losetup', ['-d', loop]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
