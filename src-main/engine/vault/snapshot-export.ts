/**
 * A snapshot as a read-only BlockExport (for `snapshot mount` over NBD): reads resolve through
 * the snapshot's index chain; a few materialised regions are cached so small sequential reads
 * do not rebuild a region each time. Every write-type request fails with READ_ONLY. While open
 * it is a registered, preemptible vault reader: prune may remove its snapshot (the engine then
 * disconnects its clients), but gc keeps every chunk it reads until close().
 */
import { HoldfastError } from '../../../src-shared/errors';
import type { AllocationExtent, BlockExport, ByteRange } from '../block-export';
import type { ChunkWorkers } from './chunk-workers';
import { SnapshotReader } from './snapshot-reader';
import type { Vault } from './vault';

export class SnapshotExport implements BlockExport {
  readonly readOnly = true;
  readonly sectorSize = 512;
  readonly preferredBlockSize = 4096;
  readonly name: string;
  readonly description: string;
  private readonly regions = new Map<number, Promise<Buffer | null>>();

  private constructor(private readonly reader: SnapshotReader) {
    const m = reader.manifest;
    this.name = `snapshot-${m.id}`;
    this.description = `Snapshot ${m.id} of ${m.volume} (${m.createdAt}, read-only)`;
  }

  static async open(vault: Vault, id: string, opts: { pool?: ChunkWorkers } = {}): Promise<SnapshotExport> {
    return new SnapshotExport(await SnapshotReader.open(vault, id, { pool: opts.pool, cacheBytes: 32 * 1024 * 1024, purpose: 'mount', preemptible: true }));
  }

  /** Releases the snapshot for prune and gc (the export must not be read afterwards). */
  async close(): Promise<void> {
    this.regions.clear();
    await this.reader.close();
  }

  size(): number {
    return this.reader.size;
  }

  private check(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.reader.size)
      throw new HoldfastError('OUT_OF_RANGE', `Read of ${length} bytes at ${offset} is outside the snapshot (${this.reader.size} bytes).`);
  }

  /** The region's bytes, or null for an all-zero region. */
  private region(i: number): Promise<Buffer | null> {
    let p = this.regions.get(i);
    if (p) {
      this.regions.delete(i);
      this.regions.set(i, p);
      return p;
    }
    const plan = this.reader.plan(i);
    p = this.reader.isZeroPlan(plan) ? Promise.resolve(null) : this.reader.readRegion(plan);
    this.regions.set(i, p);
    p.catch(() => this.regions.delete(i));
    while (this.regions.size > 4) this.regions.delete(this.regions.keys().next().value!);
    return p;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.check(offset, length);
    const out = Buffer.alloc(length);
    const cs = this.reader.chunkSize;
    let pos = offset;
    while (pos < offset + length) {
      const i = Math.floor(pos / cs);
      const inRegion = pos - i * cs;
      const n = Math.min(cs - inRegion, offset + length - pos);
      const r = await this.region(i);
      if (r) r.copy(out, pos - offset, inRegion, inRegion + n);
      pos += n;
    }
    return out;
  }

  private readOnlyError(): HoldfastError {
    return new HoldfastError('READ_ONLY', `${this.name} is a read-only snapshot; restore it to a volume to change it.`);
  }
  async write(_offset: number, _data: Buffer): Promise<void> {
    throw this.readOnlyError();
  }
  async writeZeroes(_offset: number, _length: number): Promise<void> {
    throw this.readOnlyError();
  }
  async trim(_offset: number, _length: number): Promise<void> {
    throw this.readOnlyError();
  }
  async flush(): Promise<void> {
    /* nothing is ever dirty */
  }

  /** The chunks the manifest records as zero (no I/O): reads send them as holes. */
  knownZeroes(offset: number, length: number): ByteRange[] {
    this.check(offset, length);
    const cs = this.reader.chunkSize;
    const runs: ByteRange[] = [];
    for (let pos = offset; pos < offset + length; ) {
      const i = Math.floor(pos / cs);
      const n = Math.min((i + 1) * cs - pos, offset + length - pos);
      if (this.reader.isZeroPlan(this.reader.plan(i))) {
        const last = runs[runs.length - 1];
        if (last && last.offset + last.length === pos) last.length += n;
        else runs.push({ offset: pos, length: n });
      }
      pos += n;
    }
    return runs;
  }

  /** Zero chunks as holes, the rest data (knownZeroes and what lies between). */
  async blockStatus(offset: number, length: number): Promise<AllocationExtent[]> {
    const out: AllocationExtent[] = [];
    let pos = offset;
    for (const z of this.knownZeroes(offset, length)) {
      if (z.offset > pos) out.push({ length: z.offset - pos, hole: false, zero: false });
      out.push({ length: z.length, hole: true, zero: true });
      pos = z.offset + z.length;
    }
    if (pos < offset + length) out.push({ length: offset + length - pos, hole: false, zero: false });
    return out;
  }
}
