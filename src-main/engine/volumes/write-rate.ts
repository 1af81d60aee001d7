/**
 * The live write rate per volume (DESIGN.md §6, Volumes screen). Once per interval (1 s) the
 * sampler reads each live volume's acknowledged-write counters and publishes writes/s and
 * bytes/s as one `volumes.stats` event.
 *
 * Invariants: the write path only increments two numbers (LiveVolume.writesAcked/bytesAcked) —
 * no timer, no allocation per write; a volume's first sample is its baseline (rate 0), so a
 * volume opened mid-way never shows its history as a burst; an event goes out only while some
 * volume writes, plus one all-idle event after the last write, so an idle engine sends nothing.
 */
import type { EventPayload } from '../../../src-shared/contract';

export const WRITE_RATE_INTERVAL_MS = 1000;

export interface RateSource {
  readonly name: string;
  readonly writesAcked: number;
  readonly bytesAcked: number;
}

type Stats = EventPayload<'volumes.stats'>;

export class WriteRateSampler {
  private last = new Map<RateSource, { writes: number; bytes: number }>();
  private lastAt: number;
  private wasActive = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly volumes: () => Iterable<RateSource>,
    private readonly emit: (stats: Stats) => void,
    private readonly now: () => number,
    readonly intervalMs = WRITE_RATE_INTERVAL_MS,
  ) {
    this.lastAt = now();
  }

  start(): void {
    if (this.timer) return;
    this.sample(); // baseline
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref?.();
  }

  /** Reads every volume's counters; emits when some volume wrote since the last sample, or just stopped. */
  sample(): void {
    const at = this.now();
    const seconds = (at - this.lastAt) / 1000;
    this.lastAt = at;
    const next = new Map<RateSource, { writes: number; bytes: number }>();
    const rates: Stats['volumes'] = [];
    let active = false;
    for (const v of this.volumes()) {
      const now = { writes: v.writesAcked, bytes: v.bytesAcked };
      const prev = this.last.get(v) ?? now;
      next.set(v, now);
      const writesPerSec = seconds > 0 ? round1((now.writes - prev.writes) / seconds) : 0;
      const bytesPerSec = seconds > 0 ? Math.round((now.bytes - prev.bytes) / seconds) : 0;
      if (writesPerSec > 0 || bytesPerSec > 0) active = true;
      rates.push({ volume: v.name, writesPerSec, bytesPerSec });
    }
    this.last = next;
    if (active || this.wasActive) this.emit({ intervalMs: Math.round(seconds * 1000), volumes: rates });
    this.wasActive = active;
  }

  dispose(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

const round1 = (x: number) => Math.round(x * 10) / 10;
