import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { events, type EventPayload } from '../../src-shared/contract';
import { Engine } from '../../src-main/engine/engine';
import { pattern, useTempDirs } from './helpers';

const mk = useTempDirs();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('live write rate (volumes.stats)', () => {
  it('writes to a volume produce a rate in writes/s and bytes/s, other volumes stay at 0, and the engine says once when it went idle', async () => {
    const d = mk();
    const e = await Engine.open({ dataDir: path.join(d, 'data'), writeRateIntervalMs: 200 });
    try {
      await e.api['device.add']({ path: path.join(d, 'disk.img'), create: true, size: 64 << 20 });
      await e.api['volume.create']({ name: 'busy', size: 16 << 20 });
      await e.api['volume.create']({ name: 'quiet', size: 8 << 20 });
      const stats: Array<EventPayload<'volumes.stats'>> = [];
      const sub = e.events.on('volumes.stats', (p) => stats.push(events['volumes.stats'].parse(p)));
      await sleep(450);
      expect(stats, 'an idle engine sends no rate events').toEqual([]);

      // ~0.6 s of 4 KiB writes and 64 KiB write-zeroes.
      const until = Date.now() + 600;
      let writes = 0;
      let bytes = 0;
      const vol = e.volume('busy');
      while (Date.now() < until) {
        await vol.write((writes % 1000) * 4096, pattern(writes & 0xff, 4096));
        await vol.writeZeroes(8 << 20, 65536);
        writes += 2;
        bytes += 4096 + 65536;
        await sleep(1);
      }
      await sleep(700);
      sub.dispose();

      const busy = stats.map((s) => s.volumes.find((v) => v.volume === 'busy')!);
      const active = busy.filter((b) => b.writesPerSec > 0);
      expect(active.length).toBeGreaterThanOrEqual(2);
      for (const s of stats) expect(s.volumes.find((v) => v.volume === 'quiet')).toEqual({ volume: 'quiet', writesPerSec: 0, bytesPerSec: 0 });
      // Every write counted once: the rates integrate back to what was written.
      const counted = stats.reduce((a, s) => a + (s.volumes.find((v) => v.volume === 'busy')!.writesPerSec * s.intervalMs) / 1000, 0);
      const countedBytes = stats.reduce((a, s) => a + (s.volumes.find((v) => v.volume === 'busy')!.bytesPerSec * s.intervalMs) / 1000, 0);
      expect(counted).toBeCloseTo(writes, -1);
      expect(countedBytes / bytes).toBeGreaterThan(0.99);
      expect(countedBytes / bytes).toBeLessThan(1.01);
      // After the writes: exactly one all-idle event, then silence.
      expect(busy.at(-1)).toEqual({ volume: 'busy', writesPerSec: 0, bytesPerSec: 0 });
      expect(busy.at(-2)!.writesPerSec).toBeGreaterThan(0);
    } finally {
      await e.close();
    }
  });
});
