/**
 * Backup throttle — "throttle when busy", as Veeam Agent calls it. A backup at full speed keeps
 * both cores of a small machine busy (reading 4 MiB regions, hashing and compressing them in
 * the chunk workers, writing chunk files); the thread that answers NBD clients then waits for
 * a CPU, and a queue-depth-1 writer's p99 latency grows several times over (bench/nbd). With
 * throttle `auto` (the default) a backup reads its source at most `busyBytesPerSec` while
 * volumes are being written, and at full speed once no write was acknowledged for `quietMs`.
 * `off` never waits (a backup window with nobody writing, or a user who wants it done now).
 *
 * The pacer is a token bucket at one rate: before reading `bytes`, the backup waits until the
 * previous read's share of the rate has passed. It starts busy (it cannot know what the volumes
 * did before it was created) and becomes quiet after `quietMs` without a foreground write.
 *
 * Invariants: `off` never waits; an idle pacer never waits; while busy, reads of B bytes
 * started within any window of T ms number at most B·T/rate + one read; a wait is never longer
 * than one read's share (bytes / rate), so a cancelled backup notices within that.
 */

import type { BackupThrottle } from '../../../src-shared/contract';
import type { SnapshotSource } from './snapshot-source';

/** Read rate of a throttled backup while volumes are being written. */
export const BUSY_BYTES_PER_SEC = 128 * 1024 * 1024;
/** No foreground write for this long: the backup runs at full speed. */
export const QUIET_MS = 250;

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
  busyBytesPerSec?: number;
  quietMs?: number;
  /**
   * Told when the busy state the backup reads under changes (checked before each read; first
   * call true, as a pacer starts busy). Never called with mode `off`.
   */
  onBusyChange?: (busy: boolean) => void;
}

export class BackupPacer {
  readonly mode: BackupThrottle;
  private readonly clock: PacerClock;
  private readonly rate: number;
  private readonly quietMs: number;
  private lastCount: number;
  private lastActiveAt: number;
  private nextAt: number;
  /** The busy state last reported to onBusyChange. */
  private reportedBusy = false;
  /** Total time the backup waited for the pacer (ms). */
  waitedMs = 0;

  constructor(private readonly opts: BackupPacerOptions) {
    this.mode = opts.mode;
    this.clock = opts.clock ?? realPacerClock;
    this.rate = opts.busyBytesPerSec ?? BUSY_BYTES_PER_SEC;
    this.quietMs = opts.quietMs ?? QUIET_MS;
    this.lastCount = opts.activity();
    const now = this.clock.now();
    this.lastActiveAt = now; // unknown past: busy until quietMs pass without a write
    this.nextAt = now;
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

  /** Waits, when throttled, until the backup may read `bytes` more. */
  async before(bytes: number): Promise<void> {
    if (this.mode === 'off') return;
    const now = this.clock.now();
    const busy = this.busy();
    if (busy !== this.reportedBusy) {
      this.reportedBusy = busy;
      this.opts.onBusyChange?.(busy);
    }
    if (!busy) {
      this.nextAt = now;
      return;
    }
    const start = Math.max(this.nextAt, now);
    this.nextAt = start + (bytes / this.rate) * 1000;
    const wait = start - now;
    if (wait > 0) {
      this.waitedMs += wait;
      await this.clock.sleep(wait);
    }
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
  return paced;
}
