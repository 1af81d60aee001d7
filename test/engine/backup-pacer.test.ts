/**
 * The backup throttle: while foreground writes are acknowledged, reads are paced to the busy
 * rate; after a quiet spell they run at full speed; `off` never waits; the paced source waits
 * before reading and passes every other message through.
 */
import { describe, expect, it } from 'vitest';
import { BackupPacer, pacedSource, type PacerClock } from '../../src-main/engine/backup/backup-pacer';
import type { SnapshotSource } from '../../src-main/engine/backup/snapshot-source';

const MiB = 1 << 20;

/** A clock whose sleeps advance time at once and are recorded. */
function fakeClock(): PacerClock & { t: number; sleeps: number[] } {
  const c = {
    t: 1000,
    sleeps: [] as number[],
    now: () => c.t,
    sleep: async (ms: number) => {
      c.sleeps.push(ms);
      c.t += ms;
    },
  };
  return c;
}

describe('BackupPacer', () => {
  it('paces reads to the busy rate while writes are acknowledged', async () => {
    const clock = fakeClock();
    let writes = 0;
    const p = new BackupPacer({ mode: 'auto', activity: () => writes, clock, busyBytesPerSec: 100 * MiB, quietMs: 250 });
    // 10 reads of 4 MiB with a write before each: 40 ms per read at 100 MiB/s.
    const t0 = clock.t;
    for (let i = 0; i < 10; i++) {
      writes++;
      await p.before(4 * MiB);
      clock.t += 1; // the read itself
    }
    // The first read goes at once; each later one waits for the previous one's share.
    expect(clock.t - t0).toBeGreaterThanOrEqual(9 * 40);
    expect(clock.t - t0).toBeLessThan(9 * 40 + 20);
    expect(p.waitedMs).toBeGreaterThan(0);
    expect(clock.sleeps.every((s) => s <= 40 + 1e-9)).toBe(true);
  });

  it('runs at full speed once no write was acknowledged for quietMs, and is busy again at the next write', async () => {
    const clock = fakeClock();
    let writes = 0;
    const p = new BackupPacer({ mode: 'auto', activity: () => writes, clock, busyBytesPerSec: 100 * MiB, quietMs: 250 });
    expect(p.busy()).toBe(true); // unknown past: busy at first
    clock.t += 300;
    expect(p.busy()).toBe(false);
    for (let i = 0; i < 20; i++) await p.before(4 * MiB);
    expect(clock.sleeps).toEqual([]);
    writes++;
    await p.before(4 * MiB);
    await p.before(4 * MiB);
    expect(clock.sleeps).toEqual([40]);
  });

  it('off never waits, even while volumes are written', async () => {
    const clock = fakeClock();
    let writes = 0;
    const p = new BackupPacer({ mode: 'off', activity: () => writes, clock, busyBytesPerSec: 1 * MiB });
    for (let i = 0; i < 10; i++) {
      writes++;
      await p.before(4 * MiB);
    }
    expect(clock.sleeps).toEqual([]);
    expect(p.waitedMs).toBe(0);
  });
});

describe('pacedSource', () => {
  function source(log: string[]): SnapshotSource {
    return {
      backupId: 'bk-1',
      volume: 'v',
      volumeId: 7,
      size: 64 * MiB,
      policy: 'range',
      changed: null,
      read: async (o, l) => {
        log.push(`read ${o} ${l}`);
        return Buffer.alloc(l);
      },
      readInto: async (o, t) => {
        log.push(`readInto ${o} ${t.length}`);
      },
      rangeCopied: (o, l) => log.push(`copied ${o} ${l}`),
      urgentRanges: () => [{ offset: 4096, length: 4096 }],
      end: async (id) => void log.push(`end ${id}`),
      abort: async (r) => void log.push(`abort ${r}`),
    };
  }

  it('waits for the pacer before each read and passes every other message through', async () => {
    const clock = fakeClock();
    const log: string[] = [];
    const p = new BackupPacer({ mode: 'auto', activity: () => 0, clock, busyBytesPerSec: 100 * MiB, quietMs: 250 });
    const s = pacedSource(source(log), p);
    expect([s.backupId, s.volume, s.volumeId, s.size, s.policy, s.changed]).toEqual(['bk-1', 'v', 7, 64 * MiB, 'range', null]);
    await s.readInto!(0, Buffer.alloc(4 * MiB));
    await s.readInto!(4 * MiB, Buffer.alloc(4 * MiB));
    await s.read(8 * MiB, 4 * MiB);
    expect(clock.sleeps).toEqual([40, 40]); // busy at first: the 2nd and 3rd reads wait
    s.rangeCopied(0, 4096);
    expect(s.urgentRanges()).toEqual([{ offset: 4096, length: 4096 }]);
    await s.end('snap');
    await s.abort('x');
    expect(log).toEqual([`readInto 0 ${4 * MiB}`, `readInto ${4 * MiB} ${4 * MiB}`, `read ${8 * MiB} ${4 * MiB}`, 'copied 0 4096', 'end snap', 'abort x']);
  });

  it('paces located reads too (the chunk workers read them): pace() waits like a read, locate and confirmLocated pass through', async () => {
    const clock = fakeClock();
    const log: string[] = [];
    const src: SnapshotSource = {
      ...source(log),
      locate: (o, l) => (log.push(`locate ${o} ${l}`), [{ fd: 3, position: o, length: l }]),
      confirmLocated: () => void log.push('confirm'),
    };
    const p = new BackupPacer({ mode: 'auto', activity: () => 0, clock, busyBytesPerSec: 100 * MiB, quietMs: 250 });
    const s = pacedSource(src, p);
    await s.pace!(4 * MiB);
    expect(s.locate!(0, 4 * MiB)).toEqual([{ fd: 3, position: 0, length: 4 * MiB }]);
    await s.pace!(4 * MiB);
    s.confirmLocated!();
    expect(clock.sleeps).toEqual([40]);
    expect(log).toEqual([`locate 0 ${4 * MiB}`, 'confirm']);
    expect(pacedSource(source([]), p).pace, 'a source without locate needs no pace').toBeUndefined();
  });

  it('with throttle off is the source itself', () => {
    const src = source([]);
    expect(pacedSource(src, new BackupPacer({ mode: 'off', activity: () => 0 }))).toBe(src);
  });
});
