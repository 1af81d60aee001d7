/**
 * Where held writes' bytes live: in memory until their journal record is committed, then only in
 * the journal (ack mode journal), read back from it when a read overlays them or a release
 * writes them to the device; in memory until released in ack mode device.
 */
import fs from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { BackupSession } from '../../src-main/engine/backup/backup-session';
import { NodeEnv } from '../../src-main/engine/env/node-env';
import { HeldWrite, HoldQueue } from '../../src-main/engine/holds/hold-queue';
import { noProbe, openTestVolume, pattern, readImage, useTempDirs } from './helpers';

const mk = useTempDirs();

v8.setFlagsFromString('--expose-gc');
const fullGc = vm.runInNewContext('gc') as () => void;
/** Full collections, so memory still referenced is all that counts (array buffers are swept off-thread). */
async function gc(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    fullGc();
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** 4 KiB whose every 32-bit word names the block (`tag`) and its position: no two blocks alike. */
function block(tag: number): Buffer {
  const b = Buffer.alloc(4096);
  for (let i = 0; i < 1024; i++) b.writeUInt32LE((tag * 1024 + i) >>> 0, i * 4);
  return b;
}

describe('held payloads', () => {
  it('a held write in memory hands out views of its payload, gives it up when superseded and gets it back when the superseder is dropped', () => {
    const q = new HoldQueue(true);
    const a = new HeldWrite(1, 8192, 4096, Buffer.alloc(4096, 0xa1), 12.7);
    expect(a.heldAt).toBe(12);
    q.push(a);
    expect(a.data!.equals(Buffer.alloc(4096, 0xa1))).toBe(true);
    const b = new HeldWrite(2, 8192, 4096, Buffer.alloc(4096, 0xb2), 13);
    q.push(b);
    expect(a.superseded).toBe(true);
    expect(a.data).toBeNull();
    expect(a.hasData).toBe(false);
    // b's record failed to commit: b leaves, a is back with its own bytes.
    expect(q.dropSeqs(2, 2)).toBe(1);
    expect(a.superseded).toBe(false);
    expect(a.data!.equals(Buffer.alloc(4096, 0xa1))).toBe(true);
    expect(() => new HeldWrite(3, 0, 4096, Buffer.alloc(512), 0)).toThrow();
    const zero = new HeldWrite(4, 0, 4096, null, 0);
    expect(zero.data).toBeNull();
    expect(zero.hasData).toBe(false);
  });

  it('a held write in the journal keeps its memory until its record is committed, then reads its bytes back from the file', async () => {
    const dir = mk();
    const p = path.join(dir, 'segment.log');
    // Two records' payloads at 100 and 5000 (headers between them, as in a journal segment).
    const one = block(1);
    const two = block(2);
    const file = Buffer.alloc(9096, 0xee);
    one.copy(file, 100);
    two.copy(file, 5000);
    fs.writeFileSync(p, file);
    const f = await new NodeEnv().open(p);
    const q = new HoldQueue(true);
    const a = new HeldWrite(7, 0, 4096, Buffer.from(one), 0, f, 100);
    const b = new HeldWrite(8, 1 << 20, 4096, Buffer.from(two), 0, f, 5000);
    q.push(a);
    q.push(b);
    expect([a.inMemory, b.inMemory]).toEqual([true, true]);
    q.confirm(7); // a's batch is in the file, b's not yet
    expect([a.inMemory, b.inMemory]).toEqual([false, true]);
    expect(a.hasData).toBe(true);
    expect(a.data!.equals(one)).toBe(true);
    expect((await a.load())!.equals(one)).toBe(true);
    const part = Buffer.alloc(1000);
    a.copyTo(part, 0, 3000, 1000);
    expect(part.equals(one.subarray(3000, 4000))).toBe(true);
    // A read overlays only what it covers, read at once.
    const o = q.overlayOf(2048, 4096)!;
    expect(o).toHaveLength(1);
    expect(o[0]).toMatchObject({ offset: 2048, length: 2048 });
    expect(o[0]!.data!.equals(one.subarray(2048))).toBe(true);
    q.confirm(8);
    expect(b.inMemory).toBe(false);
    expect(b.data!.equals(two)).toBe(true);
    expect(() => a.copyTo(part, 0, 4000, 1000)).toThrow(/inside the payload/);
    // Released: the entry forgets where its bytes were.
    q.remove(a);
    expect(a.hasData).toBe(false);
    await f.close();
  });

  it('a volume holding 48 MiB of writes keeps almost none of it in memory, and every byte reaches the device', async () => {
    const t = await openTestVolume(mk(), 'vol', 64 << 20, { capacity: 128 << 20 });
    const s = await BackupSession.begin(t.vol, 'b', 'volume', noProbe);
    await gc();
    const before = process.memoryUsage().arrayBuffers;
    // NBD-like: each payload a view of a larger socket buffer, never changed afterwards (stable).
    const n = (48 << 20) / 4096;
    for (let i = 0; i < n; i += 16) {
      const sock = Buffer.concat(Array.from({ length: 16 }, (_, k) => block(i + k)));
      const acks: Promise<void>[] = [];
      for (let k = 0; k < 16; k++) acks.push(t.vol.write((i + k) * 4096, sock.subarray(k * 4096, (k + 1) * 4096), { stable: true }));
      await Promise.all(acks);
    }
    expect(t.vol.holdState().heldBytes).toBe(48 << 20);
    await gc();
    const kept = process.memoryUsage().arrayBuffers - before;
    // The socket buffers are garbage once their records are in the journal (memory that kept
    // the payloads would be 48 MiB and more).
    expect(kept).toBeLessThan(4 << 20);
    for (const i of [0, 1, 777, n - 1]) expect((await t.vol.read(i * 4096, 4096)).equals(block(i))).toBe(true);
    const mixed = await t.vol.read(4096 * 5 + 512, 8192);
    expect(mixed.equals(Buffer.concat([block(5), block(6), block(7)]).subarray(512, 8704))).toBe(true);
    await s.end('snap');
    for (const i of [0, 1, 777, 5000, n - 1]) expect(readImage(t.imagePath, i * 4096, 4096).equals(block(i))).toBe(true);
    await t.vol.close();
  });

  it('in ack mode device a held payload stays in memory (there is no data record) and the writer waits for its release', async () => {
    const t = await openTestVolume(mk(), 'vol', 8 << 20, { ackMode: 'device' });
    const s = await BackupSession.begin(t.vol, 'b', 'volume', noProbe);
    const buf = pattern(0x5c, 8192);
    let acked = false;
    const w = t.vol.write(4096, buf).then(() => (acked = true));
    buf.fill(0); // not stable: the volume copied it
    for (let i = 0; i < 50 && t.vol.holdState().heldCount === 0; i++) await new Promise((r) => setTimeout(r, 2));
    expect(t.vol.holdState().heldCount).toBe(1);
    expect(acked).toBe(false);
    expect((await t.vol.read(0, 16384)).equals(Buffer.concat([Buffer.alloc(4096), pattern(0x5c, 8192), Buffer.alloc(4096)]))).toBe(true);
    await s.end('snap');
    await w;
    expect(acked).toBe(true);
    expect(readImage(t.imagePath, 4096, 8192).equals(pattern(0x5c, 8192))).toBe(true);
    await t.vol.close();
  });

  it('a read that overlays a held write keeps its bytes when the write is released and its journal segment dropped while the device read is out', async () => {
    const t = await openTestVolume(mk(), 'vol', 8 << 20);
    const s = await BackupSession.begin(t.vol, 'r', 'range', noProbe);
    await t.vol.write(0, pattern(0xa1, 4096)); // held: nothing is copied yet
    expect(t.vol.holdState().heldCount).toBe(1);
    const segments = () => fs.readdirSync(path.join(path.dirname(t.imagePath), 'journal-vol')).filter((x) => x.endsWith('.log'));
    const first = segments();
    // A read larger than the synchronous limit goes to the thread pool: hold it there.
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const deviceRead = t.file.read.bind(t.file);
    t.file.read = async (buf, pos) => {
      await gate;
      return deviceRead(buf, pos);
    };
    const reading = t.vol.read(0, 128 << 10); // takes the overlay, then waits for the device
    s.rangeCopied(0, 1 << 20); // releases the held write...
    for (let i = 0; i < 500 && t.vol.holdState().heldCount > 0; i++) await new Promise((r) => setTimeout(r, 2));
    expect(t.vol.holdState().heldCount).toBe(0);
    await t.vol.checkpoint(true); // ...and the journal file that had its bytes goes
    expect(segments().some((x) => first.includes(x))).toBe(false);
    open();
    const got = await reading;
    expect(got.subarray(0, 4096).equals(pattern(0xa1, 4096)), 'the overlay kept its bytes').toBe(true);
    expect(got.subarray(4096).equals(Buffer.alloc((128 << 10) - 4096))).toBe(true);
    t.file.read = deviceRead;
    await s.end('snap');
    expect((await t.vol.read(0, 8192)).equals(Buffer.concat([pattern(0xa1, 4096), Buffer.alloc(4096)]))).toBe(true);
    await t.vol.close();
  });
});
