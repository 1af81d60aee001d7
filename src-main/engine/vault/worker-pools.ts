/**
 * Long-lived chunk worker pools, one per vault (the workers carry the vault's keys). Starting
 * a pool costs threads, module loading and its shared chunk slots — tens of milliseconds that
 * a small incremental backup would otherwise pay every time, and allocations the engine's
 * thread would rather not make while it serves NBD writes. A pool is leased for one backup or
 * restore and closed after it has been idle for a while.
 *
 * Invariants: a leased pool is never closed (the idle timer runs only at zero leases); every
 * lease is returned once; close() ends every pool and no lease is granted afterwards.
 */
import { HoldfastError, invariant } from '../../../src-shared/errors';
import { ChunkWorkers } from './chunk-workers';
import type { ThreadPlacement } from './cpu-split';
import type { Vault } from './vault';

interface Entry {
  workers: ChunkWorkers;
  leases: number;
  idle: ReturnType<typeof setTimeout> | null;
}

export interface WorkerLease {
  readonly workers: ChunkWorkers;
  release(): void;
}

export class ChunkWorkerPools {
  private readonly pools = new Map<Vault, Entry>();
  private closed = false;

  constructor(
    private readonly idleMs = 30_000,
    /** Told every worker thread's id (the engine's CPU split). */
    private readonly placement: ThreadPlacement | null = null,
  ) {}

  lease(vault: Vault): WorkerLease {
    if (this.closed) throw new HoldfastError('CANCELLED', 'Holdfast is shutting down.');
    let e = this.pools.get(vault);
    if (e && e.workers.size === 0 && e.leases === 0) {
      // Every worker died (each failure was reported to its task): start over.
      this.pools.delete(vault);
      void e.workers.close();
      e = undefined;
    }
    if (!e) {
      e = { workers: new ChunkWorkers(vault.keys, undefined, this.placement), leases: 0, idle: null };
      this.pools.set(vault, e);
    }
    const entry = e;
    if (entry.idle) clearTimeout(entry.idle);
    entry.idle = null;
    entry.leases++;
    let returned = false;
    return {
      workers: entry.workers,
      release: () => {
        invariant(!returned, 'a worker lease is returned once');
        returned = true;
        entry.leases--;
        if (entry.leases === 0 && !this.closed) {
          entry.idle = setTimeout(() => this.retire(vault, entry), this.idleMs);
          entry.idle.unref?.();
        }
      },
    };
  }

  private retire(vault: Vault, e: Entry): void {
    if (e.leases > 0 || this.pools.get(vault) !== e) return;
    this.pools.delete(vault);
    void e.workers.close();
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.pools.values()];
    this.pools.clear();
    for (const e of all) if (e.idle) clearTimeout(e.idle);
    await Promise.all(all.map((e) => e.workers.close()));
  }
}
