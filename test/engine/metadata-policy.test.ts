/**
 * The metadata hold policy (claim 10) on a real ext4 volume: during a backup only writes
 * that touch filesystem metadata wait; file data writes go straight through.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Engine } from '../../src-main/engine/engine';
import { pattern, readImage, useTempDirs } from './helpers';

const mk = useTempDirs();

describe('metadata policy', () => {
  it('holds inode-table writes and lets file data writes through on ext4', async () => {
    const d = mk();
    const tree = path.join(d, 'tree');
    fs.mkdirSync(tree);
    fs.writeFileSync(path.join(tree, 'data.bin'), Buffer.alloc(256 << 10, 0x61));
    const image = path.join(d, 'fs.img');
    execFileSync('mkfs.ext4', ['-q', '-F', '-b', '4096', '-d', tree, image, '32M']);
    const dataBlock = Number(execFileSync('debugfs', ['-R', 'blocks /data.bin', image], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim().split(/\s+/)[0]);
    const dump = execFileSync('dumpe2fs', [image], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
    const inodeTable = Number(/Inode table at (\d+)/.exec(dump)![1]);

    const e = await Engine.open({ dataDir: path.join(d, 'data') });
    try {
      await e.api['volume.adopt']({ path: image, name: 'fs' });
      const vol = e.volume('fs');
      const s = await e.beginBackup('fs', 'metadata', 'm1');
      await vol.write(dataBlock * 4096, pattern(0x62, 4096));
      expect(vol.holdState().heldCount).toBe(0);
      expect(readImage(image, dataBlock * 4096, 4096).equals(pattern(0x62, 4096))).toBe(true);
      const before = readImage(image, inodeTable * 4096, 4096);
      await vol.write(inodeTable * 4096, pattern(0x00, 4096));
      expect(vol.holdState().heldCount).toBe(1);
      expect(readImage(image, inodeTable * 4096, 4096).equals(before)).toBe(true);
      await s.end('snap-m1');
      expect(vol.holdState().heldCount).toBe(0);
      expect(readImage(image, inodeTable * 4096, 4096).equals(pattern(0, 4096))).toBe(true);
    } finally {
      await e.close();
    }
  });
});
