/**
 * What the engine offers an NBD server: every live volume by its name (read-write, through the
 * journaled write path — `engine.exports`) and every snapshot of the default vault as the
 * read-only export `<volume>@<snapshotId>` (DESIGN.md §4 "a snapshot can be exported read-only
 * over NBD for browsing").
 *
 * ExportRegistry.list()/open() are synchronous (the handshake calls them inline), but a vault
 * is read asynchronously. So the registry keeps a catalogue of the default vault's snapshots
 * (id, volume, size), re-read at start and on every `snapshots.changed` event, and a snapshot
 * lease opens its SnapshotExport lazily: size() comes from the catalogue, the first read waits
 * for the snapshot's indexes. One SnapshotExport per snapshot is shared by all its leases and
 * closed with the last one (until then it is a registered vault reader: gc keeps its chunks).
 *
 * Invariants: a snapshot name is listed/openable iff the last successful catalogue read saw its
 * manifest (a missing vault reads as empty; other read errors keep the catalogue)
 * (names are unambiguous: neither volume names nor snapshot ids may contain '@'); every write
 * request to a snapshot fails with READ_ONLY; when a snapshot disappears from the vault (prune)
 * its leases are revoked, so the server drops those clients.
 */
import path from 'node:path';
import type { Snapshot } from '../../src-shared/contract';
import { HoldfastError } from '../../src-shared/errors';
import type { AllocationExtent, BlockExport, ByteRange, ExportLease, ExportRegistry } from './block-export';
import type { Engine } from './engine';
import type { Disposable } from './events';
import { VAULT_CONFIG_FILE } from './vault/format';
import type { SnapshotExport } from './vault/snapshot-export';

/** What the registry needs: the engine's volume registry and its vault side. */
export interface ExportSources {
  /** Live volumes by name (the engine's lease-tracking registry). */
  readonly volumes: ExportRegistry;
  readonly events: Engine['events'];
  readonly backups: Pick<Engine['backups'], 'snapshotExport'>;
  readonly api: Pick<Engine['api'], 'snapshot.list'>;
  readonly env: Engine['env'];
  readonly defaultVault: string;
}

export interface EngineExportRegistry extends ExportRegistry, Disposable {
  /** Re-reads the default vault's snapshot list; resolves once list()/open() reflect it. */
  refresh(): Promise<void>;
}

export const SNAPSHOT_SEPARATOR = '@';

export function snapshotExportName(volume: string, snapshotId: string): string {
  return `${volume}${SNAPSHOT_SEPARATOR}${snapshotId}`;
}

type SnapshotEntry = Pick<Snapshot, 'id' | 'volume' | 'size' | 'createdAt'>;

/** The shared, lazily opened reader of one snapshot plus the leases that use it. */
interface OpenSnapshot {
  inner: Promise<SnapshotExport> | null;
  leases: Set<SnapshotLease>;
}

class SnapshotLease implements ExportLease {
  readonly export: BlockExport;
  private readonly revokers: Array<() => void> = [];
  private closed = false;
  constructor(
    entry: SnapshotEntry,
    inner: () => Promise<BlockExport>,
    private readonly onClose: (l: SnapshotLease) => void,
  ) {
    this.export = new LazySnapshotExport(entry, inner);
  }
  onRevoke(cb: () => void): void {
    this.revokers.push(cb);
  }
  revoke(): void {
    for (const cb of this.revokers.splice(0)) cb();
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose(this);
  }
}

/** A read-only snapshot export whose size is known up front and whose reader opens on first use. */
class LazySnapshotExport implements BlockExport {
  readonly readOnly = true;
  readonly sectorSize = 512;
  readonly preferredBlockSize = 4096;
  readonly name: string;
  readonly description: string;
  private readonly bytes: number;

  constructor(
    entry: SnapshotEntry,
    private readonly inner: () => Promise<BlockExport>,
  ) {
    this.name = snapshotExportName(entry.volume, entry.id);
    this.description = `Snapshot ${entry.id} of ${entry.volume} (${entry.createdAt}, read-only)`;
    this.bytes = entry.size;
  }
  size(): number {
    return this.bytes;
  }
  async read(offset: number, length: number): Promise<Buffer> {
    return (await this.opened()).read(offset, length);
  }
  async blockStatus(offset: number, length: number, maxExtents?: number): Promise<AllocationExtent[]> {
    return (await this.opened()).blockStatus(offset, length, maxExtents);
  }
  /** What the snapshot's manifest says is zero, once its reader is open (nothing before). */
  knownZeroes(offset: number, length: number): ByteRange[] {
    return this.open?.knownZeroes?.(offset, length) ?? [];
  }
  private open: BlockExport | null = null;
  private async opened(): Promise<BlockExport> {
    return (this.open ??= await this.inner());
  }
  private readOnlyError(): HoldfastError {
    return new HoldfastError('READ_ONLY', `${this.name} is a read-only snapshot; restore it to a volume to change it.`);
  }
  async write(): Promise<void> {
    throw this.readOnlyError();
  }
  async writeZeroes(): Promise<void> {
    throw this.readOnlyError();
  }
  async trim(): Promise<void> {
    throw this.readOnlyError();
  }
  async flush(): Promise<void> {
    /* nothing is ever dirty */
  }
}

/** The registry over explicit sources: Engine builds its `exports` with it (volumes + default-vault snapshots). */
export function exportRegistryOf(engine: ExportSources): EngineExportRegistry {
  let snapshots = new Map<string, SnapshotEntry>();
  const open = new Map<string, OpenSnapshot>();
  let refreshing: Promise<void> | null = null;
  let again = false;
  let disposed = false;

  const readCatalogue = async (): Promise<Map<string, SnapshotEntry>> => {
    // Listing through the API would create the default vault on first use; an engine that
    // merely serves NBD must not, so an absent vault simply has no snapshots.
    // The vault is named explicitly so it is opened, never initialised, here.
    const dir = engine.defaultVault;
    if (!(await engine.env.stat(path.join(dir, VAULT_CONFIG_FILE)))) return new Map();
    const list = await engine.api['snapshot.list']({ vault: dir });
    return new Map(list.map((s) => [snapshotExportName(s.volume, s.id), { id: s.id, volume: s.volume, size: s.size, createdAt: s.createdAt }]));
  };

  const refresh = (): Promise<void> => {
    // Coalesce: one read at a time, and one more after it if asked meanwhile.
    if (refreshing) {
      again = true;
      return refreshing;
    }
    refreshing = (async () => {
      do {
        again = false;
        let next: Map<string, SnapshotEntry>;
        try {
          next = await readCatalogue();
        } catch (e) {
          // A vault that is gone exports no snapshots until it is back; any other failure
          // (a busy drive, too many open files) keeps the last catalogue rather than dropping
          // every connected snapshot client over a transient error.
          if (!(e instanceof HoldfastError && e.code === 'VAULT_MISSING')) continue;
          next = new Map();
        }
        if (disposed) return;
        snapshots = next;
        for (const [name, o] of open) if (!snapshots.has(name)) for (const l of [...o.leases]) l.revoke();
      } while (again && !disposed);
    })().finally(() => {
      refreshing = null;
      if (again && !disposed) void refresh();
    });
    return refreshing;
  };

  const subscription = engine.events.on('snapshots.changed', () => void refresh());
  void refresh();

  const openSnapshot = (name: string): ExportLease => {
    const entry = snapshots.get(name);
    if (!entry) {
      void refresh(); // a snapshot committed a moment ago appears on the next attempt
      throw new HoldfastError('NOT_FOUND', `There is no volume or snapshot named ${JSON.stringify(name)} (snapshots are named VOLUME@SNAPSHOT-ID, from the default vault).`);
    }
    let o = open.get(name);
    if (!o) open.set(name, (o = { inner: null, leases: new Set() }));
    const shared = o;
    const inner = (): Promise<BlockExport> => {
      if (!shared.inner) {
        shared.inner = engine.backups.snapshotExport(entry.id, engine.defaultVault);
        // A failed open (vault unplugged) is retried by the next read, not cached.
        shared.inner.catch(() => {
          shared.inner = null;
        });
      }
      return shared.inner;
    };
    const lease = new SnapshotLease(entry, inner, (l) => {
      shared.leases.delete(l);
      if (shared.leases.size === 0 && open.get(name) === shared) {
        open.delete(name);
        // The snapshot stays a registered vault reader (gc keeps its chunks) only while leased.
        void shared.inner?.then((e) => e.close(), () => undefined);
      }
    });
    shared.leases.add(lease);
    return lease;
  };

  return {
    list: () => [
      ...engine.volumes.list(),
      ...[...snapshots.entries()]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([name, s]) => ({ name, description: `Snapshot ${s.id} of ${s.volume} (${s.createdAt}, read-only)` })),
    ],
    open: (name: string): ExportLease => {
      if (disposed) throw new HoldfastError('NOT_FOUND', 'The engine is shutting down; no exports are served.');
      return name.includes(SNAPSHOT_SEPARATOR) ? openSnapshot(name) : engine.volumes.open(name);
    },
    refresh,
    dispose: () => {
      disposed = true;
      subscription.dispose();
      for (const o of open.values()) for (const l of [...o.leases]) l.revoke();
    },
  };
}
