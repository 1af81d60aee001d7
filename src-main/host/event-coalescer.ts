/**
 * Per-client event forwarding with rate limiting for the chatty event: `holds.changed` is
 * emitted on every held/released write (tens of thousands per second), but a screen or a
 * terminal needs at most ~30 updates per second per volume. Invariants: for each volume the
 * client receives at most one `holds.changed` per interval, and the last state emitted is
 * always delivered (trailing edge), so the client never ends on a stale view. Other events
 * pass through at once, in order.
 */
import type { EventName, EventPayload } from '../../src-shared/contract';

export type EventSink = (event: EventName, payload: unknown) => void;

export interface Coalescer {
  push<N extends EventName>(event: N, payload: EventPayload<N>): void;
  /** Drops pending trailing updates and stops the timers. */
  dispose(): void;
}

/** Per client at most 40 hold-queue updates a second: comfortably above the 30/s a smooth panel needs, even with timer jitter. */
export const HOLDS_MIN_INTERVAL_MS = 25;

export function createCoalescer(sink: EventSink, intervalMs = HOLDS_MIN_INTERVAL_MS): Coalescer {
  const lastSent = new Map<string, number>();
  const pending = new Map<string, unknown>();
  const timers = new Map<string, NodeJS.Timeout>();
  let disposed = false;

  const flush = (volume: string) => {
    timers.delete(volume);
    if (disposed || !pending.has(volume)) return;
    const payload = pending.get(volume);
    pending.delete(volume);
    lastSent.set(volume, Date.now());
    sink('holds.changed', payload);
  };

  return {
    push(event, payload) {
      if (disposed) return;
      if (event !== 'holds.changed') {
        sink(event, payload);
        return;
      }
      const volume = (payload as EventPayload<'holds.changed'>).volume;
      const since = Date.now() - (lastSent.get(volume) ?? 0);
      if (since >= intervalMs && !timers.has(volume)) {
        lastSent.set(volume, Date.now());
        sink(event, payload);
        return;
      }
      pending.set(volume, payload);
      if (!timers.has(volume)) {
        const t = setTimeout(() => flush(volume), Math.max(0, intervalMs - since));
        t.unref?.();
        timers.set(volume, t);
      }
    },
    dispose() {
      disposed = true;
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
      pending.clear();
    },
  };
}
