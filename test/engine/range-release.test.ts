/**
 * Range policy under a random load: many overlapping writes of every size (some spanning
 * region boundaries, some held only because they overlap an earlier held write) while ranges
 * are marked copied in random order. Release passes look only at the regions that changed
 * (LiveVolume.pickFromPendingRegions); this checks they decide as a walk over the whole queue
 * would:
 * - safety: no block the backup has not copied changes on the device while the backup runs;
 * - order: overlapping writes reach the device in arrival order (the image equals the writes
 *   applied in issue order);
 * - liveness: once every range is copied the hold queue drains before `end`, nothing left behind.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BackupSession } from '../../src-main/engine/backup/backup-session';
import { HeldWrite } from '../../src-main/engine/holds/hold-queue';
import { inOffsetOrder } from '../../src-main/engine/volumes/live-volume';
import { noProbe, openTestVolume, readImage, rng, useTempDirs } from './helpers';

const mk = useTempDirs();
const MiB = 1 << 20;
const BLOCK = 4096;


async function waitUntil(cond: () => boolean, ms: number): Promise<boolean> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
  return true;
}

/**
 * `steps` operations, a write with probability `writeP` (a large one, up to 1.5 MiB, with
 * probability `bigP`); copies are a few blocks or a run of 64 up to 64 + `runMax` blocks, none
 * in the first `holdFirst` steps. Thousands of small writes held, then long runs copied, make
 * picks of thousands of candidates, offered over many release passes while writes keep arriving.
 */
async function randomRun(seed: number, ackMode: 'journal' | 'device', steps = 1500, writeP = 0.8, runMax = 256, bigP = 0.15, holdFirst = 0, size = 16 * MiB): Promise<void> {
  const rand = rng(seed);
  const t = await openTestVolume(mk(), 'vol', size, { ackMode, capacity: 256 * MiB });
  const initial = crypto.randomBytes(size);
  await t.vol.write(0, initial);
  const model = Buffer.from(initial);
  const s = await BackupSession.begin(t.vol, 'r', 'range', noProbe);
  const copied = new Uint8Array(size / BLOCK);
  const order = [...Array(size / BLOCK).keys()].sort(() => rand() - 0.5);
  let nextCopy = 0;
  const pending: Promise<void>[] = [];
  let fill = 0;

  const checkUncopiedUntouched = () => {
    const img = fs.readFileSync(t.imagePath);
    for (let b = 0; b < copied.length; b++) {
      if (copied[b]) continue;
      const o = b * BLOCK;
      if (!img.subarray(o, o + BLOCK).equals(initial.subarray(o, o + BLOCK)))
        throw new Error(`seed ${seed}: block ${b} changed on the device before the backup copied it`);
    }
  };

  for (let step = 0; step < steps; step++) {
    const r = rand();
    if (r < writeP) {
      // Sizes from one sector to 1.5 MiB; offsets biased to region edges and to a hot area.
      const len = rand() >= bigP ? (1 + Math.floor(rand() * 16)) * 512 : (1 + Math.floor(rand() * 3072)) * 512;
      let off: number;
      const pick = rand();
      if (pick < 0.3) off = (1 + Math.floor(rand() * 15)) * MiB - Math.floor(rand() * 16) * 512;
      else if (pick < 0.5) off = 5 * MiB + Math.floor(rand() * 64) * 512;
      else off = Math.floor(rand() * (size / 512)) * 512;
      off = Math.max(0, Math.min(off, size - len));
      const data = Buffer.alloc(len, (++fill % 251) + 1);
      data.writeUInt32LE(step, 0);
      data.copy(model, off);
      pending.push(t.vol.write(off, data));
    } else if (r < writeP + (1 - writeP) * 0.75 && step >= holdFirst) {
      // Copy a few blocks, sometimes a whole run of them.
      const n = rand() < 0.7 ? 1 + Math.floor(rand() * 8) : 64 + Math.floor(rand() * runMax);
      for (let k = 0; k < n && nextCopy < order.length; k++) {
        const b = order[nextCopy++]!;
        copied[b] = 1;
        s.rangeCopied(b * BLOCK, BLOCK);
      }
    } else {
      await new Promise((res) => setImmediate(res));
    }
    if (step % 250 === 249) {
      if (ackMode === 'journal') await Promise.all(pending.splice(0));
      await new Promise((res) => setTimeout(res, 5));
      checkUncopiedUntouched();
      // Reads see held writes: the volume reads as every issued write applied in order.
      if (ackMode === 'journal') {
        const got = await t.vol.read(0, size);
        if (!got.equals(model)) {
          let i = 0;
          while (got[i] === model[i]) i++;
          let j = i;
          while (j < size && got[j] !== model[j]) j++;
          const img = fs.readFileSync(t.imagePath);
          throw new Error(`seed ${seed} step ${step}: read differs at ${i}..${j} (block ${i / BLOCK}, copied ${copied[Math.floor(i / BLOCK)]}): got ${got[i]} model ${model[i]} device ${img[i]} initial ${initial[i]}; ${t.vol.holdState().heldCount} held`);
        }
      }
    }
  }
  checkUncopiedUntouched();
  // Copy the rest: every held write must leave the queue while the backup still runs.
  while (nextCopy < order.length) {
    const b = order[nextCopy++]!;
    copied[b] = 1;
    s.rangeCopied(b * BLOCK, BLOCK);
  }
  const drained = await waitUntil(() => t.vol.holdState().heldCount === 0, 10_000);
  expect(drained, `seed ${seed}: ${t.vol.holdState().heldCount} writes still held after every range was copied`).toBe(true);
  await Promise.all(pending);
  expect(readImage(t.imagePath, 0, size).equals(model), `seed ${seed}: the device equals the writes in issue order`).toBe(true);
  await s.end('snap');
  await t.vol.close();
}

describe('range policy release under a random load', () => {
  for (const ackMode of ['journal', 'device'] as const) {
    it(`ack mode ${ackMode}: nothing uncopied changes, overlapping writes land in order, the queue drains once all is copied`, async () => {
      const base = Number(process.env.HOLDFAST_SEED ?? Date.now() % 1_000_000);
      for (let i = 0; i < 4; i++) await randomRun(base + i, ackMode);
    }, 120_000);
  }
  it('long picks: thousands of held writes released over many passes while writes keep arriving', async () => {
    const base = Number(process.env.HOLDFAST_SEED ?? Date.now() % 1_000_000);
    for (const ackMode of ['journal', 'device'] as const) await randomRun(base + 100, ackMode, 8000, 0.97, 2048, 0, 5000);
    // 64 regions: more pending at once than one pick takes (PICK_REGIONS).
    await randomRun(base + 200, 'journal', 4000, 0.97, 8192, 0, 2500, 64 * MiB);
  }, 120_000);
});

describe('a released batch leaves the queue over several turns', () => {
  it('meanwhile reads see every write and a write over a block still queued lands after it', async () => {
    const t = await openTestVolume(mk(), 'vol', 8 * MiB);
    const s = await BackupSession.begin(t.vol, 'r', 'range', noProbe);
    // 1000 held writes in the first 4 MiB, one per block, in a shuffled order.
    const rand = rng(7);
    const blocks = [...Array(1000).keys()].sort(() => rand() - 0.5);
    await Promise.all(blocks.map((b) => t.vol.write(b * BLOCK, Buffer.alloc(BLOCK, (b % 250) + 1))));
    expect(t.vol.holdState().heldCount).toBe(1000);
    s.rangeCopied(0, 4 * MiB);
    // One batch takes all 1000; it leaves the queue in slices: catch a moment between two.
    let seen = -1;
    for (let i = 0; i < 10_000; i++) {
      await new Promise((r) => setImmediate(r));
      seen = t.vol.holdState().heldCount;
      if (seen > 0 && seen < 1000) break;
    }
    expect(seen, 'caught between two slices').toBeGreaterThan(0);
    expect(seen).toBeLessThan(1000);
    // The newest held write is taken out last: a write over its block must wait for it.
    const last = blocks[blocks.length - 1]!;
    const over = t.vol.write(last * BLOCK, Buffer.alloc(BLOCK, 0xee));
    const got = await t.vol.read(0, 4 * MiB);
    for (let b = 0; b < 1024; b++) {
      const want = b === last ? 0xee : b < 1000 ? (b % 250) + 1 : 0;
      expect(got[b * BLOCK], `block ${b}`).toBe(want);
    }
    await over;
    const drained = await waitUntil(() => t.vol.holdState().heldCount === 0, 10_000);
    expect(drained).toBe(true);
    expect(readImage(t.imagePath, last * BLOCK, BLOCK).equals(Buffer.alloc(BLOCK, 0xee))).toBe(true);
    expect(readImage(t.imagePath, blocks[0]! * BLOCK, BLOCK).equals(Buffer.alloc(BLOCK, (blocks[0]! % 250) + 1))).toBe(true);
    await s.end('snap');
    await t.vol.close();
  });
});

describe('inOffsetOrder', () => {
  const w = (seq: number, offset: number, length = BLOCK) => new HeldWrite(seq, offset, length, null, 0);
  const offsets = (ws: HeldWrite[]) => ws.map((x) => x.offset);
  it('orders a dense batch by slot, a sparse one and one that breaks the one-write-per-block rule by comparison', () => {
    const rand = rng(3);
    const dense = [...Array(1024).keys()].sort(() => rand() - 0.5).map((b, i) => w(i + 1, 64 * MiB + b * BLOCK));
    expect(offsets(inOffsetOrder(dense))).toEqual(offsets(dense).sort((a, b) => a - b));
    // Sector-sized writes in distinct blocks, some not block-aligned.
    const unaligned = [w(1, 9 * BLOCK + 512, 512), w(2, 3 * BLOCK, 8192), w(3, 7 * BLOCK + 1024, 1024), w(4, 0, 512)];
    expect(offsets(inOffsetOrder(unaligned))).toEqual([0, 3 * BLOCK, 7 * BLOCK + 1024, 9 * BLOCK + 512]);
    const sparse = [w(1, 2 ** 40), w(2, 5 * BLOCK), w(3, 2 ** 33), w(4, 0)];
    expect(offsets(inOffsetOrder(sparse))).toEqual([0, 5 * BLOCK, 2 ** 33, 2 ** 40]);
    const shared = [w(1, BLOCK + 512, 512), w(2, 2 * BLOCK), w(3, BLOCK, 512)];
    expect(offsets(inOffsetOrder(shared))).toEqual([BLOCK, BLOCK + 512, 2 * BLOCK]);
    expect(inOffsetOrder([])).toEqual([]);
  });
});
