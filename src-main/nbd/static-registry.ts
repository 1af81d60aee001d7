/**
 * An ExportRegistry over a fixed set of BlockExports (headless serving of image files, the
 * NBD tests and the benchmark). Tracks open leases per export so revoke() can make the
 * server drop an export's clients, as the engine does before a restore over a volume.
 */
import { HoldfastError } from '../../src-shared/errors';
import type { BlockExport, ExportLease, ExportRegistry } from '../engine/block-export';

class Lease implements ExportLease {
  private readonly revokeHandlers: Array<() => void> = [];
  closed = false;
  readonly export: BlockExport;
  constructor(
    ex: BlockExport,
    private readonly onClose: (l: Lease) => void,
  ) {
    this.export = ex;
  }
  onRevoke(cb: () => void): void {
    this.revokeHandlers.push(cb);
  }
  revoke(): void {
    for (const cb of this.revokeHandlers.splice(0)) cb();
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose(this);
  }
}

export class StaticExportRegistry implements ExportRegistry {
  private readonly exports = new Map<string, BlockExport>();
  private readonly leases = new Set<Lease>();

  constructor(exports: BlockExport[] = []) {
    for (const e of exports) this.add(e);
  }

  add(e: BlockExport): void {
    if (this.exports.has(e.name)) throw new HoldfastError('ALREADY_EXISTS', `An export named ${e.name} already exists.`);
    this.exports.set(e.name, e);
  }

  list(): Array<{ name: string; description: string }> {
    return [...this.exports.values()].map((e) => ({ name: e.name, description: e.description }));
  }

  open(name: string): ExportLease {
    const e = this.exports.get(name);
    if (!e) throw new HoldfastError('NOT_FOUND', `There is no export named ${JSON.stringify(name)}.`);
    const lease = new Lease(e, (l) => this.leases.delete(l));
    this.leases.add(lease);
    return lease;
  }

  /** Open leases, optionally for one export. */
  openCount(name?: string): number {
    let n = 0;
    for (const l of this.leases) if (name === undefined || l.export.name === name) n++;
    return n;
  }

  /** Asks every holder of the export's leases to let go. */
  revoke(name: string): void {
    for (const l of [...this.leases]) if (l.export.name === name) l.revoke();
  }
}
