/**
 * The backup throttle: while foreground writes are acknowledged, reads are paced to the busy
 * rate; after a quiet spell they run at full speed; `off` never waits; the paced source waits
 * before reading and passes every other message through.
 */
import { describe, expect, it } from 'vitest';
import {
  BackupPacer,
  CALIBRATE_IDLE_MS,
  CALIBRATE_MS,
  DECREASE,
  FIRST_PROBE_MS,
  INCREASE_BYTES_PER_SEC,
  pacedSource,
  PROBE_MS,
  PRESSURE_HIGH,
  PRESSURE_LOW,
  PROBE_SETTLE_MS,
  REPROBE_MS,
  TARGET_FACTOR,
  TARGET_SLACK_US,
  WINDOW_MS,
  type PacerClock,
} from '../../src-main/engine/backup/backup-pacer';
import { eventLoopLag, type LagGauge, type LagSample } from '../../src-main/engine/backup/loop-lag';
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

  it('raises its floor as the journal fills up with held writes, reads at full speed past PRESSURE_HIGH, and paces again once it drains', async () => {
    const clock = fakeClock();
    const lag = fakeGauge();
    lag.next = { latenessUs: 40, samples: 400 };
    let writes = 0;
    let fill = 0.1;
    const p = new BackupPacer({ mode: 'auto', activity: () => writes, clock, lag, busyBytesPerSec: 128 * MiB, minBytesPerSec: 16 * MiB, quietMs: 250, pressure: () => fill });
    const read = async () => {
      writes++;
      await p.before(4 * MiB);
    };
    await read(); // probe
    lag.next = { latenessUs: 1000, samples: 400 }; // far over target: AIMD goes to the floor
    while (p.rate > 16 * MiB) await read();
    expect(p.rate).toBe(16 * MiB);
    expect(p.throttling()).toBe(true);
    // Halfway between PRESSURE_LOW and PRESSURE_HIGH: the floor is halfway to the ceiling.
    fill = (PRESSURE_LOW + PRESSURE_HIGH) / 2;
    await read();
    expect(p.rate).toBeCloseTo(72 * MiB, 0);
    const sleeps = clock.sleeps.length;
    fill = PRESSURE_HIGH;
    for (let i = 0; i < 10; i++) await read();
    expect(clock.sleeps.length, 'no wait under pressure').toBe(sleeps);
    expect(p.throttling(), 'progress says full speed').toBe(false);
    expect(p.stats.pressured).toBe(1);
    fill = PRESSURE_LOW - 0.01; // drained: the adaptive rate again
    await read();
    await read();
    expect(p.rate).toBe(16 * MiB);
    expect(clock.sleeps.at(-1)).toBeCloseTo(250); // 4 MiB at 16 MiB/s
    expect(p.throttling()).toBe(true);
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

/** A gauge that returns what the test sets, and tells whether it runs. */
function fakeGauge(): LagGauge & { running: boolean; next: LagSample; takes: number } {
  const g = {
    running: false,
    next: { latenessUs: 40, samples: 400 } as LagSample,
    takes: 0,
    start: () => void (g.running = true),
    stop: () => void (g.running = false),
    take: () => {
      g.takes++;
      return g.running ? { ...g.next } : { latenessUs: 0, samples: 0 };
    },
  };
  return g;
}

describe('BackupPacer with a lag gauge (adaptive busy rate)', () => {
  /** A pacer under constant writes: `read()` is one 4 MiB read with a write just before it. */
  function adaptive(opts: { min?: number; max?: number } = {}) {
    const clock = fakeClock();
    const lag = fakeGauge();
    let writes = 0;
    const p = new BackupPacer({ mode: 'auto', activity: () => writes, clock, lag, busyBytesPerSec: (opts.max ?? 128) * MiB, minBytesPerSec: (opts.min ?? 8) * MiB });
    const read = async () => {
      writes++;
      await p.before(4 * MiB);
    };
    /** Reads until `ms` of fake time passed. */
    const readFor = async (ms: number) => {
      const end = clock.t + ms;
      while (clock.t < end) await read();
    };
    return { clock, lag, p, read, readFor, write: () => void writes++ };
  }

  it('calibrates before the backup begins while volumes are written, and gives up at once when nobody writes', async () => {
    const a = adaptive();
    const t0 = a.clock.t;
    a.lag.next = { latenessUs: 50, samples: 250 };
    const cal = a.p.calibrate();
    a.write(); // a client writes during the calibration
    await cal;
    expect(a.clock.t - t0).toBe(CALIBRATE_MS);
    expect(a.p.baselineUs).toBe(50);
    expect(a.p.stats.calibrated).toBe(true);
    expect(a.lag.running, 'the gauge stops until the backup reads busy').toBe(false);
    // The first probe comes FIRST_PROBE_MS into the busy reads; a lower measurement wins.
    a.lag.next = { latenessUs: 30, samples: 400 };
    await a.readFor(FIRST_PROBE_MS - 200);
    expect(a.p.stats.probes).toBe(0);
    await a.readFor(1000);
    expect(a.p.stats.probes).toBe(1);
    expect(a.p.baselineUs).toBe(30);

    const quiet = adaptive();
    const t1 = quiet.clock.t;
    await quiet.p.calibrate();
    expect(quiet.clock.t - t1).toBe(CALIBRATE_IDLE_MS);
    expect(quiet.p.baselineUs).toBeNull();
  });

  it('runs the preparation before measuring when volumes are written, and leaves what it cost out of the baseline; not at all when nobody writes', async () => {
    const a = adaptive();
    a.lag.next = { latenessUs: 50, samples: 250 };
    // What the gauge gathered since its last take: the boot's lateness, once, after the preparation.
    let gathered: LagSample | null = null;
    const take = a.lag.take;
    a.lag.take = () => {
      const s = take();
      const g = gathered;
      gathered = null;
      return g ?? s;
    };
    const order: string[] = [];
    const cal = a.p.calibrate(async () => {
      order.push('prepare');
      await a.clock.sleep(120);
      gathered = { latenessUs: 900, samples: 120 }; // a worker booted: the loop ran late meanwhile
    });
    a.write();
    await cal;
    expect(order).toEqual(['prepare']);
    expect(a.p.baselineUs, 'the boot is not the baseline').toBe(50);

    const quiet = adaptive();
    let prepared = false;
    await quiet.p.calibrate(async () => void (prepared = true));
    expect(prepared, 'nobody writes: nothing to keep out of their way').toBe(false);
  });

  it('without a baseline, the first busy read probes: reads pause while the loop lateness is sampled', async () => {
    const a = adaptive();
    a.lag.next = { latenessUs: 30, samples: 300 };
    const t0 = a.clock.t;
    await a.read();
    expect(a.p.stats.probes).toBe(1);
    expect(a.p.baselineUs).toBe(30);
    expect(a.clock.t - t0).toBeGreaterThanOrEqual(PROBE_SETTLE_MS + PROBE_MS);
    expect(a.lag.running).toBe(true);
    expect(a.p.targetUs()).toBeCloseTo(30 * TARGET_FACTOR + TARGET_SLACK_US);
  });

  it('backs off multiplicatively while the loop runs later than the target, down to the floor, and climbs back additively to the ceiling', async () => {
    const a = adaptive({ min: 8, max: 128 });
    a.lag.next = { latenessUs: 40, samples: 400 };
    await a.read(); // probe: baseline 40 µs
    expect(a.p.rate, 'it starts at a quarter of the ceiling').toBe(32 * MiB);
    await a.readFor(4 * WINDOW_MS); // within target: climbing
    const start = a.p.rate;
    expect(start).toBeGreaterThanOrEqual(8 * MiB + 8 * INCREASE_BYTES_PER_SEC);
    a.lag.next = { latenessUs: 40 * TARGET_FACTOR + TARGET_SLACK_US + 30, samples: 400 };
    while (a.p.stats.slower === 0) await a.read(); // the next decision
    expect(a.p.rate).toBeCloseTo(start * DECREASE);
    await a.readFor(20 * WINDOW_MS);
    expect(a.p.rate).toBe(8 * MiB);
    expect(a.p.stats.slower).toBeGreaterThan(3);
    // Within target: +INCREASE per window up to the ceiling, never past it.
    a.lag.next = { latenessUs: 40, samples: 400 };
    const before = a.p.stats.faster;
    await a.readFor(3 * WINDOW_MS + 600);
    expect(a.p.rate).toBeGreaterThanOrEqual(8 * MiB + INCREASE_BYTES_PER_SEC);
    await a.readFor(40 * WINDOW_MS);
    expect(a.p.rate).toBe(128 * MiB);
    expect(a.p.stats.faster - before).toBeGreaterThan((120 * MiB) / INCREASE_BYTES_PER_SEC - 1);
  });

  it('paces reads at the adapted rate', async () => {
    const a = adaptive({ min: 8, max: 128 });
    a.lag.next = { latenessUs: 1000, samples: 400 };
    await a.read(); // probe: baseline 1000 µs, so nothing is over target later
    a.lag.next = { latenessUs: 5000, samples: 400 };
    await a.readFor(20 * WINDOW_MS); // down to the floor
    expect(a.p.rate).toBe(8 * MiB);
    const t0 = a.clock.t;
    for (let i = 0; i < 5; i++) await a.read();
    // 8 MiB/s: 500 ms per 4 MiB read (the first may still owe part of a share).
    expect(a.clock.t - t0).toBeGreaterThanOrEqual(4 * 500);
    expect(a.clock.t - t0).toBeLessThanOrEqual(5 * 500 + 1);
  });

  it('ignores windows with too few timer firings', async () => {
    const a = adaptive();
    a.lag.next = { latenessUs: 40, samples: 400 };
    await a.read();
    const r = a.p.rate;
    a.lag.next = { latenessUs: 10_000, samples: 10 };
    await a.readFor(5 * WINDOW_MS);
    expect(a.p.rate).toBe(r);
    expect(a.p.stats.slower + a.p.stats.faster).toBe(0);
  });

  it('probes again after REPROBE_MS of busy time; the baseline is the lowest measurement', async () => {
    const a = adaptive();
    a.lag.next = { latenessUs: 40, samples: 400 };
    await a.read();
    a.lag.next = { latenessUs: 90, samples: 400 };
    await a.readFor(REPROBE_MS + 1000); // reads of 500 ms each at the floor
    expect(a.p.stats.probes).toBe(2);
    expect(a.p.baselineUs, 'a noisy higher probe does not raise it').toBe(40);
    a.lag.next = { latenessUs: 25, samples: 400 };
    await a.readFor(REPROBE_MS + 1000); // reads of 500 ms each at the floor
    expect(a.p.stats.probes).toBe(3);
    expect(a.p.baselineUs).toBe(25);
  });

  it('runs the gauge only while busy and not closed; off and quiet pacers never sample or wait', async () => {
    const a = adaptive();
    await a.read();
    expect(a.lag.running).toBe(true);
    a.clock.t += 300; // quiet: no write for longer than quietMs
    await a.p.before(4 * MiB);
    expect(a.lag.running).toBe(false);
    await a.read();
    expect(a.lag.running).toBe(true);
    a.p.close();
    expect(a.lag.running).toBe(false);
    await a.read();
    expect(a.lag.running, 'a closed pacer never restarts the gauge').toBe(false);

    const clock = fakeClock();
    const lag = fakeGauge();
    let writes = 0;
    const off = new BackupPacer({ mode: 'off', activity: () => writes, clock, lag });
    await off.calibrate();
    for (let i = 0; i < 5; i++) {
      writes++;
      await off.before(4 * MiB);
    }
    expect(clock.sleeps).toEqual([]);
    expect(lag.takes).toBe(0);
    expect(off.throttling()).toBe(false);
  });
});

describe('eventLoopLag', () => {
  it('measures how late a 1 ms timer runs: near zero on an idle loop, the block\'s length when the loop is blocked', async () => {
    const g = eventLoopLag();
    expect(g.take()).toEqual({ latenessUs: 0, samples: 0 }); // not started
    g.start();
    g.take();
    await new Promise((r) => setTimeout(r, 200));
    const idle = g.take();
    expect(idle.samples).toBeGreaterThan(50);
    // Block the loop for 5 ms out of every 6: the timer runs ~5 ms late most of the time.
    const end = performance.now() + 300;
    while (performance.now() < end) {
      const until = performance.now() + 5;
      while (performance.now() < until);
      await new Promise((r) => setImmediate(r));
    }
    const blocked = g.take();
    g.stop();
    expect(blocked.latenessUs).toBeGreaterThan(2000);
    expect(blocked.latenessUs).toBeGreaterThan(idle.latenessUs + 1000);
    expect(g.take().samples, 'a stopped gauge samples nothing').toBe(0);
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
      zeroAtBegin: (o, l) => o >= 32 * MiB && l > 0,
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
    expect([s.zeroAtBegin?.(0, 4 * MiB), s.zeroAtBegin?.(32 * MiB, 4 * MiB)], 'holes known at begin pass through').toEqual([false, true]);
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
