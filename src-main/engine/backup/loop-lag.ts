/**
 * How late the engine's event loop runs — the throttle's view of what a backup costs the
 * volumes' clients. The thread that answers NBD requests is the event loop; a request that
 * arrives while the loop is busy with a backup's work (or while the thread waits for a CPU the
 * backup's workers hold) waits as long as a due timer does. A 1 ms timer's lateness therefore
 * follows the clients' tail latency: in bench/nbd (QD1 writer, 200 ms windows) the timer's p90
 * lateness and the writer's p99 correlate at 0.89, both jumping together when a backup reads at
 * full rate (`bench/results/nbd-latency-session23.txt`).
 *
 * Sampling costs a 1 ms timer, so a gauge runs only while a throttled backup reads under write
 * load (start()/stop()).
 */

import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

export interface LagSample {
  /** 90th percentile of the timer's lateness in the window, in microseconds (≥ 0). */
  latenessUs: number;
  /** Timer firings in the window. */
  samples: number;
}

export interface LagGauge {
  /** Starts sampling; idempotent. */
  start(): void;
  /** Stops sampling (no timer left behind); idempotent. */
  stop(): void;
  /** The window since the previous take() (or start()); begins the next one. */
  take(): LagSample;
}

/** Timer period of the gauge (monitorEventLoopDelay's resolution, ms). */
const RESOLUTION_MS = 1;

/** A gauge on this thread's event loop (Node's monitorEventLoopDelay). */
export function eventLoopLag(): LagGauge {
  let h: IntervalHistogram | null = null;
  return {
    start() {
      if (h) return;
      h = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
      h.enable();
    },
    stop() {
      h?.disable();
      h = null;
    },
    take() {
      if (!h) return { latenessUs: 0, samples: 0 };
      // The histogram records whole intervals (ns), the period included.
      const s = { latenessUs: Math.max(0, h.percentile(90) / 1000 - RESOLUTION_MS * 1000), samples: h.count };
      h.reset();
      return s;
    },
  };
}
