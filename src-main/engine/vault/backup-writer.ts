/**
 * The backup application's data path: reads a SnapshotSource (the volume as of begin()) into
 * the vault as a full snapshot (one content-addressed chunk per region) or, when the source's
 * changed-block map is relative to the vault's newest snapshot of the volume, an incremental
 * (only changed blocks, packed into delta chunks). Reading, hashing/compressing (worker
 * threads) and writing overlap; a bounded number of chunks is in flight, so memory does not
 * grow with the volume.
 *
 * Invariants: every range is reported copied only after its bytes are in memory; ranges with
 * held writes (urgentRanges) are read first; end(id) is sent only after the manifest is
 * durable; on any failure or abort, abort(reason) is sent and no manifest exists (only
 * unreferenced chunks, which gc removes).
 */
import crypto from 'node:crypto';
import { HoldfastError, invariant, toErrorPayload } from '../../../src-shared/errors';
import type { SnapshotSource } from '../backup/snapshot-source';
import { ChunkWorkers, type ChunkSlot } from './chunk-workers';
import { consolidateSnapshot, needsConsolidation } from './consolidate';
import {
  DIGEST_BYTES,
  FORMAT_VERSION,
  SNAPSHOT_FORMAT,
  ZERO_BLOCK_REF,
  ZERO_DIGEST,
  newSnapshotId,
  regionCount,
  type SnapshotIndex,
  type SnapshotManifest,
} from './format';
import { vaultIoError, type Vault } from './vault';

export interface BackupProgress {
  bytesDone: number;
  bytesTotal: number;
  mbPerSec: number;
  etaSec: number | null;
  /** Bytes covered so far ÷ bytes newly stored (≥ 1; higher is better). */
  dedupRatio: number;
  storedBytes: number;
  kind: 'full' | 'incremental';
}

export interface BackupOptions {
  full?: boolean;
  onProgress?: (p: BackupProgress) => void;
  signal?: AbortSignal;
  /** Write a synthetic full after an incremental when the chain is due (default true). */
  consolidate?: boolean;
  /** Chunks hashed/compressed at once (bounds memory: ≈ 2 × chunk size each). */
  inFlight?: number;
  /** Injected for tests; by default one pool per backup. */
  workers?: ChunkWorkers;
}

interface Counters {
  readBytes: number;
  storedBytes: number;
  newChunks: number;
  reusedChunks: number;
  zeroChunks: number;
  written: Set<string>;
}


/** Bounded set of concurrent tasks; the first failure is rethrown by the next add/drain. */
class TaskWindow {
  private readonly running = new Set<Promise<void>>();
  private error: unknown = null;
  constructor(private readonly limit: number) {}
  async add(task: () => Promise<void>): Promise<void> {
    this.check();
    while (this.running.size >= this.limit) {
      await Promise.race(this.running);
      this.check();
    }
    const p: Promise<void> = task()
      .catch((e) => {
        if (this.error === null) this.error = e;
      })
      .finally(() => this.running.delete(p));
    this.running.add(p);
  }
  async drain(): Promise<void> {
    await Promise.all(this.running);
    this.check();
  }
  private check(): void {
    if (this.error !== null) throw this.error;
  }
}

/** Where slots come from and go back to: a pool's slot set, or a SlotLimit over it. */
interface SlotPool {
  acquire(): Promise<ChunkSlot>;
  release(s: ChunkSlot): void;
}

/**
 * An incremental changing at most this much packs its delta chunks on the calling thread when the
 * worker pool has not started: packing costs ~2.5 ms per MiB there, and two worker threads cost
 * ~150 ms of CPU to boot on a 2-core VM (the measured break-even is a few tens of MiB). A larger
 * one starts the workers and packs here only until they are up.
 */
const INLINE_PACK_BYTES = 32 << 20;

/** Largest delta chunk (changed blocks packed together) an incremental writes. */
const DELTA_PACK_BYTES = 1 << 20;

/**
 * Runs task in the window. The slot goes back to the pool when the task calls its `done`
 * (early: its bytes are written), else when the task ends, or at once if the window refuses it.
 */
async function addWithSlot(window: TaskWindow, pool: SlotPool, slot: ChunkSlot, task: (done: () => void) => Promise<void>): Promise<void> {
  let released = false;
  const done = () => {
    if (released) return;
    released = true;
    pool.release(slot);
  };
  try {
    await window.add(async () => {
      try {
        await task(done);
      } finally {
        done();
      }
    });
  } catch (e) {
    done(); // the window refused the task (an earlier one failed)
    throw e;
  }
}

/** At most `limit` slots of a pool held at once (through this object). */
class SlotLimit implements SlotPool {
  private held = 0;
  private readonly waiters: (() => void)[] = [];
  constructor(
    private readonly pool: SlotPool,
    private readonly limit: number,
  ) {}
  async acquire(): Promise<ChunkSlot> {
    while (this.held >= this.limit) await new Promise<void>((r) => this.waiters.push(r));
    this.held++;
    try {
      return await this.pool.acquire();
    } catch (e) {
      this.unhold();
      throw e;
    }
  }
  release(slot: ChunkSlot): void {
    this.pool.release(slot);
    this.unhold();
  }
  private unhold(): void {
    this.held--;
    this.waiters.shift()?.();
  }
}

/** Reads source bytes [offset, offset + target.length) into target. */
async function readInto(source: SnapshotSource, offset: number, target: Buffer): Promise<void> {
  if (source.readInto) return source.readInto(offset, target);
  const buf = await source.read(offset, target.length);
  invariant(buf.length === target.length, 'source reads are whole');
  buf.copy(target);
}

/** Stores one chunk unless the vault already has it; concurrent callers with the same digest share one write. */
class ChunkStore {
  private readonly pending = new Map<string, Promise<boolean>>();
  constructor(
    private readonly vault: Vault,
    readonly workers: ChunkWorkers,
    private readonly c: Counters,
  ) {}

  /**
   * Stores slot.input[0, len) whose digest is known. `done` gives the slot back: called as soon
   * as the slot's bytes are no longer needed (written, before the fsync), or not at all (the
   * caller then gives it back when this resolves).
   */
  async putSlot(slot: ChunkSlot, len: number, digest: Buffer, done: () => void): Promise<void> {
    const hex = digest.toString('hex');
    await this.putKnown(hex, async () => ChunkWorkers.fileParts(slot, len, await this.workers.slotEncode(slot, len, hex)), done);
  }

  /** Stores a chunk a worker already hashed and encoded (delta packs): `parts` is its file. */
  async putParts(digest: Buffer, parts: Buffer[], done: () => void): Promise<void> {
    await this.putKnown(digest.toString('hex'), async () => parts, done);
  }

  private async putKnown(hex: string, encode: () => Promise<Buffer | Buffer[]>, written: () => void): Promise<void> {
    let p = this.pending.get(hex);
    if (!p) {
      p = (async () => {
        if (await this.vault.hasChunk(hex)) return false;
        const file = await encode();
        // Read the counter after the await: `x += await …` would lose concurrent updates.
        const stored = await this.vault.writeChunk(hex, file, written);
        this.c.storedBytes += stored;
        this.c.written.add(hex);
        return true;
      })();
      this.pending.set(hex, p);
      p.finally(() => this.pending.delete(hex)).catch(() => undefined);
    }
    if (await p) this.c.newChunks++;
    else this.c.reusedChunks++;
  }
}

class ProgressMeter {
  private last = 0;
  private readonly t0: number;
  bytesDone = 0;
  constructor(
    private readonly vault: Vault,
    readonly bytesTotal: number,
    private readonly c: Counters,
    private readonly kind: 'full' | 'incremental',
    private readonly cb?: (p: BackupProgress) => void,
  ) {
    this.t0 = vault.env.monotonic();
  }
  tick(force = false): void {
    if (!this.cb) return;
    const now = this.vault.env.monotonic();
    if (!force && now - this.last < 100) return;
    this.last = now;
    const sec = Math.max(1e-3, (now - this.t0) / 1000);
    const rate = this.bytesDone / sec;
    this.cb({
      bytesDone: this.bytesDone,
      bytesTotal: this.bytesTotal,
      mbPerSec: rate / 1e6,
      etaSec: rate > 0 ? (this.bytesTotal - this.bytesDone) / rate : null,
      dedupRatio: this.bytesDone / Math.max(1, this.c.storedBytes),
      storedBytes: this.c.storedBytes,
      kind: this.kind,
    });
  }
}

function checkAbort(signal?: AbortSignal): void {
  if (signal?.aborted) throw new HoldfastError('CANCELLED', 'The backup was cancelled.');
}

export async function runBackup(source: SnapshotSource, vault: Vault, opts: BackupOptions = {}): Promise<SnapshotManifest> {
  const c: Counters = { readBytes: 0, storedBytes: 0, newChunks: 0, reusedChunks: 0, zeroChunks: 0, written: new Set() };
  const ownWorkers = !opts.workers;
  let workers: ChunkWorkers | null = opts.workers ?? null;
  let release: (() => Promise<void>) | null = null;
  let committed: SnapshotManifest | null = null;
  try {
    vault.assertWritable();
    checkAbort(opts.signal);
    if (source.size % vault.blockSize !== 0 && source.size % 512 !== 0)
      throw new HoldfastError('INVALID_SIZE', `Volume size ${source.size} is not a multiple of 512 bytes.`);
    workers ??= new ChunkWorkers(vault.keys);
    // Threads boot while the vault is prepared — unless this looks like a small incremental, which
    // packs faster on this thread than two workers take to boot (see INLINE_PACK_BYTES).
    const ch0 = source.changed;
    if (opts.full || !ch0 || ch0.count() * ch0.granularity > INLINE_PACK_BYTES) workers.start();
    release = await vault.beginWrite(source.backupId, opts.signal);

    const parent = await vault.newestOf(source.volume);
    const ch = source.changed;
    const incremental =
      !opts.full &&
      ch !== null &&
      parent !== null &&
      ch.parentSnapshotId === parent.id &&
      parent.size === source.size &&
      parent.blockSize === vault.blockSize &&
      parent.chunkSize === vault.chunkSize &&
      source.size % vault.blockSize === 0 &&
      (ch.granularity % vault.blockSize === 0 || vault.blockSize % ch.granularity === 0) &&
      // Past half the volume a full is cheaper to read, store and restore than a delta layer.
      ch.count() * ch.granularity <= source.size / 2;

    const inFlight = opts.inFlight ?? workers.size * 2 + 2;
    const store = new ChunkStore(vault, workers, c);
    const id = newSnapshotId(vault.env.now(), crypto.randomBytes(3));
    const createdAt = new Date(vault.env.now()).toISOString();

    let index: SnapshotIndex;
    let changedBytes = 0;
    if (incremental) {
      const r = await backupChanged(source, vault, store, c, inFlight, opts);
      index = r.index;
      changedBytes = r.changedBytes;
    } else index = await backupFull(source, vault, store, c, inFlight, opts);

    checkAbort(opts.signal);
    committed = await vault.commitSnapshot(
      {
        format: SNAPSHOT_FORMAT,
        version: FORMAT_VERSION,
        id,
        volume: source.volume,
        volumeId: source.volumeId,
        size: source.size,
        createdAt,
        policy: source.policy,
        kind: incremental ? 'incremental' : 'full',
        parent: incremental ? parent!.id : null,
        chunkSize: vault.chunkSize,
        blockSize: vault.blockSize,
        chainLength: incremental ? parent!.chainLength + 1 : 0,
        chainDeltaBytes: incremental ? parent!.chainDeltaBytes + changedBytes : 0,
        backupId: source.backupId,
        stats: { readBytes: c.readBytes, storedBytes: c.storedBytes, newChunks: c.newChunks, reusedChunks: c.reusedChunks, zeroChunks: c.zeroChunks },
      },
      index,
      c.written,
    );
  } catch (e) {
    const err = e instanceof HoldfastError ? e : e && (e as NodeJS.ErrnoException).code ? vaultIoError(e, vault.dir, 'backing up') : HoldfastError.fromPayload(toErrorPayload(e));
    await source.abort(err.message).catch(() => undefined);
    await release?.();
    if (ownWorkers) await workers?.close();
    throw err;
  }
  // The snapshot is durable: release the session (held writes go now), then tidy up.
  try {
    await source.end(committed.id);
    if (opts.consolidate !== false && needsConsolidation(committed))
      committed = await consolidateSnapshot(vault, committed.id, { workers: workers!, registered: true }).catch(() => committed!); // the incremental stands on its own; the next backup retries
  } finally {
    await release!();
    if (ownWorkers) await workers!.close();
  }
  return committed;
}

/** Whole volume, one chunk per region; zero regions are not stored; urgent regions first. */
async function backupFull(
  source: SnapshotSource,
  vault: Vault,
  store: ChunkStore,
  c: Counters,
  inFlight: number,
  opts: BackupOptions,
): Promise<SnapshotIndex> {
  const cs = vault.chunkSize;
  const n = regionCount(source.size, cs);
  const digests = Buffer.alloc(n * DIGEST_BYTES);
  const done = new Uint8Array(n);
  const meter = new ProgressMeter(vault, source.size, c, 'full', opts.onProgress);
  const window = new TaskWindow(inFlight * 2); // twice the slots: a chunk waiting for its fsync has given its slot back
  const slots = store.workers.slots(inFlight, cs);
  let next = 0;
  const pick = (): number => {
    for (const r of source.urgentRanges()) {
      const first = Math.floor(r.offset / cs);
      const last = Math.min(n - 1, Math.floor((r.offset + Math.max(1, r.length) - 1) / cs));
      for (let i = first; i <= last; i++) if (!done[i]) return i;
    }
    while (next < n && done[next]) next++;
    return next;
  };
  for (let count = 0; count < n; count++) {
    checkAbort(opts.signal);
    const i = pick();
    invariant(i < n && !done[i], 'each region is read once');
    done[i] = 1;
    const off = i * cs;
    const len = Math.min(cs, source.size - off);
    if (source.zeroAtBegin?.(off, len)) {
      // A hole of the volume's image file at begin: a zero chunk, nothing to read or hash.
      source.rangeCopied(off, len);
      c.zeroChunks++;
      ZERO_DIGEST.copy(digests, i * DIGEST_BYTES);
      meter.bytesDone += len;
      meter.tick();
      continue;
    }
    const slot = await slots.acquire();
    try {
      await readInto(source, off, slot.input.subarray(0, len));
    } catch (e) {
      slots.release(slot);
      throw e;
    }
    source.rangeCopied(off, len);
    c.readBytes += len;
    meter.bytesDone += len;
    await addWithSlot(window, slots, slot, async (done) => {
      const r = await store.workers.slotDigest(slot, len, true);
      if (r.zero) {
        c.zeroChunks++;
        ZERO_DIGEST.copy(digests, i * DIGEST_BYTES);
      } else {
        await store.putSlot(slot, len, r.digest, done);
        r.digest.copy(digests, i * DIGEST_BYTES);
      }
    });
    meter.tick();
  }
  await window.drain();
  meter.tick(true);
  return { kind: 'full', size: source.size, chunkSize: cs, blockSize: vault.blockSize, digests };
}

interface Run {
  first: number; // vault block
  count: number;
  changed: number; // changed blocks in it (the rest are gaps read through)
}

/** Coalesced runs of changed vault blocks, each at most one chunk long; gaps ≤ `slack` blocks are read through. */
function changedRuns(source: SnapshotSource, blockSize: number, perChunk: number): { runs: Run[]; changedBlocks: Uint32Array } {
  const ch = source.changed!;
  const g = ch.granularity;
  const nBlocks = source.size / blockSize;
  const changed: number[] = [];
  const each = ch.forEachChanged ? (fn: (k: number) => void) => ch.forEachChanged!(fn) : (fn: (k: number) => void) => {
    for (let k = 0, n = Math.ceil(source.size / g); k < n; k++) if (ch.isChanged(k)) fn(k);
  };
  if (g >= blockSize) {
    const per = g / blockSize;
    each((k) => {
      for (let b = k * per; b < Math.min(nBlocks, (k + 1) * per); b++) changed.push(b);
    });
  } else {
    const per = blockSize / g;
    each((k) => {
      const b = Math.floor(k / per);
      if (changed[changed.length - 1] !== b) changed.push(b); // ascending: a block's granules are adjacent
    });
  }
  // A gap block read through costs a 4 KiB copy into slot memory that may still be fresh (a page
  // fault, ~18 µs on a small VM) — about what a separate pread costs: only tiny gaps pay off
  // (measured on 1% scattered changes: 8 blocks ~5% slower than 2).
  const slack = 2;
  const runs: Run[] = [];
  for (const b of changed) {
    const last = runs[runs.length - 1];
    if (last && b - (last.first + last.count) <= slack && b - last.first < perChunk) {
      last.count = b - last.first + 1;
      last.changed++;
    } else runs.push({ first: b, count: 1, changed: 1 });
  }
  return { runs, changedBlocks: Uint32Array.from(changed) };
}

/** A delta chunk being assembled in a slot: raw runs (read now, or to be read by the worker) and which of their blocks it keeps. */
interface Pack {
  slot: ChunkSlot;
  /** Worker reads: fd, uncached fd or -1, position, length, slot offset. */
  reads: number[];
  /** Kept blocks, as block indexes into the slot's raw runs, ascending. */
  picks: number[];
  /** The volume block of each pick. */
  blocks: number[];
  runs: Run[];
  /** Slot blocks taken by raw runs. */
  raw: number;
}

/**
 * Only the changed blocks, packed in block order into delta chunks; unchanged ranges are
 * released at once. Where the source can locate its ranges in files, the chunk workers read
 * them straight into the slots (both cores; this thread only plans packs and writes files).
 */
async function backupChanged(
  source: SnapshotSource,
  vault: Vault,
  store: ChunkStore,
  c: Counters,
  inFlight: number,
  opts: BackupOptions,
): Promise<{ index: SnapshotIndex; changedBytes: number }> {
  const bs = vault.blockSize;
  const perChunk = vault.chunkSize / bs;
  // Delta chunks of at most DELTA_PACK_BYTES: the same few slots are refilled instead of every
  // pack touching fresh memory (page faults cost more than the copying), and restores of a
  // chain cache less.
  const perPack = Math.max(1, Math.min(perChunk, Math.floor(DELTA_PACK_BYTES / bs)));
  const { runs, changedBlocks } = changedRuns(source, bs, perChunk);
  const isChanged = (b: number) => {
    let lo = 0;
    let hi = changedBlocks.length;
    while (lo < hi) {
      const m = (lo + hi) >>> 1;
      if (changedBlocks[m]! < b) lo = m + 1;
      else hi = m;
    }
    return lo < changedBlocks.length && changedBlocks[lo] === b;
  };
  // Unchanged blocks are in the parent already: their held writes can go now.
  let pos = 0;
  for (const r of runs) {
    if (r.first * bs > pos) source.rangeCopied(pos, r.first * bs - pos);
    pos = (r.first + r.count) * bs;
  }
  if (pos < source.size) source.rangeCopied(pos, source.size - pos);

  const changedBytes = changedBlocks.length * bs;
  if (changedBytes > INLINE_PACK_BYTES) store.workers.start();
  const meter = new ProgressMeter(vault, changedBytes, c, 'incremental', opts.onProgress);
  const window = new TaskWindow(inFlight * 2); // twice the slots: a chunk waiting for its fsync has given its slot back
  const entryBlock: number[] = [];
  const entryChunk: number[] = [];
  const entrySlot: number[] = [];
  const chunkDigests: Buffer[] = [];
  // Packs in flight: one per worker and one being written are enough to keep both busy (packed
  // here: one being packed, one being written), and every further slot is fresh memory to fault
  // in — ~18 µs a page on a small VM, as much as the packing itself.
  const pool = new SlotLimit(store.workers.slots(inFlight, vault.chunkSize), store.workers.threadsStarted ? store.workers.size + 1 : 2);
  let pack: Pack | null = null;

  const flush = async () => {
    const p = pack;
    if (!p) return;
    pack = null;
    await addWithSlot(window, pool, p.slot, async (done) => {
      let r: Awaited<ReturnType<ChunkWorkers['slotPack']>>;
      try {
        r = await store.workers.slotPack(p.slot, Float64Array.from(p.reads), Uint32Array.from(p.picks), bs);
      } catch (e) {
        throw (e as NodeJS.ErrnoException).code && !(e instanceof HoldfastError)
          ? new HoldfastError('IO_ERROR', `Could not read volume "${source.volume}" for its backup: ${(e as Error).message}`, { volume: source.volume })
          : e;
      }
      if (p.reads.length) source.confirmLocated!();
      for (const run of p.runs) source.rangeCopied(run.first * bs, run.count * bs);
      c.readBytes += p.blocks.length * bs;
      meter.bytesDone += p.blocks.length * bs;
      const idx = r.digest ? chunkDigests.push(r.digest) - 1 : -1;
      let k = 0;
      for (let j = 0; j < p.blocks.length; j++) {
        entryBlock.push(p.blocks[j]!);
        entryChunk.push(r.zeroBlocks[j] ? ZERO_BLOCK_REF : idx);
        entrySlot.push(r.zeroBlocks[j] ? 0 : k++);
      }
      meter.tick();
      if (r.digest) await store.putParts(r.digest, ChunkWorkers.fileParts(p.slot, r.length, r), done);
    });
    // Planning packs is synchronous (and so are main-thread reads of small runs): let worker
    // replies and the file I/O of the packs in flight progress between packs.
    await new Promise<void>((r) => setImmediate(r));
  };

  const done = new Uint8Array(runs.length);
  const runStarts = Uint32Array.from(runs.map((r) => r.first));
  let next = 0;
  const pick = (): number => {
    for (const u of source.urgentRanges()) {
      const b0 = Math.floor(u.offset / bs);
      const b1 = Math.ceil((u.offset + u.length) / bs);
      let lo = 0;
      let hi = runStarts.length;
      while (lo < hi) {
        const m = (lo + hi) >>> 1;
        if (runStarts[m]! + runs[m]!.count <= b0) lo = m + 1;
        else hi = m;
      }
      for (let k = lo; k < runs.length && runStarts[k]! < b1; k++) if (!done[k]) return k;
    }
    while (next < runs.length && done[next]) next++;
    return next;
  };
  try {
    for (let count = 0; count < runs.length; count++) {
      checkAbort(opts.signal);
      const k = pick();
      invariant(k < runs.length && !done[k], 'each run is read once');
      done[k] = 1;
      const r = runs[k]!;
      invariant(r.count <= perChunk, 'a run is at most one chunk long (a slot holds a chunk)');
      if (pack && (pack.raw + r.count > perChunk || pack.picks.length + r.changed > perPack)) await flush();
      pack ??= { slot: await pool.acquire(), reads: [], picks: [], blocks: [], runs: [], raw: 0 };
      const at = pack.raw * bs;
      if (source.locate && source.pace) await source.pace(r.count * bs);
      const located = source.locate?.(r.first * bs, r.count * bs) ?? null;
      if (located) {
        let a = at;
        for (const piece of located) {
          pack.reads.push(piece.fd, piece.uncachedFd ?? -1, piece.position, piece.length, a);
          a += piece.length;
        }
        invariant(a === at + r.count * bs, 'located pieces cover the run');
      } else await readInto(source, r.first * bs, pack.slot.input.subarray(at, at + r.count * bs));
      for (let j = 0; j < r.count; j++) {
        if (j > 0 && j < r.count - 1 && !isChanged(r.first + j)) continue; // a gap read through (runs start and end on changed blocks)
        pack.picks.push(pack.raw + j);
        pack.blocks.push(r.first + j);
      }
      pack.raw += r.count;
      pack.runs.push(r);
    }
    await flush();
  } finally {
    if (pack) pool.release(pack.slot); // only after a failure: flush() hands every pack on
  }
  await window.drain();
  meter.tick(true);
  // Urgent-first reading can break block order; the index wants entries sorted by block.
  const order = entryBlock.map((_, i) => i).sort((a, b) => entryBlock[a]! - entryBlock[b]!);
  const index: SnapshotIndex = {
    kind: 'delta',
    size: source.size,
    chunkSize: vault.chunkSize,
    blockSize: bs,
    digests: Buffer.concat(chunkDigests, chunkDigests.length * DIGEST_BYTES),
    blocks: Uint32Array.from(order.map((i) => entryBlock[i]!)),
    chunkOf: Uint32Array.from(order.map((i) => entryChunk[i]!)),
    slotOf: Uint32Array.from(order.map((i) => entrySlot[i]!)),
  };
  return { index, changedBytes };
}
