/**
 * Coalesces a burst of keyed updates into one flush per animation frame: the latest value per
 * key wins, so 50,000 events/s become at most ~60 cache writes/s and memory stays bounded by the
 * number of keys. Falls back to a 16 ms timer where requestAnimationFrame is missing (tests) —
 * and when the page is hidden rAF pauses, which is fine: only the latest value per key is kept.
 */
export interface FrameBatcher<K, V> {
  push(key: K, value: V): void;
  /** Drops pending values and stops the scheduled flush. */
  dispose(): void;
}

type Schedule = (cb: () => void) => () => void;

export const nextFrame: Schedule = (cb) => {
  if (typeof requestAnimationFrame === 'function') {
    const id = requestAnimationFrame(() => cb());
    return () => cancelAnimationFrame(id);
  }
  const id = setTimeout(cb, 16);
  return () => clearTimeout(id);
};

export function createFrameBatcher<K, V>(flush: (batch: Map<K, V>) => void, schedule: Schedule = nextFrame): FrameBatcher<K, V> {
  let pending = new Map<K, V>();
  let cancel: (() => void) | null = null;
  const run = () => {
    cancel = null;
    const batch = pending;
    pending = new Map();
    if (batch.size) flush(batch);
  };
  return {
    push(key, value) {
      pending.set(key, value);
      if (!cancel) cancel = schedule(run);
    },
    dispose() {
      cancel?.();
      cancel = null;
      pending = new Map();
    },
  };
}
