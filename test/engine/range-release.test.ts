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
