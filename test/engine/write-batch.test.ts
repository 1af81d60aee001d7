/**
 * The batched write path: records staged in one event-loop turn reach the journal with one
 * vectored write before any of those writes is acknowledged or forwarded; held writes that a
 * later held write covers are not written to the device again at release; a batch that fails
 * to commit takes its held writes out of the queue and revives what they had superseded.
 */
import { describe, expect, it } from 'vitest';
import { BackupSession } from '../../src-main/engine/backup/backup-session';
import type { Env } from '../../src-main/engine/env/env';
import { FaultyEnv } from '../../src-main/engine/env/faulty-env';
import { NodeEnv } from '../../src-main/engine/env/node-env';
import { crc32, crc32Combine, decodeRecord, encodeHeaderInto, HEADER_SIZE, RecordType } from '../../src-main/engine/journal/format';
import { hookWrites, noProbe, openTestVolume, pattern, readImage, useTempDirs } from './helpers';

const mk = useTempDirs();

/** Counts write syscalls per file kind (journal segment or device image) through the Env seam. */
function countingEnv(): { env: Env; counts: { journal: number; device: number; deviceBytes: number } } {
  const counts = { journal: 0, device: 0, deviceBytes: 0 };
  const env = hookWrites(new NodeEnv(), (f, _op, buf, _pos, next) => {
    if (f.path.endsWith('.log')) counts.journal++;
    else {
      counts.device++;
      counts.deviceBytes += Array.isArray(buf) ? buf.reduce((s, b) => s + b.length, 0) : buf.length;
    }
    return next();
  });
  return { env, counts };
}

describe('record checksums', () => {
  it('crc32Combine equals the checksum of the concatenation, and records encoded with it decode', () => {
    for (const [la, lb] of [[0, 0], [1, 1], [40, 4096], [7, 65536], [32, 1 << 20], [13, 12345]] as const) {
      const a = Buffer.from(Array.from({ length: la }, (_, i) => (i * 31 + 7) & 0xff));
      const b = Buffer.from(Array.from({ length: lb }, (_, i) => (i * 17 + la) & 0xff));
      expect(crc32Combine(crc32(a), crc32(b), b.length)).toBe(crc32(Buffer.concat([a, b])));
    }
    // Table lookups for the first lengths seen, the shift loop past the table cache; each
    // length twice (the last table is reused), with every byte of crc(a) varying.
    for (let round = 0; round < 2; round++) {
      for (let k = 0; k < 20; k++) {
        const lb = 512 * (k + 1) + (k % 3);
        const a = Buffer.from(Array.from({ length: 40 }, (_, i) => (i * 97 + k * 13 + round) & 0xff));
        const b = Buffer.from(Array.from({ length: lb }, (_, i) => (i * 29 + k) & 0xff));
        expect(crc32Combine(crc32(a), crc32(b), lb)).toBe(crc32(Buffer.concat([a, b])));
        expect(crc32Combine(crc32(a), crc32(b), lb)).toBe(crc32(Buffer.concat([a, b])));
      }
    }
    const data = pattern(0x5a, 4096);
    const h = Buffer.alloc(HEADER_SIZE);
    encodeHeaderInto(h, RecordType.SUBMIT_DATA, 42, 8192, 4096, crc32(data), data, crc32(data));
    const r = decodeRecord(Buffer.concat([h, data]), 0);
    expect('record' in r && r.record.seq === 42 && r.record.payload.equals(data)).toBe(true);
  });
});

describe('batched journal commits', () => {
  it('writes issued together share one journal write, and each is in the file when it is acknowledged', async () => {
    const { env, counts } = countingEnv();
    const t = await openTestVolume(mk(), 'vol', 8 << 20, { env });
    const s = await BackupSession.begin(t.vol, 'b', 'volume', noProbe);
    const before = counts.journal;
    const acked: number[] = [];
    const ps = [];
    for (let i = 0; i < 64; i++)
      ps.push(
        t.vol.write(i * 4096, pattern(i + 1, 4096)).then(() => {
          // Acknowledged ⇒ its record (seq) is already written to the journal file.
          acked.push(t.vol.journal.committedSeq);
        }),
      );
    expect(counts.journal).toBe(before); // nothing written synchronously
    await Promise.all(ps);
    expect(counts.journal - before).toBe(1);
    expect(Math.min(...acked)).toBe(t.vol.journal.lastSeq);
    expect(t.vol.holdState().heldCount).toBe(64);
    await s.end('snap');
    for (let i = 0; i < 64; i++) expect(readImage(t.imagePath, i * 4096, 4096).equals(pattern(i + 1, 4096))).toBe(true);
    await t.vol.close();
  });

  it('writes that are not held reach the device only after their batch is in the journal', async () => {
    const env = new FaultyEnv(new NodeEnv());
    const t = await openTestVolume(mk(), 'vol', 8 << 20, { env });
    env.inject({ op: 'write', path: 'journal', error: 'EIO' });
    const ps = [0, 1, 2].map((i) => t.vol.write(i * 4096, pattern(i + 5, 4096)));
    for (const p of ps) await expect(p).rejects.toMatchObject({ code: 'IO_ERROR' });
    for (let i = 0; i < 3; i++) expect(readImage(t.imagePath, i * 4096, 4096).equals(pattern(0, 4096))).toBe(true);
    await t.vol.write(0, pattern(9, 4096));
    expect(readImage(t.imagePath, 0, 4096).equals(pattern(9, 4096))).toBe(true);
    await t.vol.close();
  });
});

describe('superseded held writes', () => {
  it('rewrites of the same blocks during a backup are released as one device write per block, adjacent ones coalesced, in arrival order', async () => {
    const { env, counts } = countingEnv();
    const t = await openTestVolume(mk(), 'vol', 8 << 20, { env });
    const s = await BackupSession.begin(t.vol, 'b', 'volume', noProbe);
    // Each round: blocks 0–7 and 9 rewritten (4 KiB), then one 8 KiB write over blocks 8–9 that
    // must land after the 4 KiB write to block 9 of the same round (arrival order across offsets).
    const round = (n: number, ps: Promise<void>[]) => {
      for (const b of [0, 1, 2, 3, 4, 5, 6, 7, 9]) ps.push(t.vol.write(b * 4096, pattern((n + b) & 0xff, 4096)));
      ps.push(t.vol.write(8 * 4096, pattern((n + 100) & 0xff, 8192)));
    };
    const model = Buffer.alloc(10 * 4096);
    for (let r = 0; r < 50; r++) {
      const ps: Promise<void>[] = [];
      round(r, ps);
      await Promise.all(ps);
      for (const b of [0, 1, 2, 3, 4, 5, 6, 7, 9]) pattern((r + b) & 0xff, 4096).copy(model, b * 4096);
      pattern((r + 100) & 0xff, 8192).copy(model, 8 * 4096);
      expect((await t.vol.read(0, model.length)).equals(model)).toBe(true);
    }
    expect(t.vol.holdState().heldCount).toBe(50 * 10);
    const devBefore = counts.device;
    const bytesBefore = counts.deviceBytes;
    await s.end('snap');
    expect(t.vol.holdState().heldCount).toBe(0);
    expect(readImage(t.imagePath, 0, model.length).equals(model)).toBe(true);
    // 500 held writes; only the newest at each start offset writes: nine 4 KiB and one 8 KiB,
    expect(counts.deviceBytes - bytesBefore).toBe(9 * 4096 + 8192);
    // in three device writes: blocks 0–7 in one, then 9, then 8–9 (it shares block 9 with the
    // write before it, so it goes in a later batch).
    expect(counts.device - devBefore).toBe(3);
    await t.vol.close();
  });

  it('ack mode device: a held write is acknowledged only once its bytes (or newer ones) survive a crash', async () => {
    // Regression (crash harness, run 78): a superseded entry was released as a no-op — and, in
    // ack mode device, acknowledged — while its superseder was still held with only an intent
    // record, so a crash then left the bytes from before both writes.
    const d = mk();
    const t = await openTestVolume(d, 'vol', 8 << 20, { ackMode: 'device' });
    await t.vol.write(0, pattern(1, 4096));
    const s = await BackupSession.begin(t.vol, 'b', 'range', noProbe);
    let aAcked = false;
    const a = t.vol.write(0, pattern(2, 4096)).then(() => void (aAcked = true));
    const w = t.vol.write(0, pattern(3, 4096));
    a.catch(() => undefined);
    w.catch(() => undefined);
    s.rangeCopied(1 << 20, 1 << 20); // another range: a release pass runs, block 0 is not copied yet
    await new Promise((r) => setTimeout(r, 50));
    await t.vol.abandon();
    await t.file.close();
    const r = await t.reopen();
    const bytes = readImage(t.imagePath, 0, 4096);
    if (aAcked) expect(bytes.equals(pattern(2, 4096)) || bytes.equals(pattern(3, 4096)), 'an acknowledged write survives').toBe(true);
    expect(aAcked, 'block 0 is not copied: the write is still held, so not acknowledged').toBe(false);
    await r.vol.close();
  });

  it('a crash before release redoes the journal in order and ends with the newest bytes', async () => {
    const d = mk();
    const t = await openTestVolume(d);
    await BackupSession.begin(t.vol, 'b', 'volume', noProbe);
    for (let i = 1; i <= 20; i++) await t.vol.write(0, pattern(i, 4096));
    await t.vol.flush();
    await t.vol.abandon();
    await t.file.close();
    const r = await t.reopen();
    expect(r.report.redone).toBe(20);
    expect(readImage(t.imagePath, 0, 4096).equals(pattern(20, 4096))).toBe(true);
    await r.vol.close();
  });

  it('a held write whose batch fails to commit leaves the queue and the write it superseded applies again', async () => {
    const env = new FaultyEnv(new NodeEnv());
    const t = await openTestVolume(mk(), 'vol', 8 << 20, { env });
    const s = await BackupSession.begin(t.vol, 'b', 'volume', noProbe);
    await t.vol.write(0, pattern(1, 4096));
    env.inject({ op: 'write', path: 'journal', error: 'ENOSPC' });
    await expect(t.vol.write(0, pattern(2, 4096))).rejects.toMatchObject({ code: 'NO_SPACE' });
    expect(t.vol.holdState().heldCount).toBe(1);
    expect((await t.vol.read(0, 4096)).equals(pattern(1, 4096))).toBe(true);
    await s.end('snap');
    expect(readImage(t.imagePath, 0, 4096).equals(pattern(1, 4096))).toBe(true);
    await t.vol.close();
  });
});
