/**
 * Reads a snapshot's content through its chain: a full base (one chunk per region) plus delta
 * layers of changed blocks, newest layer first. Used by restore, export, consolidation and the
 * read-only NBD export.
 *
 * The chain's indexes are loaded once; a region's plan (base chunk + the newest version of every
 * patched block) is resolved by binary search in each layer, so memory is proportional to the
 * index size, never to the volume size. Decoded chunks sit in a small LRU cache: delta chunks
 * hold blocks in block order, so a sequential pass reads each delta chunk once.
 *
 * Invariant: readRegion(i) returns exactly the bytes the volume held in region i at the
 * snapshot's begin(), and every chunk it used decoded to a plaintext matching its name.
 *
 * An open reader is registered with the vault (readers/, before the chain is read; the chain it
 * loaded is pinned right after) until close(), so prune, consolidation and gc running meanwhile
 * leave everything it reads in place (vault.ts "readers"). Every open() needs its close().
 */
import { HoldfastError, invariant } from '../../../src-shared/errors';
import type { ChunkWorkers } from './chunk-workers';
import { DIGEST_BYTES, ZERO_BLOCK_REF, digestAt, regionCount, type DeltaIndex, type FullIndex, type SnapshotManifest } from './format';
import type { ReaderLease, Vault } from './vault';

export interface BlockPatch {
  /** Block position inside the region. */
  at: number;
  /** Chunk holding the block, or null for an all-zero block. */
  chunk: string | null;
  slot: number;
}

export interface RegionPlan {
  index: number;
  offset: number;
  length: number;
  /** Base chunk hex, or null when the base region is all zeroes. */
  base: string | null;
  patches: BlockPatch[];
}

const isZeroDigest = (d: Buffer) => {
  for (let i = 0; i < DIGEST_BYTES; i++) if (d[i] !== 0) return false;
  return true;
};

export class SnapshotReader {
  readonly size: number;
  readonly chunkSize: number;
  readonly blockSize: number;
  readonly regions: number;
  private readonly cache = new Map<string, Promise<Buffer>>();
  private readonly cacheLimit: number;

  private constructor(
    readonly vault: Vault,
    readonly manifest: SnapshotManifest,
    private readonly base: FullIndex,
    /** Newest first. */
    private readonly layers: DeltaIndex[],
    private readonly pool: ChunkWorkers | null,
    cacheBytes: number,
    private readonly lease: ReaderLease,
  ) {
    this.size = manifest.size;
    this.chunkSize = base.chunkSize;
    this.blockSize = base.blockSize;
    this.regions = regionCount(this.size, this.chunkSize);
    this.cacheLimit = Math.max(4, Math.floor(cacheBytes / this.chunkSize));
  }

  /**
   * `purpose` names the reader in its vault marker (restore, export, verify, mount, consolidate);
   * `preemptible`: prune may remove the snapshot anyway (a mount, whose clients are then dropped).
   */
  static async open(
    vault: Vault,
    id: string,
    opts: { pool?: ChunkWorkers; cacheBytes?: number; purpose?: string; preemptible?: boolean } = {},
  ): Promise<SnapshotReader> {
    const lease = await vault.beginRead(id, opts.purpose ?? 'read', { preemptible: opts.preemptible });
    try {
      const chain = await vault.chain(id);
      await lease.pin(chain.map(({ manifest: m }) => ({ id: m.id, size: m.size, index: m.index })));
      const bottom = chain[chain.length - 1]!;
      invariant(bottom.index.kind === 'full', 'a chain ends in a full');
      const layers: DeltaIndex[] = [];
      for (const link of chain.slice(0, -1)) {
        if (link.index.kind !== 'delta' || link.index.size !== bottom.index.size || link.index.blockSize !== bottom.index.blockSize)
          throw new HoldfastError('VAULT_CORRUPT', `Snapshot ${link.manifest.id} does not fit on its parent chain.`);
        layers.push(link.index);
      }
      return new SnapshotReader(vault, chain[0]!.manifest, bottom.index, layers, opts.pool ?? null, opts.cacheBytes ?? 48 * 1024 * 1024, lease);
    } catch (e) {
      await lease.release();
      throw e;
    }
  }

  /** Ends the registration: from now on prune and gc may remove what this reader used. */
  async close(): Promise<void> {
    await this.lease.release();
  }

  get chainLength(): number {
    return this.layers.length;
  }

  /** Every chunk the snapshot's content depends on (base regions and delta chunks), deduplicated. */
  referencedChunks(): string[] {
    const set = new Set<string>();
    for (let i = 0; i < this.regions; i++) {
      const d = digestAt(this.base.digests, i);
      if (!isZeroDigest(d)) set.add(d.toString('hex'));
    }
    for (const l of this.layers) for (let i = 0; i < l.digests.length / DIGEST_BYTES; i++) set.add(digestAt(l.digests, i).toString('hex'));
    return [...set];
  }

  plan(i: number): RegionPlan {
    invariant(i >= 0 && i < this.regions, 'region in range');
    const offset = i * this.chunkSize;
    const length = Math.min(this.chunkSize, this.size - offset);
    const d = digestAt(this.base.digests, i);
    const base = isZeroDigest(d) ? null : d.toString('hex');
    const patches: BlockPatch[] = [];
    if (this.layers.length) {
      const perRegion = this.chunkSize / this.blockSize;
      const first = i * perRegion;
      const last = first + Math.ceil(length / this.blockSize);
      const seen = new Set<number>();
      for (const l of this.layers) {
        let lo = 0;
        let hi = l.blocks.length;
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          if (l.blocks[mid]! < first) lo = mid + 1;
          else hi = mid;
        }
        for (let k = lo; k < l.blocks.length && l.blocks[k]! < last; k++) {
          const b = l.blocks[k]!;
          if (seen.has(b)) continue; // a newer layer already has this block
          seen.add(b);
          const c = l.chunkOf[k]!;
          patches.push({ at: b - first, chunk: c === ZERO_BLOCK_REF ? null : digestAt(l.digests, c).toString('hex'), slot: l.slotOf[k]! });
        }
      }
      patches.sort((a, b) => a.at - b.at);
    }
    return { index: i, offset, length, base, patches };
  }

  /** True when the region reads as zeroes without touching any chunk. */
  isZeroPlan(p: RegionPlan): boolean {
    return p.base === null && p.patches.every((x) => x.chunk === null);
  }

  async chunk(hex: string): Promise<Buffer> {
    const hit = this.cache.get(hex);
    if (hit) {
      this.cache.delete(hex);
      this.cache.set(hex, hit);
      return hit;
    }
    const p = (async () => {
      const file = await this.vault.readChunkFile(hex);
      if (this.pool) return this.pool.decode(file, hex);
      try {
        return this.vault.codec.decode(file, hex);
      } catch (e) {
        throw new HoldfastError('VAULT_CORRUPT', `Chunk ${hex} is damaged: ${(e as Error).message}.`, { chunk: hex });
      }
    })();
    this.cache.set(hex, p);
    p.catch(() => this.cache.delete(hex));
    while (this.cache.size > this.cacheLimit) this.cache.delete(this.cache.keys().next().value!);
    return p;
  }

  /** The region's bytes as of the snapshot. Treat as read-only: it may be a cached chunk. */
  async readRegion(p: RegionPlan): Promise<Buffer> {
    let out: Buffer;
    if (p.base) {
      const b = await this.chunk(p.base);
      if (b.length !== p.length) throw new HoldfastError('VAULT_CORRUPT', `Chunk ${p.base} has the wrong length for region ${p.index}.`, { chunk: p.base });
      if (!p.patches.length) return b; // shared with the cache: callers only read it
      out = Buffer.allocUnsafe(p.length);
      b.copy(out);
    } else out = Buffer.alloc(p.length);
    const bs = this.blockSize;
    for (const x of p.patches) {
      const dst = x.at * bs;
      const n = Math.min(bs, p.length - dst);
      if (x.chunk === null) out.fill(0, dst, dst + n);
      else {
        const c = await this.chunk(x.chunk);
        if ((x.slot + 1) * bs > c.length + (bs - n))
          throw new HoldfastError('VAULT_CORRUPT', `Delta chunk ${x.chunk} is shorter than its index says.`, { chunk: x.chunk });
        c.copy(out, dst, x.slot * bs, x.slot * bs + n);
      }
    }
    return out;
  }
}
