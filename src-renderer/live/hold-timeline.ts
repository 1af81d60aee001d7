/**
 * The live hold-queue timeline: per volume, a fixed-capacity ring buffer of samples
 * (time, writes queued so far, writes released so far, held now). Invariants: memory per volume
 * never exceeds `capacity` samples whatever the event rate, samples are in time order, and
 * readers only see the last `windowMs` (default 120 s). Subscribers are told after each record.
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
      const last = ring.lastTime();
      ring.push({ t: last !== null && last > t ? last : t, queued: s.queuedTotal, released: s.releasedTotal, held: s.heldCount });
    }
    this.version++;
    this.listeners.forEach((l) => l());
  }

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
