/**
 * The chunk codec's encodeInto (no chunk-sized allocation) against encode(), and the worker
 * pool's shared slots and long-lived per-vault pools.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import * as zstd from 'zstd-napi';
import { afterEach, describe, expect, it } from 'vitest';
import { makeChunkCodec, type CodecKeys } from '../../src-main/engine/vault/chunk-codec';
import { ChunkWorkers, type ChunkSlot } from '../../src-main/engine/vault/chunk-workers';
import { ChunkWorkerPools } from '../../src-main/engine/vault/worker-pools';
import type { Vault } from '../../src-main/engine/vault/vault';

const zstdBinding = createRequire(import.meta.url)('zstd-napi/binding');
const MiB = 1 << 20;

const plain: CodecKeys = { encKey: null, idKey: null, level: 3 };
const sealed: CodecKeys = { encKey: crypto.randomBytes(32), idKey: crypto.randomBytes(32), level: 3 };

function samples(): Record<string, Buffer> {
  const text = Buffer.alloc(MiB, 'Holdfast keeps every acknowledged write. ');
  const random = crypto.randomBytes(MiB);
  const mixed = Buffer.concat([text.subarray(0, MiB / 2), random.subarray(0, MiB / 2)]);
  return { text, random, mixed, tiny: Buffer.from('x'), zeros: Buffer.alloc(4096) };
}

describe('encodeInto', () => {
  for (const [label, keys] of [
    ['plain vault', plain],
    ['encrypted vault', sealed],
  ] as const) {
    for (const withBinding of [true, false]) {
      it(`${label}, ${withBinding ? 'zstd binding' : 'no binding'}: decodes to the plaintext and compresses like encode()`, () => {
        const codec = makeChunkCodec({ crypto, zstd, zstdBinding: withBinding ? zstdBinding : null, keys });
        for (const [name, data] of Object.entries(samples())) {
          const hex = codec.digest(data).toString('hex');
          const out = Buffer.alloc(data.length + 64, 0xee);
          const n = codec.encodeInto(data, hex, out);
          const file = out.subarray(0, n);
          expect(codec.decode(Buffer.from(file), hex).equals(data), name).toBe(true);
          const reference = codec.encode(data, hex);
          expect(file[4], `${name}: same flags as encode()`).toBe(reference[4]);
          expect(Math.abs(n - reference.length), `${name}: same size as encode()`).toBeLessThanOrEqual(n > 4096 ? 64 : 0);
          if (name === 'text') expect(n).toBeLessThan(data.length / 10);
          if (name === 'random') expect(n).toBeGreaterThanOrEqual(data.length);

          const back = Buffer.alloc(data.length + 7, 0xcc);
          expect(codec.decodeInto(file, hex, back), `${name}: decodeInto length`).toBe(data.length);
          expect(back.subarray(0, data.length).equals(data), `${name}: decodeInto bytes`).toBe(true);
          const flipped = Buffer.from(file);
          flipped[Math.floor(flipped.length / 2)]! ^= 0x10;
          expect(() => codec.decodeInto(flipped, hex, back), `${name}: a flipped bit is found`).toThrow(/damaged/);
          if (data.length > 1) expect(() => codec.decodeInto(file, hex, Buffer.alloc(data.length - 1)), `${name}: too small`).toThrow(/damaged/);
        }
      });
    }
  }

  it('refuses a destination too small to hold a stored chunk', () => {
    const codec = makeChunkCodec({ crypto, zstd, zstdBinding, keys: plain });
    expect(() => codec.encodeInto(crypto.randomBytes(4096), 'x', Buffer.alloc(4096))).toThrow(/too small/);
  });
});

describe('chunk worker slots', () => {
  let pool: ChunkWorkers | null = null;
  afterEach(async () => {
    await pool?.close();
    pool = null;
  });

  it('zero-checks, digests and encodes in place; slots are handed out one holder at a time', async () => {
    pool = new ChunkWorkers(sealed, 2);
    const slots = pool.slots(2, MiB);
    expect(slots.size, 'at least two slots per worker plus two').toBe(6);
    const local = makeChunkCodec({ crypto, zstd, keys: sealed });
    const taken = await Promise.all(Array.from({ length: 6 }, () => slots.acquire()));
    expect(new Set(taken.map((s) => s.index)).size).toBe(6);
    const [a, b] = taken as [ChunkSlot, ChunkSlot];
    let seventh = false;
    const waiting = slots.acquire().then((s) => ((seventh = true), s));
    await new Promise((r) => setTimeout(r, 20));
    expect(seventh, 'a seventh holder waits while every slot is taken').toBe(false);

    a.input.fill(0, 0, MiB);
    expect(await pool.slotDigest(a, MiB, true)).toEqual({ zero: true });
    const data = samples().mixed;
    data.copy(b.input);
    const d = await pool.slotDigest(b, data.length, true);
    expect(d.zero).toBe(false);
    const hex = (d as { digest: Buffer }).digest.toString('hex');
    expect(hex).toBe(local.digest(data).toString('hex'));
    const enc = await pool.slotEncode(b, data.length, hex);
    expect(enc.plainTail, 'an encrypted chunk is never stored as plain').toBe(false);
    expect(local.decode(Buffer.concat(ChunkWorkers.fileParts(b, data.length, enc)), hex).equals(data)).toBe(true);
    // Decode in place: the encoded file sits in the output half, the plaintext lands in the input half.
    const file = Buffer.from(b.output.subarray(0, enc.outLen));
    b.input.fill(0xaa);
    const dec = await pool.slotDecode(b, file.length, hex, 64 * 1024);
    expect(dec.length).toBe(data.length);
    expect(b.input.subarray(0, data.length).equals(data)).toBe(true);
    expect([...dec.zeroPieces!]).toEqual(new Array(16).fill(0));
    b.output[20]! ^= 1;
    await expect(pool.slotDecode(b, file.length, hex)).rejects.toMatchObject({ code: 'VAULT_CORRUPT' });

    a.input.fill(0);
    a.input.fill(7, 3 * 65536, 3 * 65536 + 1);
    const sparseHex = ((await pool.slotDigest(a, MiB, false)) as { digest: Buffer }).digest.toString('hex');
    const sparse = await pool.slotEncode(a, MiB, sparseHex);
    const z = await pool.slotDecode(a, sparse.outLen, sparseHex, 64 * 1024);
    expect([...z.zeroPieces!].map((v, k) => (v ? -1 : k)).filter((k) => k >= 0), 'only the piece with a byte set is not zero').toEqual([3]);

    slots.release(a);
    expect((await waiting).index).toBe(a.index);
    expect(() => slots.release(b) ?? slots.release(b)).toThrow(/released once/);
  });
});

describe('chunk worker threads start as work needs them', () => {
  const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest();

  it('one thread serves work that comes one piece at a time; work waiting while it is busy starts the next', async () => {
    const pool = new ChunkWorkers(plain, 2);
    try {
      expect([pool.threads, pool.size]).toEqual([0, 2]);
      for (let i = 0; i < 5; i++) {
        const b = crypto.randomBytes(64 << 10);
        const want = sha(b);
        expect((await pool.digest(b)).digest.equals(want)).toBe(true);
      }
      expect(pool.threads, 'a backup reading slower than one worker packs: one thread').toBe(1);
      expect(pool.size).toBe(2);
      const many = Array.from({ length: 8 }, () => crypto.randomBytes(4 << 20));
      const want = many.map(sha);
      const got = await Promise.all(many.map((b) => pool.digest(b)));
      got.forEach((g, i) => expect(g.digest.equals(want[i]!), `digest ${i}`).toBe(true));
      expect(pool.threads, 'work piled up behind a busy thread: the second started').toBe(2);
    } finally {
      await pool.close();
    }
  });

  it('whenUp starts the pool and resolves once its first thread has booted (at once when one is up or the pool is closed)', async () => {
    const pool = new ChunkWorkers(plain, 2);
    try {
      expect(pool.booted).toBe(false);
      await pool.whenUp(10_000);
      expect([pool.booted, pool.threads]).toEqual([true, 1]);
      const t0 = performance.now();
      await pool.whenUp(10_000);
      expect(performance.now() - t0).toBeLessThan(50);
    } finally {
      await pool.close();
    }
    const closing = new ChunkWorkers(plain, 1);
    const waiting = closing.whenUp(60_000);
    await closing.close();
    await waiting; // the close let it go (the test would time out otherwise)
  });

  it('a thread that dies is replaced by one not started yet; once every thread died, work is refused', async () => {
    const pool = new ChunkWorkers(plain, 2);
    const threads = () => (pool as unknown as { workers: { terminate(): Promise<number> }[] }).workers;
    try {
      await pool.digest(Buffer.from('boot'));
      expect(pool.threads).toBe(1);
      await threads()[0]!.terminate();
      await new Promise((r) => setTimeout(r, 20));
      expect([pool.threads, pool.size]).toEqual([0, 1]);
      const b = crypto.randomBytes(4096);
      const want = sha(b);
      expect((await pool.digest(b)).digest.equals(want), 'the second thread took the work').toBe(true);
      expect(pool.threads).toBe(1);
      await threads()[0]!.terminate();
      await new Promise((r) => setTimeout(r, 20));
      expect(pool.size).toBe(0);
      await expect(pool.digest(Buffer.from('late'))).rejects.toMatchObject({ code: 'INTERNAL' });
    } finally {
      await pool.close();
    }
  });
});

describe('incompressible chunks in an unencrypted vault', () => {
  it('are written as header + the slot input itself (no copy), and decode back', async () => {
    const pool = new ChunkWorkers(plain, 1);
    try {
      const slots = pool.slots(1, MiB);
      const s = await slots.acquire();
      const random = crypto.randomBytes(MiB);
      random.copy(s.input);
      const e = await pool.slotPack(s, new Float64Array(0), Uint32Array.from({ length: MiB / 4096 }, (_, i) => i), 4096);
      expect(e.digest!.equals(crypto.createHash('sha256').update(random).digest()), 'a plain vault names chunks by SHA-256').toBe(true);
      expect(e).toMatchObject({ outLen: 8, plainTail: true });
      const parts = ChunkWorkers.fileParts(s, MiB, e);
      expect(parts[1]!.buffer, 'the body is the slot input, not a copy').toBe(s.input.buffer);
      const local = makeChunkCodec({ crypto, zstd, keys: plain });
      const file = Buffer.concat(parts);
      expect(file.equals(local.encode(random, e.digest!.toString('hex'))), 'same bytes as encode()').toBe(true);
      const text = samples().text;
      text.copy(s.input);
      const hex = ((await pool.slotDigest(s, text.length, false)) as { digest: Buffer }).digest.toString('hex');
      const t = await pool.slotEncode(s, text.length, hex);
      expect(t.plainTail).toBe(false);
      expect(local.decode(Buffer.concat(ChunkWorkers.fileParts(s, text.length, t)), hex).equals(text)).toBe(true);
      slots.release(s);
    } finally {
      await pool.close();
    }
  });
});

describe('slotPack (delta chunks gathered by the workers)', () => {
  for (const where of ['on the calling thread before a worker has booted', 'in a booted worker'] as const)
  it(`${where}: reads located pieces from a real file, keeps the picked non-zero blocks in order, and reads past the end as zeroes`, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hf-slotpack-'));
    const pool = new ChunkWorkers(sealed, 2);
    try {
      if (where === 'in a booted worker') await pool.digest(Buffer.from('boot')); // a worker's ready message precedes its reply
      expect(pool.booted).toBe(where === 'in a booted worker');
      const file = path.join(dir, 'dev.img');
      const B = 4096;
      const dev = crypto.randomBytes(64 * B);
      dev.fill(0, 5 * B, 6 * B); // block 5 is all zero
      fs.writeFileSync(file, dev);
      const fd = fs.openSync(file, 'r');
      const slots = pool.slots(2, 16 * B);
      const s = await slots.acquire();
      s.input.fill(0xee);
      // Raw runs in the slot: device blocks 3..6 at slot block 0, blocks 40..41 at slot block 4 (two
      // pieces, as across an extent boundary), block 63 plus one block past the file's end at 6.
      const reads = Float64Array.from([fd, -1, 3 * B, 4 * B, 0, fd, -1, 40 * B, B, 4 * B, fd, -1, 41 * B, B, 5 * B, fd, -1, 63 * B, 2 * B, 6 * B]);
      // Keep device blocks 3, 5 (zero), 6, 41, 63 and the block past the end (zero); 4 and 40 are gaps.
      const picks = Uint32Array.from([0, 2, 3, 5, 6, 7]);
      const r = await pool.slotPack(s, reads, picks, B);
      expect([...r.zeroBlocks]).toEqual([0, 1, 0, 0, 0, 1]);
      const kept = Buffer.concat([dev.subarray(3 * B, 4 * B), dev.subarray(6 * B, 7 * B), dev.subarray(41 * B, 42 * B), dev.subarray(63 * B, 64 * B)]);
      expect(r.length).toBe(kept.length);
      expect(s.input.subarray(0, kept.length).equals(kept), 'kept blocks packed from the slot start').toBe(true);
      const local = makeChunkCodec({ crypto, zstd, keys: sealed });
      const hex = r.digest!.toString('hex');
      expect(hex).toBe(local.digest(kept).toString('hex'));
      expect(local.decode(Buffer.concat(ChunkWorkers.fileParts(s, r.length, r)), hex).equals(kept)).toBe(true);

      const allZero = await pool.slotPack(s, Float64Array.from([fd, -1, 5 * B, B, 0]), Uint32Array.from([0]), B);
      expect(allZero).toMatchObject({ length: 0, digest: null });

      fs.closeSync(fd);
      await expect(pool.slotPack(s, Float64Array.from([fd, -1, 0, B, 0]), Uint32Array.from([0]), B), 'a closed descriptor').rejects.toMatchObject({ code: 'EBADF' });
      await expect(pool.slotPack(s, new Float64Array(0), Uint32Array.from([3, 2]), B)).rejects.toThrow(/ascend/);
      await expect(pool.slotPack(s, Float64Array.from([0, -1, 0, B, 16 * B]), Uint32Array.from([0]), B)).rejects.toThrow(/overruns/);
      slots.release(s);
    } finally {
      await pool.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('ChunkWorkerPools', () => {
  it('reuses one pool per vault while leased, and closes it after it has been idle', async () => {
    const pools = new ChunkWorkerPools(50);
    const vault = { keys: plain } as unknown as Vault;
    const l1 = pools.lease(vault);
    const l2 = pools.lease(vault);
    expect(l2.workers).toBe(l1.workers);
    l1.release();
    l2.release();
    expect(() => l2.release()).toThrow(/returned once/);
    const again = pools.lease(vault);
    expect(again.workers, 'a lease within the idle time gets the same pool').toBe(l1.workers);
    again.release();
    await new Promise((r) => setTimeout(r, 150));
    const fresh = pools.lease(vault);
    expect(fresh.workers, 'an idle pool is retired').not.toBe(l1.workers);
    await expect(l1.workers.digest(Buffer.from('x'))).rejects.toMatchObject({ code: 'CANCELLED' });
    fresh.release();
    await pools.close();
    expect(() => pools.lease(vault)).toThrow(/shutting down/);
  });
});
