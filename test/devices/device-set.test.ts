import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { nodeEnv } from '../../src-main/engine/env/node-env';
import { DeviceSet } from '../../src-main/engine/devices/device-set';
import { createImage } from '../../src-main/engine/devices/image';

const MiB = 1024 * 1024;
let dir: string;
let set: DeviceSet;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hf-devset-'));
  set = new DeviceSet(nodeEnv);
});
afterEach(async () => {
  await set.closeAll();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('DeviceSet', () => {
  it('opens present devices once and reports missing or swapped ones as not present instead of failing', async () => {
    const a = await createImage(path.join(dir, 'a.img'), 8 * MiB, nodeEnv);
    const b = await createImage(path.join(dir, 'b.img'), 8 * MiB, nodeEnv);
    await set.openAll([
      { id: 1, path: a.path, labelUuid: a.uuid },
      { id: 2, path: path.join(dir, 'unplugged.img'), labelUuid: 'x' },
      { id: 3, path: b.path, labelUuid: a.uuid }, // catalog thinks a's device lives at b's path
    ]);
    expect(set.isPresent(1)).toBe(true);
    expect(set.file(1)).toBe(set.file(1));
    expect(set.file(1).size()).toBe(8 * MiB);
    expect(set.statusOf(2)).toMatchObject({ present: false, reason: expect.stringMatching(/not there/) });
    expect(() => set.file(2)).toThrow(expect.objectContaining({ code: 'DEVICE_MISSING' }));
    expect(set.statusOf(3)).toMatchObject({ present: false, reason: expect.stringMatching(/different device/) });
    expect(() => set.file(3)).toThrow(expect.objectContaining({ code: 'DEVICE_MISSING' }));
    await set.close(1);
    expect(set.isPresent(1)).toBe(false);
  });
});
