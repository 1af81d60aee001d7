/**
 * Per-client event forwarding with rate limiting for the chatty event: `holds.changed`. The
 * engine already paces it (≤ 40/s per volume, src-main/engine/engine.ts); this per-client stage
 * is the guard for whatever else feeds a client (a ControlClient relaying another engine, bursts
 * after a stalled event loop). Invariants: for each volume the client receives `holds.changed`
 * at most once per interval, on a fixed grid (src-main/engine/event-pacer.ts) so timer lag never
 * accumulates, and the last state emitted is always delivered (trailing edge), so the client
 * never ends on a stale view. Other events pass through at once, in order.
 */
import type { EventName, EventPayload } from '../../src-shared/contract';
import { EventPacer, type Timers } from '../engine/event-pacer';

export type EventSink = (event: EventName, payload: unknown) => void;

export interface Coalescer {
  push<N extends EventName>(event: N, payload: EventPayload<N>): void;
  /** Drops pending trailing updates and stops the timers. */
  dispose(): void;
}

/**
 * Per client at most 50 hold-queue updates a second per volume. Shorter than the engine's 25 ms
 * sampling period on purpose: the engine's samples (40/s) pass straight through, each in its own
 * slot; a sample that arrives early because the previous one was late waits a few ms and is never
 * replaced. (At 25 ms here, both stages at 40/s beat against each other and every late sample
 * cost one update.)
 */
export const HOLDS_MIN_INTERVAL_MS = 20;

export function createCoalescer(sink: EventSink, intervalMs = HOLDS_MIN_INTERVAL_MS, timers?: Timers): Coalescer {
  const pending = new Map<string, unknown>();
  const pacer = new EventPacer<string>(
    intervalMs,
    (volume) => {
      if (!pending.has(volume)) return;
      const payload = pending.get(volume);
      pending.delete(volume);
      sink('holds.changed', payload);
    },
    { fireWhenDue: true, timers },
  );

  let disposed = false;
  return {
    push(event, payload) {
      if (disposed) return;
      if (event !== 'holds.changed') {
        sink(event, payload);
        return;
      }
      const volume = (payload as EventPayload<'holds.changed'>).volume;
      pending.set(volume, payload);
      pacer.changed(volume);
    },
    dispose() {
      disposed = true;
      pacer.dispose();
      pending.clear();
    },
  };
}
