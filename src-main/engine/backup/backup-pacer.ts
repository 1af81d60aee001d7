/**
 * Backup throttle — "throttle when busy", as Veeam Agent calls it. A backup at full speed keeps
 * both cores of a small machine busy (reading 4 MiB regions, hashing and compressing them in
 * the chunk workers, writing chunk files); the thread that answers NBD clients then waits for
 * a CPU, and a queue-depth-1 writer's p99 latency grows several times over (bench/nbd). With
 * throttle `auto` (the default) a backup paces its reads while volumes are being written, and
 * runs at full speed once no write was acknowledged for `quietMs`. `off` never waits (a backup
 * window with nobody writing, or a user who wants it done now).
 *
 * The pacer is a token bucket: before reading `bytes`, the backup waits until the previous
 * read's share of the rate has passed. It starts busy (it cannot know what the volumes did
 * before it was created) and becomes quiet after `quietMs` without a foreground write.
 *
 * Without a lag gauge the busy rate is fixed (`busyBytesPerSec`). With one (the engine's: how
 * late its event loop runs, see loop-lag.ts) the rate follows what the backup costs the
 * volumes' clients, additive increase / multiplicative decrease between `minBytesPerSec` and
 * `busyBytesPerSec`: every window of WINDOW_MS it compares the loop's lateness with a baseline
 * measured without backup reads — before the backup begins (calibrate(), when volumes are being
 * written), and in a short pause of the reads (a probe) after FIRST_PROBE_MS and then every
 * REPROBE_MS of busy time; the lowest of these — and backs off while the lateness exceeds the
 * baseline by more than TARGET_FACTOR (plus TARGET_SLACK_US, below the gauge's resolution), else
 * speeds up. A machine with spare CPU lets the backup climb to the ceiling; a small one holds it
 * near the rate its clients can bear, or at the floor when the holds themselves cost them more
 * than the target. Held data raises the floor (PRESSURE_LOW, PRESSURE_HIGH).
 *
 * Invariants: `off` never waits; a quiet pacer never waits; while busy, reads of B bytes started
 * within any window of T ms at a constant rate R number at most B·T/R + one read; the rate stays
 * within [minBytesPerSec, busyBytesPerSec], and not below the floor the held data sets; a
 * wait is never longer than one read's share at the current rate or one probe (PROBE_SETTLE_MS +
 * PROBE_MS), so a cancelled backup notices within that; the gauge runs only while the pacer is
 * busy and not closed; while held data fills PRESSURE_HIGH of the journal or more, reads never
 * wait (holding writes longer would stall the volume).
 */

import type { BackupThrottle } from '../../../src-shared/contract';
import { invariant } from '../../../src-shared/errors';
import type { LagGauge } from './loop-lag';
import type { SnapshotSource } from './snapshot-source';

const MiB = 1024 * 1024;
/** Read rate of a throttled backup while volumes are being written: the ceiling of the adaptive rate. */
export const BUSY_BYTES_PER_SEC = 128 * MiB;
/** The adaptive rate's floor: a backup under constant write load still ends (about 1 GiB a minute). */
export const MIN_BUSY_BYTES_PER_SEC = 16 * MiB;
/** No foreground write for this long: the backup runs at full speed. */
export const QUIET_MS = 250;

/** Adaptive rate: one decision per window (the backup's pipeline answers a rate change within ~one). */
export const WINDOW_MS = 400;
/** A window with fewer timer firings than this says nothing (the gauge was stopped most of it). */
const MIN_SAMPLES = 100;
/** Lateness allowed over the baseline: factor, plus a slack below the timer's own jitter. */
export const TARGET_FACTOR = 1.1;
export const TARGET_SLACK_US = 5;
/** Rate change per window: up by this much when within target, times DECREASE when over. */
export const INCREASE_BYTES_PER_SEC = 4 * MiB;
export const DECREASE = 0.5;
/**
 * The first busy rate with a gauge: a quarter of the ceiling, then AIMD (starting at the floor
 * instead measured no better: bench/results/nbd-latency-session23.txt §5).
 */
const START_FRACTION = 0.25;
/** Baseline before the backup begins: sampled this long, given up after CALIBRATE_IDLE_MS without a write. */
export const CALIBRATE_MS = 300;
export const CALIBRATE_IDLE_MS = 30;
/** A probe: reads pause, the pipeline settles, then the baseline is sampled. */
export const PROBE_SETTLE_MS = 150;
export const PROBE_MS = 300;
/**
 * Held writes stay in the volume's journal until the backup copies their blocks, and a journal
 * full of them stalls every write to the volume (a random writer on a large volume holds data at
 * its own write rate while most blocks are still to copy; a slower backup holds it longer).
 * Past PRESSURE_LOW of held data against the journal's capacity the rate's floor rises with
 * it, reaching the ceiling at PRESSURE_HIGH; from there on reads do not wait at all. (The bench
 * volume, 512 MiB under a 4 KiB random writer, peaks near 0.25 at the floor rate.)
 */
export const PRESSURE_LOW = 0.4;
export const PRESSURE_HIGH = 0.8;
/** A new probe after this much busy time (the foreground load changes). */
export const REPROBE_MS = 10_000;
/**
 * After a calibration, the first probe comes sooner: the moments before a backup are often
 * not quiet (a program just started writing), and the baseline is the lowest measurement.
 */
export const FIRST_PROBE_MS = 3_000;

export interface PacerClock {
  /** Milliseconds, monotonic. */
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const realPacerClock: PacerClock = {
  now: () => performance.now(),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};

export interface BackupPacerOptions {
  mode: BackupThrottle;
  /** A counter that grows with every foreground write (the engine: writes acknowledged by all volumes). */
  activity: () => number;
  clock?: PacerClock;
  /** The busy rate (fixed without `lag`, the ceiling with it). */
  busyBytesPerSec?: number;
  /** The adaptive rate's floor (with `lag`). */
  minBytesPerSec?: number;
  quietMs?: number;
  /** The engine's event-loop lateness: makes the busy rate adaptive. */
  lag?: LagGauge;
  /**
   * The backed-up volume's held data against its journal's capacity (0–1): past PRESSURE_LOW
   * the rate's floor rises with it, past PRESSURE_HIGH the backup reads at full speed,
   * whatever the loop's lateness.
   */
  pressure?: () => number;
  /** The controller's constants (defaults TARGET_FACTOR, TARGET_SLACK_US, INCREASE_BYTES_PER_SEC, DECREASE), for tuning runs. */
  targetFactor?: number;
  targetSlackUs?: number;
  increaseBytesPerSec?: number;
  decrease?: number;
  /**
   * Told when the busy state the backup reads under changes (checked before each read; first
   * call true, as a pacer starts busy). Never called with mode `off`.
   */
  onBusyChange?: (busy: boolean) => void;
}

export class BackupPacer {
  readonly mode: BackupThrottle;
  private readonly clock: PacerClock;
  private readonly maxRate: number;
  private readonly minRate: number;
  private readonly quietMs: number;
  private readonly lag: LagGauge | null;
  /** The current busy rate, bytes per second. */
  private _rate: number;
  private lastCount: number;
  private lastActiveAt: number;
  private nextAt: number;
  /** The busy state last reported to onBusyChange. */
  private reportedBusy = false;
  /** The gauge is running (busy, not closed). */
  private sampling = false;
  private windowStart = 0;
  private busySince = 0;
  /** Loop lateness without backup reads (µs); null until measured. */
  private _baselineUs: number | null = null;
  /** Busy time (ms) at which the next probe is due. */
  private probeDueBusyMs = 0;
  /** Busy time accumulated before the current busy spell (ms). */
  private busyMsBefore = 0;
  private closed = false;
  /** Total time the backup waited for the pacer (ms). */
  waitedMs = 0;
  /** Adaptive decisions: windows over target (backed off) and within it (sped up); probes taken. */
  readonly stats = { slower: 0, faster: 0, probes: 0, calibrated: false, pressured: 0 };
  /** The last read went at full speed because held data filled PRESSURE_HIGH of the journal. */
  private pressured = false;
  /** The floor as the held data last raised it (bytes per second). */
  private floorNow = 0;

  constructor(private readonly opts: BackupPacerOptions) {
    this.mode = opts.mode;
    this.clock = opts.clock ?? realPacerClock;
    this.maxRate = opts.busyBytesPerSec ?? BUSY_BYTES_PER_SEC;
    this.minRate = Math.min(opts.minBytesPerSec ?? MIN_BUSY_BYTES_PER_SEC, this.maxRate);
    this.quietMs = opts.quietMs ?? QUIET_MS;
    this.lag = opts.mode === 'auto' ? (opts.lag ?? null) : null;
    this._rate = this.lag ? Math.max(this.minRate, this.maxRate * START_FRACTION) : this.maxRate;
    this.lastCount = opts.activity();
    const now = this.clock.now();
    this.lastActiveAt = now; // unknown past: busy until quietMs pass without a write
    this.nextAt = now;
  }

  /** The busy rate now (bytes per second): the adaptive rate, or the floor the held data raised. */
  get rate(): number {
    return Math.max(this._rate, this.floorNow);
  }

  /** Is the backup reading at the busy rate (throttle on, volumes written at the last read, not closed)? */
  throttling(): boolean {
    return this.mode !== 'off' && this.reportedBusy && !this.pressured && !this.closed;
  }

  /** The loop lateness measured without backup reads (µs), or null. */
  get baselineUs(): number | null {
    return this._baselineUs;
  }

  /** Are volumes being written (a write acknowledged within quietMs)? */
  busy(): boolean {
    const now = this.clock.now();
    const n = this.opts.activity();
    if (n !== this.lastCount) {
      this.lastCount = n;
      this.lastActiveAt = now;
    }
    return now - this.lastActiveAt < this.quietMs;
  }

  /**
   * Measures the baseline before the backup begins, if volumes are being written (call it
   * before the backup's begin: no reads, no holds yet). Gives up after CALIBRATE_IDLE_MS when
   * nobody writes — a quiet start needs no baseline, a later busy spell probes for one.
   * `prepare` runs first when volumes are being written (and its cost is not measured): work
   * the backup would otherwise do while it holds their writes.
   */
  async calibrate(prepare?: () => Promise<void>): Promise<void> {
    if (!this.lag || this.closed) return;
    const c0 = this.opts.activity();
    this.lag.start();
    this.lag.take();
    await this.clock.sleep(CALIBRATE_IDLE_MS);
    if (this.opts.activity() !== c0) {
      if (prepare) {
        await prepare();
        this.lag.take(); // what the preparation cost is not the baseline
      }
      await this.clock.sleep(CALIBRATE_MS - CALIBRATE_IDLE_MS);
      const s = this.lag.take();
      if (s.samples >= MIN_SAMPLES / 2) {
        this._baselineUs = s.latenessUs;
        this.stats.calibrated = true;
        this.probeDueBusyMs = FIRST_PROBE_MS;
      }
    }
    if (!this.sampling) this.lag.stop();
  }

  /** Waits, when throttled, until the backup may read `bytes` more. */
  async before(bytes: number): Promise<void> {
    if (this.mode === 'off') return;
    let now = this.clock.now();
    const busy = this.busy();
    if (busy !== this.reportedBusy) {
      this.reportedBusy = busy;
      this.opts.onBusyChange?.(busy);
    }
    if (!busy) {
      this.stopSampling(now);
      this.nextAt = now;
      return;
    }
    const fill = this.opts.pressure?.() ?? 0;
    if (fill >= PRESSURE_HIGH) {
      // Held writes are the clients' bigger cost now: copy their blocks as fast as possible.
      if (!this.pressured) this.stats.pressured++;
      this.pressured = true;
      this.nextAt = now;
      return;
    }
    this.pressured = false;
    // Between PRESSURE_LOW and PRESSURE_HIGH the floor rises linearly to the ceiling.
    const f = Math.max(0, (fill - PRESSURE_LOW) / (PRESSURE_HIGH - PRESSURE_LOW));
    this.floorNow = this.minRate + (this.maxRate - this.minRate) * f;
    if (this.lag && !this.closed) {
      await this.adapt(now);
      now = this.clock.now();
    }
    const start = Math.max(this.nextAt, now);
    this.nextAt = start + (bytes / this.rate) * 1000;
    const wait = start - now;
    if (wait > 0) {
      this.waitedMs += wait;
      await this.clock.sleep(wait);
    }
  }

  /** Stops the gauge for good (the backup ended). */
  close(): void {
    this.closed = true;
    this.stopSampling(this.clock.now());
    this.lag?.stop();
  }

  private stopSampling(now: number): void {
    if (!this.sampling) return;
    this.busyMsBefore = this.busyMs(now);
    this.sampling = false;
    this.lag!.stop();
  }

  /** Busy time so far (ms): earlier busy spells plus the current one (while sampling). */
  private busyMs(now: number): number {
    return this.busyMsBefore + (this.sampling ? now - this.busySince : 0);
  }

  /** One AIMD step per window; a probe first when the baseline is missing or due. */
  private async adapt(now: number): Promise<void> {
    const lag = this.lag!;
    if (!this.sampling) {
      this.sampling = true;
      this.busySince = now;
      lag.start();
      lag.take();
      this.windowStart = now;
    }
    if (this._baselineUs === null || this.busyMs(now) >= this.probeDueBusyMs) {
      await this.probe();
      return;
    }
    if (now - this.windowStart < WINDOW_MS) return;
    const s = lag.take();
    this.windowStart = now;
    if (s.samples < MIN_SAMPLES) return;
    if (s.latenessUs > this.targetUs()) {
      this._rate = Math.max(this.minRate, this._rate * (this.opts.decrease ?? DECREASE));
      this.stats.slower++;
    } else {
      this._rate = Math.min(this.maxRate, this._rate + (this.opts.increaseBytesPerSec ?? INCREASE_BYTES_PER_SEC));
      this.stats.faster++;
    }
    invariant(this._rate >= this.minRate && this._rate <= this.maxRate, 'the busy rate stays within its bounds');
  }

  /** The lateness a window may show and still speed up (µs). */
  targetUs(): number {
    return (this._baselineUs ?? 0) * (this.opts.targetFactor ?? TARGET_FACTOR) + (this.opts.targetSlackUs ?? TARGET_SLACK_US);
  }

  /** Pauses the reads: the pipeline settles, then the loop's lateness without reads is the baseline. */
  private async probe(): Promise<void> {
    const lag = this.lag!;
    const t0 = this.clock.now();
    await this.clock.sleep(PROBE_SETTLE_MS);
    lag.take();
    await this.clock.sleep(PROBE_MS);
    const s = lag.take();
    // The lowest measurement of this backup: a noisy high baseline would let the backup climb
    // to the ceiling while clients suffer, a low one only keeps it slower. (A starved loop
    // fires the timer rarely: its lateness is still the best baseline there is.)
    if (s.samples > 0 || this._baselineUs === null) this._baselineUs = Math.min(this._baselineUs ?? Infinity, s.latenessUs);
    this.stats.probes++;
    const now = this.clock.now();
    this.waitedMs += now - t0;
    this.windowStart = now;
    this.nextAt = Math.max(this.nextAt, now);
    this.probeDueBusyMs = this.busyMs(now) + REPROBE_MS;
  }
}

/**
 * The source as the vault's writer sees it under a pacer: read()/readInto() wait for the pacer
 * first; everything else is the session's own. (Ranges the chunk workers read themselves,
 * through locate(), are not paced: incrementals read only changed blocks.)
 */
export function pacedSource(source: SnapshotSource, pacer: BackupPacer): SnapshotSource {
  if (pacer.mode === 'off') return source;
  const paced: SnapshotSource = {
    get backupId() {
      return source.backupId;
    },
    get volume() {
      return source.volume;
    },
    get volumeId() {
      return source.volumeId;
    },
    get size() {
      return source.size;
    },
    get policy() {
      return source.policy;
    },
    get changed() {
      return source.changed;
    },
    async read(offset, length) {
      await pacer.before(length);
      return source.read(offset, length);
    },
    rangeCopied: (offset, length) => source.rangeCopied(offset, length),
    urgentRanges: () => source.urgentRanges(),
    end: (snapshotId) => source.end(snapshotId),
    abort: (reason) => source.abort(reason),
  };
  if (source.readInto) {
    const readInto = source.readInto.bind(source);
    paced.readInto = async (offset, target) => {
      await pacer.before(target.length);
      return readInto(offset, target);
    };
  }
  if (source.locate) {
    paced.locate = source.locate.bind(source);
    paced.pace = (bytes) => pacer.before(bytes); // located bytes are read by the chunk workers, not through readInto
  }
  if (source.confirmLocated) paced.confirmLocated = source.confirmLocated.bind(source);
  if (source.zeroAtBegin) paced.zeroAtBegin = source.zeroAtBegin.bind(source); // nothing read: nothing to pace
  return paced;
}
