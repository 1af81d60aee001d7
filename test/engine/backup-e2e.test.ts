/**
 * Backups of a live volume through the engine and the vault while a writer never pauses:
 * the snapshot is exactly the volume as of begin() (a prefix of the write sequence) under the
 * volume and range policies and both ack modes; incrementals, restore to a new volume,
 * verify, abort and the "already running" error.
 */
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { Engine } from '../../src-main/engine/engine';
import { useTempDirs } from './helpers';

const VOL = 16 << 20;
const WRITE_SPAN = 2 << 20;
const mk = useTempDirs();

/** Write i covers blocks [b, b+n) with 4 KiB blocks stamped (i, block). */
function stamp(id: number, firstBlock: number, blocks: number): Buffer {
  const b = Buffer.alloc(blocks * 4096);
  for (let k = 0; k < blocks; k++) {
    b.writeUInt32LE(id, k * 4096);
    b.writeUInt32LE(firstBlock + k, k * 4096 + 4);
    b.fill(id & 0xff, k * 4096 + 8, (k + 1) * 4096);
  }
  return b;
}

class Writer {
  writes: Array<{ id: number; block: number; n: number }> = [];
  acked = 0;
  private stop = false;
  done: Promise<void>;
  constructor(engine: Engine, volume: string) {
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    this.done = (async () => {
      const vol = engine.volume(volume);
      for (let id = 1; !this.stop; id++) {
        const n = 1 + Math.floor(rnd() * 16);
        // The writer stays in the first eighth of the volume so incrementals stay incremental.
        const block = Math.floor(rnd() * (WRITE_SPAN / 4096 - n));
        this.writes.push({ id, block, n });
        await vol.write(block * 4096, stamp(id, block, n));
        this.acked = id;
        // An outside writer's requests arrive as I/O events; yield like one would.
        await new Promise((r) => setImmediate(r));
      }
    })();
  }
  async halt() {
    this.stop = true;
    await this.done;
  }
  /** The volume after writes 1..k. */
  model(k: number): Buffer {
    const m = Buffer.alloc(VOL);
    for (const w of this.writes) if (w.id <= k) stamp(w.id, w.block, w.n).copy(m, w.block * 4096);
    return m;
  }
}

function maxOwner(img: Buffer): number {
  let k = 0;
  for (let off = 0; off < img.length; off += 4096) k = Math.max(k, img.readUInt32LE(off));
  return k;
}

async function setup(ack: 'journal' | 'device') {
  const d = mk();
  const e = await Engine.open({ dataDir: path.join(d, 'data') });
  await e.api['device.add']({ path: path.join(d, 'disk.img'), create: true, size: 128 << 20 });
  await e.api['volume.create']({ name: 'live', size: VOL, ack });
  return { d, e };
}

describe('point-in-time backups of a volume that keeps being written', () => {
  for (const policy of ['volume', 'range'] as const) {
    for (const ack of ['journal', 'device'] as const) {
      it(`${policy} policy, ${ack} ack: the snapshot is the volume at begin, and every write lands`, async () => {
        const { d, e } = await setup(ack);
        const w = new Writer(e, 'live');
        try {
          await new Promise((r) => setTimeout(r, 150));
          const ackedBefore = w.acked;
          const b1 = await e.api['backup.start']({ volume: 'live', policy, full: true });
          expect(b1.state).toBe('completed');
          await new Promise((r) => setTimeout(r, 100));
          const b2 = await e.api['backup.start']({ volume: 'live', policy });
          expect(b2.kind).toBe('incremental');
          await w.halt();
          // After the backups every acknowledged write is on the volume.
          const now = await e.volume('live').read(0, VOL);
          expect(now.equals(w.model(w.acked))).toBe(true);
          for (const [b, name] of [
            [b1, 'r1'],
            [b2, 'r2'],
          ] as const) {
            await e.api['restore.start']({ id: b.snapshotId!, toVolume: name });
            const img = await e.volume(name).read(0, VOL);
            const k = maxOwner(img);
            expect(k).toBeGreaterThanOrEqual(b === b1 ? ackedBefore : 1);
            expect(img.equals(w.model(k)), `snapshot ${b.snapshotId} is the volume after write ${k}`).toBe(true);
          }
          const v = await e.api['snapshot.verify']({ id: b2.snapshotId! });
          expect(v.ok).toBe(true);
          const snaps = await e.api['snapshot.list']({});
          expect(snaps.map((s) => s.kind)).toEqual(expect.arrayContaining(['full', 'incremental']));
        } finally {
          await w.halt().catch(() => undefined);
          await e.close();
          void d;
        }
      }, 120_000);
    }
  }

  it('refuses a second backup of the same volume and lets the first be aborted, keeping every write', async () => {
    const { e } = await setup('journal');
    try {
      const w = new Writer(e, 'live');
      const first = await e.api['backup.start']({ volume: 'live', policy: 'volume', detach: true });
      await expect(e.api['backup.start']({ volume: 'live' })).rejects.toMatchObject({ code: 'BACKUP_RUNNING' });
      const aborted = await e.api['backup.abort']({ id: first.id });
      expect(['aborted', 'completed']).toContain(aborted.state);
      expect((await e.api['holds.get']({ volume: 'live' }))[0]!.backupFlag).toBe(false);
      await w.halt();
      expect((await e.volume('live').read(0, VOL)).equals(w.model(w.acked))).toBe(true);
      const list = await e.api['backup.list']({});
      expect(list.find((b) => b.id === first.id)!.state).toBe(aborted.state);
    } finally {
      await e.close();
    }
  }, 60_000);
});
