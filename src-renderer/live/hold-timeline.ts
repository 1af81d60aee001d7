/**
 * The live hold-queue timeline: per volume, a fixed-capacity ring buffer of samples
 * (time, writes queued so far, writes released so far, held now). Invariants: memory per volume
 * never exceeds `capacity` samples whatever the event rate, samples are in time order, and
 * readers only see the last `windowMs` (default 120 s). Subscribers are told after each record.
 *
 * One series per backup: the engine restarts queuedTotal/releasedTotal at 0 when a backup begins
 * on a volume, so a ring only ever holds the samples of the latest backup (or of the idle time
 * since the engine started). A new backup — seen as a totals reset or a rising backupFlag, since
 * coalescing may hide one of the two — starts a new series; nothing ever joins two backups.
 */
import type { HoldState } from '../../src-shared/contract';

export interface TimelineSample {
  t: number;
  queued: number;
  released: number;
  held: number;
}

class Ring {
  private readonly t: Float64Array;
  private readonly q: Float64Array;
  private readonly r: Float64Array;
  private readonly h: Float64Array;
  private start = 0;
  size = 0;
  constructor(readonly capacity: number) {
    this.t = new Float64Array(capacity);
    this.q = new Float64Array(capacity);
    this.r = new Float64Array(capacity);
    this.h = new Float64Array(capacity);
  }
  push(s: TimelineSample): void {
    const i = (this.start + this.size) % this.capacity;
    this.t[i] = s.t;
    this.q[i] = s.queued;
    this.r[i] = s.released;
    this.h[i] = s.held;
    if (this.size < this.capacity) this.size++;
    else this.start = (this.start + 1) % this.capacity;
  }
  clear(): void {
    this.start = 0;
    this.size = 0;
  }
  last(): TimelineSample | null {
    if (!this.size) return null;
    const i = (this.start + this.size - 1) % this.capacity;
    return { t: this.t[i]!, queued: this.q[i]!, released: this.r[i]!, held: this.h[i]! };
  }
  lastTime(): number | null {
    return this.size ? this.t[(this.start + this.size - 1) % this.capacity]! : null;
  }
  since(t0: number): TimelineSample[] {
    const out: TimelineSample[] = [];
    for (let k = 0; k < this.size; k++) {
      const i = (this.start + k) % this.capacity;
      if (this.t[i]! >= t0) out.push({ t: this.t[i]!, queued: this.q[i]!, released: this.r[i]!, held: this.h[i]! });
    }
    return out;
  }
}

export class HoldTimeline {
  private readonly rings = new Map<string, Ring>();
  /** Per volume: the backupFlag of the last recorded state and how many series have begun. */
  private readonly flags = new Map<string, boolean>();
  private readonly seriesCounts = new Map<string, number>();
  private readonly listeners = new Set<() => void>();
  private version = 0;

  constructor(
    readonly windowMs = 120_000,
    readonly capacity = 4096,
    private readonly now: () => number = () => Date.now(),
  ) {}

  record(states: Iterable<HoldState>): void {
    const t = this.now();
    for (const s of states) {
      let ring = this.rings.get(s.volume);
      if (!ring) this.rings.set(s.volume, (ring = new Ring(this.capacity)));
      const prev = ring.last();
      const rising = s.backupFlag && this.flags.get(s.volume) === false;
      if (!prev || rising || s.queuedTotal < prev.queued || s.releasedTotal < prev.released) {
        if (prev) ring.clear();
        this.seriesCounts.set(s.volume, (this.seriesCounts.get(s.volume) ?? 0) + 1);
      }
      this.flags.set(s.volume, s.backupFlag);
      const lastT = ring.lastTime();
      ring.push({ t: lastT !== null && lastT > t ? lastT : t, queued: s.queuedTotal, released: s.releasedTotal, held: s.heldCount });
    }
    this.version++;
    this.listeners.forEach((l) => l());
  }

  /** How many series (backups, plus the first idle stretch) this volume's timeline has begun. */
  seriesCount(volume: string): number {
    return this.seriesCounts.get(volume) ?? 0;
  }

  /** The current series' samples within the window, oldest first. */
  samples(volume: string): TimelineSample[] {
    return this.rings.get(volume)?.since(this.now() - this.windowMs) ?? [];
  }

  sampleCount(volume: string): number {
    return this.rings.get(volume)?.size ?? 0;
  }

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getVersion = (): number => this.version;
}
