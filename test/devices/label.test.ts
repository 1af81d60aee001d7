import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { nodeEnv } from '../../src-main/engine/env/node-env';
import type { BlockFile } from '../../src-main/engine/env/env';
import { readLabel, writeLabel } from '../../src-main/engine/devices/label';
import { DATA_START, MAGIC, SLOT_SIZE, type DeviceLabel } from '../../src-main/engine/devices/label-format';
import { createImage } from '../../src-main/engine/devices/image';

const MiB = 1024 * 1024;
let dir: string;
let file: BlockFile;
beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hf-label-'));
  fs.writeFileSync(path.join(dir, 'dev.img'), Buffer.alloc(0));
  fs.truncateSync(path.join(dir, 'dev.img'), 4 * MiB);
  file = await nodeEnv.open(path.join(dir, 'dev.img'));
});
afterEach(async () => {
  await file.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const label = (n: number): DeviceLabel => ({
  uuid: '0f0e0d0c-0b0a-4908-8706-050403020100',
  dataStart: DATA_START,
  volumes: Array.from({ length: n }, (_, i) => ({ name: `v${i}`, size: MiB, ackMode: 'journal' as const, extents: [{ volumeOffset: 0, deviceUuid: '0f0e0d0c-0b0a-4908-8706-050403020100', deviceOffset: DATA_START + i * MiB, length: MiB }] })),
});

describe('device label', () => {
  it('reads null from a blank device and round-trips a written label, magic first', async () => {
    expect(await readLabel(file)).toBeNull();
    await writeLabel(file, label(2));
    expect(await readLabel(file)).toEqual(label(2));
    const head = Buffer.alloc(16);
    await file.read(head, 0);
    expect(head.subarray(0, MAGIC.length).toString('latin1')).toBe('HOLDFAST-LVM\0');
  });

  it('survives a torn write of the slot being updated: the previous label is still read', async () => {
    await writeLabel(file, label(1)); // both slots, generation 0
    await writeLabel(file, label(2)); // slot A, generation 1
    expect(await readLabel(file)).toEqual(label(2));
    // the next write goes to slot B; tear it (garbage in the middle of its header)
    await file.write(Buffer.from('torn!'), SLOT_SIZE + 22);
    expect(await readLabel(file)).toEqual(label(2));
    // and a complete write after that wins
    await writeLabel(file, label(3));
    expect(await readLabel(file)).toEqual(label(3));
  });

  it('throws IO_ERROR (never guesses) when every slot is damaged', async () => {
    await writeLabel(file, label(1));
    await file.write(Buffer.from([0xff, 0xff]), 70);
    await file.write(Buffer.from([0xff, 0xff]), SLOT_SIZE + 70);
    await expect(readLabel(file)).rejects.toMatchObject({ code: 'IO_ERROR', message: expect.stringMatching(/damaged/) });
  });

  it('keeps a long mapping (hundreds of volumes) beyond the first 4 KiB', async () => {
    await writeLabel(file, label(300));
    expect((await readLabel(file))!.volumes).toHaveLength(300);
  });
});

describe('createImage', () => {
  it('creates a sparse labelled image and refuses an existing path with ALREADY_EXISTS, untouched', async () => {
    const p = path.join(dir, 'new.img');
    const img = await createImage(p, 256 * MiB, nodeEnv);
    const st = fs.statSync(p);
    expect(st.size).toBe(256 * MiB);
    expect(st.blocks * 512).toBeLessThan(4 * MiB); // sparse
    const f = await nodeEnv.open(p);
    expect((await readLabel(f))?.uuid).toBe(img.uuid);
    await f.close();
    const head = () => {
      const fd = fs.openSync(p, 'r');
      const b = Buffer.alloc(DATA_START);
      fs.readSync(fd, b, 0, b.length, 0);
      fs.closeSync(fd);
      return b;
    };
    const before = head();
    await expect(createImage(p, 8 * MiB, nodeEnv)).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    expect(head().equals(before)).toBe(true);
    expect(fs.statSync(p).size).toBe(256 * MiB);
  });

  it('refuses sizes that are zero, negative, unaligned, too small or unsafe, creating nothing', async () => {
    const p = path.join(dir, 'bad.img');
    for (const [size, code] of [
      [0, 'INVALID_SIZE'],
      [-4096, 'INVALID_SIZE'],
      [MiB + 100, 'INVALID_SIZE'],
      [2 ** 60, 'INVALID_SIZE'],
      [4096, 'DEVICE_TOO_SMALL'],
    ] as const) {
      await expect(createImage(p, size, nodeEnv)).rejects.toMatchObject({ code });
      expect(fs.existsSync(p)).toBe(false);
    }
    await expect(createImage(path.join(dir, 'no/such/dir.img'), 8 * MiB, nodeEnv)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});
