/**
 * Vault upkeep: verify a snapshot, prune by retention, collect garbage.
 *
 * prune only removes manifests. It always keeps the newest snapshot of every volume (the
 * parent the next incremental builds on) and every ancestor of a kept incremental, so no kept
 * snapshot loses a link of its chain.
 *
 * gc removes chunk files no manifest reaches, orphan indexes and stale temp files. It is safe
 * against a backup running at the same time (in this or another process on the same machine)
 * by a two-marker handshake: gc writes `gc.running` and then checks `inprogress/`; a backup
 * writes its `inprogress/` marker and then waits while `gc.running` exists; gc re-checks
 * `inprogress/` before every deletion and stops when a backup appears. Each side writes before
 * it reads, so at least one sees the other: either gc stops (at most the deletion already past
 * its check, which the backup has not looked at yet, because it is still waiting), or the
 * backup waits until gc is done. So a backup never reuses a chunk gc is about to delete.
 * Markers of processes that died are ignored (and gc removes them).
 *
 * Readers (restore, export, verify, consolidation, a mounted snapshot) are registered in
 * `readers/` with the chain they loaded (vault.ts). prune keeps every snapshot a live reader's
 * chain contains (reason "in use"), re-checking right before each deletion — except a mount's,
 * which prune preempts (the engine drops its NBD clients); gc treats the indexes
 * live readers pinned as roots, also for readers that register while it sweeps, and never deletes
 * a pinned index. So a restore that started before a prune + gc finishes with the right bytes.
 */
import { HoldfastError } from '../../../src-shared/errors';
import { ChunkWorkers } from './chunk-workers';
import { DIGEST_BYTES, digestAt, snapshotAgeOrder, type SnapshotIndex, type SnapshotManifest } from './format';
import { SnapshotReader } from './snapshot-reader';
import { vaultIoError, type Vault } from './vault';
import path from 'node:path';

// ------------------------------------------------------------ verify

export interface VerifyResult {
  ok: boolean;
  chunks: number;
  /** Names of damaged or missing chunks (or `index:<id>` for a damaged index). */
  bad: string[];
  problems: string[];
}

export async function verifySnapshot(vault: Vault, id: string, opts: { workers?: ChunkWorkers } = {}): Promise<VerifyResult> {
  let reader: SnapshotReader;
  try {
    reader = await SnapshotReader.open(vault, id, { purpose: 'verify' });
  } catch (e) {
    if (e instanceof HoldfastError && e.code === 'VAULT_CORRUPT') {
      const which = (e.details?.index as string | undefined) ?? `index:${id}`;
      return { ok: false, chunks: 0, bad: [which], problems: [e.message] };
    }
    throw e;
  }
  const workers = opts.workers ?? new ChunkWorkers(vault.keys);
  const bad: string[] = [];
  const problems: string[] = [];
  const names = reader.referencedChunks();
  try {
    let next = 0;
    const lane = async () => {
      while (next < names.length) {
        const hex = names[next++]!;
        try {
          await workers.decode(await vault.readChunkFile(hex), hex);
        } catch (e) {
          if (!(e instanceof HoldfastError) || e.code !== 'VAULT_CORRUPT') throw e;
          bad.push(hex);
          problems.push(e.message);
        }
      }
    };
    await Promise.all(Array.from({ length: workers.size * 2 }, lane));
  } finally {
    await reader.close();
    if (!opts.workers) await workers.close();
  }
  bad.sort();
  return { ok: bad.length === 0, chunks: names.length, bad, problems };
}

// ------------------------------------------------------------ prune

export interface RetentionPolicy {
  keepLast?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  dryRun?: boolean;
  /** Only this volume's snapshots; default all. */
  volume?: string;
}

export interface PruneResult {
  kept: Array<{ id: string; volume: string; reasons: string[] }>;
  removed: Array<{ id: string; volume: string; createdAt: string }>;
  dryRun: boolean;
}

function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const y = t.getUTCFullYear();
  const week = Math.ceil(((t.getTime() - Date.UTC(y, 0, 1)) / 86400000 + 1) / 7);
  return `${y}-W${String(week).padStart(2, '0')}`;
}

/** Which snapshots the policy keeps, newest first per volume (restic/PBS semantics, UTC buckets). */
export function selectKept(snaps: SnapshotManifest[], p: RetentionPolicy): Map<string, string[]> {
  const reasons = new Map<string, string[]>();
  const add = (id: string, r: string) => reasons.set(id, [...(reasons.get(id) ?? []), r]);
  const byVolume = new Map<string, SnapshotManifest[]>();
  for (const s of snaps) byVolume.set(s.volume, [...(byVolume.get(s.volume) ?? []), s]);
  for (const list of byVolume.values()) {
    const newest = [...list].sort((a, b) => snapshotAgeOrder(b, a));
    add(newest[0]!.id, 'newest');
    newest.slice(0, p.keepLast ?? 0).forEach((s) => add(s.id, 'last'));
    const bucket = (n: number | undefined, label: string, key: (d: Date) => string) => {
      if (!n) return;
      const seen = new Set<string>();
      for (const s of newest) {
        const k = key(new Date(s.createdAt));
        if (seen.has(k)) continue;
        seen.add(k);
        add(s.id, label);
        if (seen.size >= n) break;
      }
    };
    bucket(p.keepDaily, 'daily', (d) => d.toISOString().slice(0, 10));
    bucket(p.keepWeekly, 'weekly', isoWeek);
    bucket(p.keepMonthly, 'monthly', (d) => d.toISOString().slice(0, 7));
  }
  // Chains: a kept incremental needs every ancestor.
  const byId = new Map(snaps.map((s) => [s.id, s]));
  for (const id of [...reasons.keys()]) {
    let cur = byId.get(id);
    while (cur && cur.kind === 'incremental' && cur.parent) {
      const parent = byId.get(cur.parent);
      if (!parent) break;
      if (!reasons.get(parent.id)?.includes('parent of a kept snapshot')) add(parent.id, 'parent of a kept snapshot');
      cur = parent;
    }
  }
  return reasons;
}

export async function pruneSnapshots(vault: Vault, p: RetentionPolicy): Promise<PruneResult> {
  const counts = [p.keepLast, p.keepDaily, p.keepWeekly, p.keepMonthly];
  if (counts.some((n) => n !== undefined && (!Number.isInteger(n) || n < 0)))
    throw new HoldfastError('INVALID_ARGUMENT', 'Keep counts must be whole numbers ≥ 0.');
  if (!counts.some((n) => n && n > 0))
    throw new HoldfastError('INVALID_ARGUMENT', 'Give at least one of --keep-last, --keep-daily, --keep-weekly, --keep-monthly (prune never removes everything).');
  const dryRun = p.dryRun ?? false;
  if (!dryRun) vault.assertWritable();
  const snaps = await vault.listSnapshots(p.volume);
  const kept = selectKept(snaps, p);
  const inUse = async () => new Set([...(await vault.openedReaders()).values()].flatMap((r) => (r.preemptible ? [] : r.chain.map((l) => l.id))));
  let busy = await inUse();
  const removed: SnapshotManifest[] = [];
  for (const s of snaps) {
    if (kept.has(s.id)) continue;
    if (!dryRun && removed.length) busy = await inUse(); // a restore may have started meanwhile
    if (busy.has(s.id)) {
      kept.set(s.id, ['in use (being restored, exported, verified or consolidated)']);
      continue;
    }
    if (!dryRun) await vault.deleteSnapshot(s);
    removed.push(s);
  }
  return {
    kept: snaps.filter((s) => kept.has(s.id)).map((s) => ({ id: s.id, volume: s.volume, reasons: kept.get(s.id)! })),
    removed: removed.map((s) => ({ id: s.id, volume: s.volume, createdAt: s.createdAt })),
    dryRun,
  };
}

// ------------------------------------------------------------ gc

export interface GcResult {
  removedChunks: number;
  freedBytes: number;
  keptChunks: number;
  removedFiles: number;
  /** True when a backup started and gc stopped early (run it again later). */
  interrupted: boolean;
}

export async function collectGarbage(vault: Vault, opts: { dryRun?: boolean } = {}): Promise<GcResult> {
  vault.assertWritable();
  const env = vault.env;
  const markerPath = vault.gcMarkerPath();
  const other = await vault.readMarker(markerPath);
  if (other && !vault.isStale(other) && other.pid !== process.pid)
    throw new HoldfastError('IN_USE', `Another garbage collection of ${vault.dir} is running (pid ${other.pid}).`);
  await env.writeFileAtomic(markerPath, JSON.stringify(vault.markerSelf())).catch((e) => {
    throw vaultIoError(e, vault.dir, 'starting garbage collection');
  });
  try {
    if ((await vault.liveBackups()).length)
      throw new HoldfastError('BACKUP_RUNNING', `A backup is writing to the vault ${vault.dir}; run gc when it has finished.`);
    // Mark: every chunk and index any live reader pinned or any manifest reaches. Readers first:
    // one that opens after this read can only load snapshots whose manifests the mark below sees.
    const referenced = new Set<string>();
    const indexes = new Set<string>();
    const mark = (ix: SnapshotIndex) => {
      const n = ix.digests.length / DIGEST_BYTES;
      for (let i = 0; i < n; i++) {
        const d = digestAt(ix.digests, i);
        if (d.some((x) => x !== 0)) referenced.add(d.toString('hex'));
      }
    };
    const pinned = new Set<string>();
    const markReaders = async () => {
      for (const [name, r] of await vault.openedReaders({ removeStale: true })) {
        if (pinned.has(name)) continue;
        for (const link of r.chain) {
          if (indexes.has(link.index.file)) continue;
          let ix: SnapshotIndex;
          try {
            ix = await vault.readIndex(link);
          } catch (e) {
            throw new HoldfastError('IN_USE', `A ${r.purpose} of snapshot ${r.snapshot} (pid ${r.pid}) needs an index gc cannot read (${(e as Error).message}); run gc when it has finished.`);
          }
          indexes.add(link.index.file);
          mark(ix);
        }
        pinned.add(name);
      }
    };
    await markReaders();
    for (const m of await vault.listSnapshots()) {
      if (indexes.has(m.index.file)) continue;
      let ix: SnapshotIndex;
      try {
        ix = await vault.readIndex(m); // a damaged index stops gc: we could not know what it needs
      } catch (e) {
        // Pruned meanwhile (manifest gone): nothing needs it, or a reader pinned it and markReaders keeps it.
        if (e instanceof HoldfastError && e.code === 'VAULT_CORRUPT' && (await vault.getManifest(m.id).then(() => false, (g) => g instanceof HoldfastError && g.code === 'SNAPSHOT_NOT_FOUND'))) continue;
        throw e;
      }
      indexes.add(m.index.file);
      mark(ix);
    }
    // Sweep.
    const res: GcResult = { removedChunks: 0, freedBytes: 0, keptChunks: 0, removedFiles: 0, interrupted: false };
    for (const hex of await vault.listChunks()) {
      if (referenced.has(hex)) {
        res.keptChunks++;
        continue;
      }
      if ((await vault.liveBackups()).length) {
        res.interrupted = true;
        return res;
      }
      await markReaders();
      if (referenced.has(hex)) {
        res.keptChunks++;
        continue;
      }
      const st = await env.stat(vault.chunkPath(hex));
      if (!opts.dryRun) {
        await env.unlink(vault.chunkPath(hex));
        vault.forgetChunk(hex);
      }
      res.removedChunks++;
      res.freedBytes += st?.size ?? 0;
    }
    if ((await vault.liveBackups()).length) {
      res.interrupted = true;
      return res;
    }
    await markReaders();
    for (const n of await env.readdir(path.join(vault.dir, 'indexes'))) {
      if (indexes.has(n)) continue;
      if (!opts.dryRun) await env.unlink(path.join(vault.dir, 'indexes', n));
      res.removedFiles++;
    }
    const hour = 3600_000;
    for (const n of await env.readdir(path.join(vault.dir, 'tmp'))) {
      const p = path.join(vault.dir, 'tmp', n);
      const st = await env.stat(p);
      if (st && env.now() - st.mtimeMs > hour) {
        if (!opts.dryRun) await env.unlink(p);
        res.removedFiles++;
      }
    }
    return res;
  } finally {
    await env.unlink(markerPath).catch(() => undefined);
  }
}
