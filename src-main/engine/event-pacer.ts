/**
 * Paces a chatty per-key event — hold-queue state changes on every held or released write, tens
 * of thousands a second — to at most one firing per key per `intervalMs`, on a fixed grid. The
 * engine paces its `holds.changed` samples with it and every host paces each client's copy.
 *
 * Why a grid: a timer restarted "interval after the first change since the last firing" adds the
 * event loop's lag to every period. Under write load timers run 5–20 ms late, so a 20 ms sampler
 * delivered 25–40 ms periods, and the host's per-client stage, with its own restarted 25 ms timer,
 * added its lag again and dropped samples that fell into its window: the hold panel got ~24
 * updates/s instead of 40. Here each firing is due at `previous due + interval`, so a late timer
 * shortens the next wait instead of pushing the series back: the rate stays 1/interval while the
 * loop's lag stays below the interval.
 *
 * Invariants: at most one timer per key, and none while a key is unchanged; the firing reads the
 * latest state (the callback samples or takes the newest payload then), never a stale copy; two
 * firings of a key are never due closer than `intervalMs`; after a stall longer than the interval
 * a key fires once and its grid restarts from now (no catch-up burst).
 */

/** Time and timers, so tests drive the pacer with fake (and deliberately late) timers. */
export interface Timers {
  now(): number;
  setTimeout(cb: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  now: () => performance.now(),
  setTimeout: (cb, ms) => {
    const t = setTimeout(cb, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface EventPacerOptions {
  /**
   * Fire synchronously inside `changed()` when the key's slot is already due. Hosts forwarding
   * an event use it; the engine does not — `changed()` runs on the write path, and sampling
   * there would put the state snapshot (and every listener) on each write.
   */
  fireWhenDue?: boolean;
  timers?: Timers;
}

export class EventPacer<K> {
  private readonly lastDue = new Map<K, number>();
  private readonly scheduled = new Map<K, unknown>();
  private readonly timers: Timers;
  private readonly fireWhenDue: boolean;
  private disposed = false;

  constructor(
    readonly intervalMs: number,
    private readonly fire: (key: K) => void,
    opts: EventPacerOptions = {},
  ) {
    this.timers = opts.timers ?? realTimers;
    this.fireWhenDue = opts.fireWhenDue ?? false;
  }

  /** The key's state changed: it fires at its next slot (at once if due and `fireWhenDue`). */
  changed(key: K): void {
    if (this.disposed || this.scheduled.has(key)) return;
    const now = this.timers.now();
    const prev = this.lastDue.get(key);
    const due = prev === undefined ? now : Math.max(now, prev + this.intervalMs);
    this.lastDue.set(key, due);
    if (due === now && this.fireWhenDue) {
      this.fire(key);
      return;
    }
    this.scheduled.set(
      key,
      this.timers.setTimeout(() => {
        this.scheduled.delete(key);
        if (!this.disposed) this.fire(key);
      }, due - now),
    );
  }

  /** Whether a firing of this key is scheduled. */
  isScheduled(key: K): boolean {
    return this.scheduled.has(key);
  }

  /** Cancels the key's pending firing and forgets its grid (a deleted volume). */
  forget(key: K): void {
    const h = this.scheduled.get(key);
    if (h !== undefined) this.timers.clearTimeout(h);
    this.scheduled.delete(key);
    this.lastDue.delete(key);
  }

  dispose(): void {
    this.disposed = true;
    for (const h of this.scheduled.values()) this.timers.clearTimeout(h);
    this.scheduled.clear();
  }
}
