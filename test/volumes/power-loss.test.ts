/**
 * A power loss keeps what was synced and may keep or lose anything else, file by file in any
 * order (FaultyEnv.powerLoss undoes a file's writes since its last datasync). A write a FLUSH
 * made durable must survive whatever the kernel wrote back on its own: here the journal's pages
 * (with the APPLIED record of a release) reach the disk and the device's do not. The release
 * syncs the device before it stages that record, so recovery finds the bytes on the device; if
 * the record could land first, recovery would skip the redo and the write would be gone.
 */
import { describe, expect, it } from 'vitest';
import { FaultyEnv } from '../../src-main/engine/env/faulty-env';
import { NodeEnv } from '../../src-main/engine/env/node-env';
import { UncopiedRangeRule } from '../../src-main/engine/holds/policy';
import { BlockBitmap } from '../../src-main/engine/volumes/block-bitmap';
import { openTestVolume, useTempDirs } from '../engine/helpers';

const mk = useTempDirs();
const KiB = 1024;
const MiB = 1 << 20;

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

describe('power loss', () => {
  for (const kept of ['journal', 'nothing'] as const)
    it(`keeps a flushed write that a range backup held and released (unsynced pages kept: ${kept})`, async () => {
      const d = mk();
      const size = 8 * MiB;
      const env = new FaultyEnv(new NodeEnv());
      const tv = await openTestVolume(d, 'vol', size, { env, bootId: 'boot-1' });
      const vol = tv.vol;
      env.trackUnsynced();
      const copied = new BlockBitmap(size);
      await vol.beginBackup('bk', new UncopiedRangeRule(copied), copied);
      const w = Buffer.alloc(64 * KiB, 0xab);
      await vol.write(MiB, w);
      expect(vol.holdState().heldCount, 'held: its range is not copied yet').toBe(1);
      await vol.flush(); // acknowledged and flushed: durable from here on
      vol.rangeCopied(0, size);
      await until(() => vol.holdState().heldCount === 0, 'the release');
      // A later write elsewhere commits the journal batch that carries the release's APPLIED record.
      await vol.write(4 * MiB, Buffer.alloc(4 * KiB, 0x11));
      await env.powerLoss((p) => kept === 'journal' && p.includes('journal'));

      const again = await openTestVolume(d, 'vol', size, { bootId: 'boot-2' });
      try {
        expect((await again.vol.read(MiB, w.length)).equals(w), 'the flushed write survived').toBe(true);
      } finally {
        await again.vol.close();
      }
    });
});
