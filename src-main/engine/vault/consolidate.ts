/**
 * Synthetic full: rewrites an incremental snapshot as a full (one chunk per region) from its
 * chain, without reading the volume again, so restores stay one pass and old links can be
 * pruned. The snapshot keeps its id and content; only its representation changes.
 *
 * Invariant: the new index is durable before the manifest is replaced by rename; a crash
 * leaves either the old incremental manifest or the new full one, never neither. Nothing is
 * deleted here: the old index and the chunks only it names go with gc, which keeps them while a
 * reader that opened the old chain (a restore started before the rewrite) still pins them.
 */
import { HoldfastError } from '../../../src-shared/errors';
import { ChunkWorkers } from './chunk-workers';
import { CONSOLIDATE_CHAIN_LENGTH, CONSOLIDATE_DELTA_FRACTION, DIGEST_BYTES, ZERO_DIGEST, type SnapshotManifest } from './format';
import { SnapshotReader } from './snapshot-reader';
import type { Vault } from './vault';

export function needsConsolidation(m: SnapshotManifest): boolean {
  return m.kind === 'incremental' && (m.chainLength > CONSOLIDATE_CHAIN_LENGTH || m.chainDeltaBytes > CONSOLIDATE_DELTA_FRACTION * m.size);
}

/** `registered`: the caller already holds an inprogress marker (a backup consolidating its own snapshot). */
export async function consolidateSnapshot(vault: Vault, id: string, opts: { workers?: ChunkWorkers; registered?: boolean } = {}): Promise<SnapshotManifest> {
  vault.assertWritable();
  const release = opts.registered ? null : await vault.beginWrite(`consolidate-${id}`);
  const workers = opts.workers ?? new ChunkWorkers(vault.keys);
  let opened: SnapshotReader | null = null;
  try {
    // As a registered reader it keeps prune from removing the snapshot or its chain meanwhile.
    const reader = (opened = await SnapshotReader.open(vault, id, { pool: workers, purpose: 'consolidate' }));
    const m = reader.manifest;
    if (m.kind === 'full') return m;
    const digests = Buffer.alloc(reader.regions * DIGEST_BYTES);
    const written = new Set<string>();
    let storedBytes = 0;
    const window: Promise<void>[] = [];
    for (let i = 0; i < reader.regions; i++) {
      const plan = reader.plan(i);
      if (!plan.patches.length) {
        if (plan.base) Buffer.from(plan.base, 'hex').copy(digests, i * DIGEST_BYTES);
        continue;
      }
      const region = await reader.readRegion(plan);
      if (vault.codec.isZero(region)) {
        ZERO_DIGEST.copy(digests, i * DIGEST_BYTES);
        continue;
      }
      const task = (async () => {
        const { digest, file } = await workers.digestEncode(region);
        const hex = digest.toString('hex');
        if (!(await vault.hasChunk(hex))) {
          const stored = await vault.writeChunk(hex, file);
          storedBytes += stored;
          written.add(hex);
        }
        digest.copy(digests, i * DIGEST_BYTES);
      })();
      task.catch(() => undefined); // awaited below; this only keeps an early failure from going unhandled
      window.push(task);
      if (window.length >= workers.size * 2) await window.shift();
    }
    await Promise.all(window);
    await vault.syncChunkDirs(written);
    // Recheck: the manifest must still be the one we read (no concurrent rewrite).
    const now = await vault.getManifest(id);
    if (now.index.digest !== m.index.digest) throw new HoldfastError('IN_USE', `Snapshot ${id} changed while it was being consolidated.`);
    const { index: _old, ...rest } = m;
    void _old;
    return await vault.commitSnapshot(
      {
        ...rest,
        kind: 'full',
        parent: null,
        chainLength: 0,
        chainDeltaBytes: 0,
        consolidatedFrom: m.parent ?? undefined,
        stats: { ...m.stats, storedBytes: m.stats.storedBytes + storedBytes },
      },
      { kind: 'full', size: m.size, chunkSize: reader.chunkSize, blockSize: reader.blockSize, digests },
    );
  } finally {
    await opened?.close();
    if (!opts.workers) await workers.close();
    await release?.();
  }
}
