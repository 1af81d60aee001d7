/**
 * A snapshot's regions in volume order, decoded a few regions ahead into the worker pool's
 * shared slots: the calling thread reads each base chunk file straight into a slot, a worker
 * decodes it in place (digest checked) and reports which pieces are all zero, delta blocks
 * are patched on top, and the visitor gets the region's bytes. Nothing chunk-sized is
 * allocated per region, so a restore runs at the speed of the disks instead of the page-fault
 * and garbage-collection rate of fresh buffers.
 *
 * Invariants: regions are visited in order, each exactly once, with bytes that equal
 * SnapshotReader.readRegion (every chunk used matched its name); `data` is valid only until
 * the visitor's promise settles (the slot is then reused); at most `ahead` regions are in
 * flight; on failure the first error is thrown after every in-flight region has settled, so no
 * worker still writes into a slot the caller might reuse.
 */
import { HoldfastError, invariant } from '../../../src-shared/errors';
import type { ChunkSlot, ChunkWorkers } from './chunk-workers';
import type { RegionPlan, SnapshotReader } from './snapshot-reader';
import { vaultIoError, type Vault } from './vault';

export interface RegionBytes {
  offset: number;
  length: number;
  /** null when the region is all zeroes (no chunk read at all). */
  data: Buffer | null;
  /** Per `zeroGrain` piece of data (the last may be short): 1 when all zero; pieces a delta block touched read 0. */
  zeroPieces: Uint8Array | null;
}

export interface PipelineOptions {
  ahead: number;
  /** When set, the worker reports which pieces of this size are all zero (sparse targets skip them). */
  zeroGrain?: number;
  signal?: AbortSignal;
}

/** Reads chunk file `hex` into buf; returns its length. A file larger than buf is corrupt (no chunk file is). */
async function readChunkFileInto(vault: Vault, hex: string, buf: Buffer): Promise<number> {
  let f;
  try {
    f = await vault.env.open(vault.chunkPath(hex), { readOnly: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new HoldfastError('VAULT_CORRUPT', `Chunk ${hex} is missing from the vault.`, { chunk: hex });
    throw vaultIoError(e, vault.dir, `reading chunk ${hex.slice(0, 12)}…`);
  }
  try {
    let n = 0;
    for (;;) {
      const r = await f.read(buf.subarray(n), n);
      if (r === 0) break;
      n += r;
      if (n === buf.length) {
        const probe = Buffer.alloc(1);
        if ((await f.read(probe, n)) > 0) throw new HoldfastError('VAULT_CORRUPT', `Chunk ${hex} is larger than any chunk can be.`, { chunk: hex });
        break;
      }
    }
    return n;
  } catch (e) {
    throw e instanceof HoldfastError ? e : vaultIoError(e, vault.dir, `reading chunk ${hex.slice(0, 12)}…`);
  } finally {
    await f.close().catch(() => undefined);
  }
}

/** Fills slot.input with region `plan`'s bytes; returns the zero map of the base (patched pieces cleared). */
async function decodeRegion(reader: SnapshotReader, workers: ChunkWorkers, slot: ChunkSlot, plan: RegionPlan, zeroGrain: number): Promise<Uint8Array | null> {
  const out = slot.input;
  let zeroPieces: Uint8Array | null = null;
  if (plan.base) {
    const fileLen = await readChunkFileInto(reader.vault, plan.base, slot.output);
    const r = await workers.slotDecode(slot, fileLen, plan.base, zeroGrain);
    if (r.length !== plan.length) throw new HoldfastError('VAULT_CORRUPT', `Chunk ${plan.base} has the wrong length for region ${plan.index}.`, { chunk: plan.base });
    zeroPieces = r.zeroPieces;
  } else {
    out.fill(0, 0, plan.length);
    if (zeroGrain) zeroPieces = new Uint8Array(Math.ceil(plan.length / zeroGrain)).fill(1);
  }
  const bs = reader.blockSize;
  for (const x of plan.patches) {
    const dst = x.at * bs;
    const n = Math.min(bs, plan.length - dst);
    if (x.chunk === null) out.fill(0, dst, dst + n);
    else {
      const c = await reader.chunk(x.chunk);
      if ((x.slot + 1) * bs > c.length + (bs - n))
        throw new HoldfastError('VAULT_CORRUPT', `Delta chunk ${x.chunk} is shorter than its index says.`, { chunk: x.chunk });
      c.copy(out, dst, x.slot * bs, x.slot * bs + n);
      if (zeroPieces) {
        // These pieces may no longer be zero: write them.
        zeroPieces[Math.floor(dst / zeroGrain)] = 0;
        zeroPieces[Math.floor((dst + n - 1) / zeroGrain)] = 0;
      }
    }
  }
  return zeroPieces;
}

export async function forEachRegion(
  reader: SnapshotReader,
  workers: ChunkWorkers,
  opts: PipelineOptions,
  visit: (r: RegionBytes) => Promise<void>,
): Promise<void> {
  const ahead = Math.max(1, opts.ahead);
  const slots = workers.slots(ahead, reader.chunkSize);
  const zeroGrain = opts.zeroGrain ?? 0;
  interface Pending {
    plan: RegionPlan;
    slot: ChunkSlot | null;
    ready: Promise<Uint8Array | null>;
  }
  const pending: Pending[] = [];
  let next = 0;
  const start = async (): Promise<void> => {
    const plan = reader.plan(next++);
    if (reader.isZeroPlan(plan)) {
      pending.push({ plan, slot: null, ready: Promise.resolve(null) });
      return;
    }
    const slot = await slots.acquire();
    const ready = decodeRegion(reader, workers, slot, plan, zeroGrain);
    ready.catch(() => undefined); // awaited in order below
    pending.push({ plan, slot, ready });
  };
  try {
    for (let i = 0; i < reader.regions; i++) {
      if (opts.signal?.aborted) throw new HoldfastError('CANCELLED', 'The restore was cancelled.');
      // Keep `ahead` regions decoding; the one visited next is always among them.
      while (next < reader.regions && pending.filter((p) => p.slot).length < ahead && next < i + ahead) await start();
      const p = pending.shift();
      invariant(p !== undefined, 'the region visited next has been started');
      invariant(p.plan.index === i, 'regions are visited in order');
      try {
        const zeroPieces = await p.ready;
        await visit({ offset: p.plan.offset, length: p.plan.length, data: p.slot ? p.slot.input.subarray(0, p.plan.length) : null, zeroPieces });
      } finally {
        if (p.slot) slots.release(p.slot);
      }
    }
  } finally {
    // After a failure: let in-flight decodes finish before their slots go back to the pool.
    for (const p of pending.splice(0)) {
      await p.ready.catch(() => undefined);
      if (p.slot) slots.release(p.slot);
    }
  }
}
