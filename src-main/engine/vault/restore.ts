/**
 * Restore and export: streams a snapshot, region by region in volume order, into a target.
 * Chunks are decoded (and their digests checked) in worker threads a few regions ahead of the
 * writer, so reading, decoding and writing overlap; memory is bounded by the read-ahead.
 *
 * Invariants: bytes are written only after every chunk they came from matched its digest; a
 * sparse target (fresh file, reads zero where never written) gets no writes for zero ranges, a
 * volume none where it knows it reads zero already, any other target explicit zeroes; an export
 * appears at its path only complete (written to a temp name, then renamed). While it runs, a restore is a registered vault reader
 * (SnapshotReader.open), so prune and gc leave the snapshot, its indexes and its chunks alone.
 */
import path from 'node:path';
import { HoldfastError } from '../../../src-shared/errors';
import { ChunkWorkers } from './chunk-workers';
import type { SnapshotManifest } from './format';
import { forEachRegion } from './region-pipeline';
import { SnapshotReader } from './snapshot-reader';
import { vaultIoError, type Vault } from './vault';
import { vhdFixedFooter } from './vhd';
import { Qcow2Writer } from './qcow2-writer';

export interface RestoreTarget {
  size: number;
  write(offset: number, buf: Buffer): Promise<void>;
  flush(): Promise<void>;
  /** True when unwritten ranges read as zeroes (a fresh file or volume). */
  sparse: boolean;
  /**
   * For a target that is not sparse: whether [offset, offset + length) already reads as zeroes,
   * known without I/O (a volume's holes): a zero region there is not written.
   */
  readsZero?(offset: number, length: number): boolean;
  /**
   * For a target that is not sparse: makes [offset, offset + length) read as zeroes without
   * writing zero bytes (a volume's write-zeroes, which punches a hole where its image file
   * allows). Without it, zero regions are written as zeroes.
   */
  zero?(offset: number, length: number): Promise<void>;
  /** True when writes to disjoint ranges may be in flight together (positional writes to a file); false keeps them in order, one at a time. */
  concurrentWrites?: boolean;
}

export interface RestoreProgress {
  bytesDone: number;
  bytesTotal: number;
  mbPerSec: number;
}

export interface RestoreOptions {
  onProgress?: (p: RestoreProgress) => void;
  signal?: AbortSignal;
  workers?: ChunkWorkers;
  /** Regions decoded ahead of the writer. */
  readAhead?: number;
}

const SPARSE_GRAIN = 64 * 1024;

export async function restoreSnapshot(vault: Vault, id: string, target: RestoreTarget, opts: RestoreOptions = {}): Promise<SnapshotManifest> {
  const workers = opts.workers ?? new ChunkWorkers(vault.keys);
  let opened: SnapshotReader | null = null; // registered as a vault reader until closed (gc/prune keep its chunks)
  try {
    // Base chunks are used once in a sequential pass; the cache only has to hold delta chunks.
    const reader = (opened = await SnapshotReader.open(vault, id, { pool: workers, cacheBytes: 16 * 1024 * 1024, purpose: 'restore' }));
    const m = reader.manifest;
    if (target.size < m.size)
      throw new HoldfastError(
        'DEVICE_TOO_SMALL',
        `The target holds ${target.size} bytes but snapshot ${id} needs ${m.size}. Pick a target at least as large as the snapshot.`,
        { needed: m.size, available: target.size },
      );
    const ahead = Math.max(1, opts.readAhead ?? workers.size * 2);
    const zero = target.sparse ? null : Buffer.alloc(reader.chunkSize);
    const t0 = vault.env.monotonic();
    let last = 0;
    let done = 0;
    const grain = target.sparse ? SPARSE_GRAIN : 0;
    await forEachRegion(reader, workers, { ahead, zeroGrain: grain, signal: opts.signal }, async ({ offset, length, data, zeroPieces }) => {
      if (data === null) {
        if (zero && !target.readsZero?.(offset, length)) {
          if (target.zero) await target.zero(offset, length);
          else await target.write(offset, length === zero.length ? zero : zero.subarray(0, length));
        }
      } else if (!target.sparse) await target.write(offset, data);
      else await writeSkippingZeroes(target, offset, data, zeroPieces!, grain);
      done += length;
      const now = vault.env.monotonic();
      if (opts.onProgress && (now - last > 100 || done === m.size)) {
        last = now;
        opts.onProgress({ bytesDone: done, bytesTotal: m.size, mbPerSec: done / 1e6 / Math.max(1e-3, (now - t0) / 1000) });
      }
    });
    await target.flush();
    return m;
  } finally {
    await opened?.close();
    if (!opts.workers) await workers.close();
  }
}

/**
 * Writes buf at offset except for the all-zero pieces (zeroPieces, `grain` bytes each), which a
 * sparse target already reads as zero. A region of a filled filesystem breaks into many runs:
 * where the target allows, they are written together instead of one round trip each.
 */
async function writeSkippingZeroes(target: RestoreTarget, offset: number, buf: Buffer, zeroPieces: Uint8Array, grain: number): Promise<void> {
  const writes: Promise<void>[] = [];
  const put = async (from: number, to: number) => {
    const w = target.write(offset + from, buf.subarray(from, to));
    if (target.concurrentWrites) writes.push(w);
    else await w;
  };
  let runStart = -1;
  for (let k = 0, o = 0; o < buf.length; k++, o += grain) {
    if (zeroPieces[k]) {
      if (runStart >= 0) await put(runStart, o);
      runStart = -1;
    } else if (runStart < 0) runStart = o;
  }
  if (runStart >= 0) await put(runStart, buf.length);
  await Promise.all(writes);
}

/** A fresh sparse file of `size` bytes, through the Env; the caller closes it. */
async function openFreshFile(vault: Vault, p: string, size: number) {
  const env = vault.env;
  await env.unlink(p);
  const f = await env.open(p, { create: true, exclusive: true });
  await f.truncate(size);
  return f;
}

export type ExportFormat = 'raw' | 'vhd' | 'qcow2';

/**
 * Writes the snapshot as a raw image, a fixed VHD (raw + footer) or a sparse qcow2 (qcow2-writer.ts)
 * at outPath. The file is built under a temp name beside it and renamed when complete and durable.
 */
export async function exportSnapshot(
  vault: Vault,
  id: string,
  format: ExportFormat,
  outPath: string,
  opts: RestoreOptions = {},
): Promise<{ path: string; bytes: number }> {
  const m = await vault.getManifest(id);
  if (format !== 'raw' && format !== 'vhd' && format !== 'qcow2')
    throw new HoldfastError('INVALID_ARGUMENT', `Unknown export format "${String(format)}"; use raw, vhd or qcow2.`);
  if (format === 'vhd' && m.size % 512 !== 0) throw new HoldfastError('INVALID_SIZE', 'A VHD needs a size that is a multiple of 512 bytes.');
  const tmp = path.join(path.dirname(outPath), `.${path.basename(outPath)}.partial-${process.pid}`);
  const env = vault.env;
  let file: Awaited<ReturnType<typeof openFreshFile>> | null = null;
  try {
    file = await openFreshFile(vault, tmp, format === 'qcow2' ? 0 : m.size);
    const f = file;
    const qcow2 = format === 'qcow2' ? new Qcow2Writer(f, m.size, (b) => vault.codec.isZero(b)) : null;
    await restoreSnapshot(
      vault,
      id,
      qcow2 ?? { size: m.size, sparse: true, concurrentWrites: true, write: (o, b) => f.write(b, o), flush: () => f.datasync() },
      opts,
    );
    let bytes = qcow2 ? qcow2.bytes : m.size;
    if (format === 'vhd') {
      const footer = vhdFixedFooter(m.size, env.now());
      await f.write(footer, m.size);
      await f.datasync();
      bytes += footer.length;
    }
    await f.close();
    file = null;
    await env.rename(tmp, outPath);
    await env.fsyncDir(path.dirname(outPath));
    return { path: outPath, bytes };
  } catch (e) {
    if (file) await file.close().catch(() => undefined);
    await env.unlink(tmp).catch(() => undefined);
    throw e instanceof HoldfastError ? e : vaultIoError(e, path.dirname(outPath), `exporting snapshot ${id}`);
  }
}

/** Restores into a new image file at outPath (sparse), complete or not at all. */
export async function restoreToFile(vault: Vault, id: string, outPath: string, opts: RestoreOptions = {}): Promise<{ path: string; bytes: number }> {
  return exportSnapshot(vault, id, 'raw', outPath, opts);
}
