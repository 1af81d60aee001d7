import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { BackupSession } from '../../src-main/engine/backup/backup-session';
import { HoldfastError } from '../../src-shared/errors';
import { NodeEnv } from '../../src-main/engine/env/node-env';
import type { BlockFile } from '../../src-main/engine/env/env';
import { noProbe, openTestVolume, pattern, readImage, useTempDirs } from './helpers';

const mk = useTempDirs();

async function expectCode(p: Promise<unknown>, code: string) {
  await expect(p).rejects.toBeInstanceOf(HoldfastError);
  await p.catch((e: HoldfastError) => expect(e.code).toBe(code));
}

describe('write path without a backup', () => {
  it('writes reach the device and read back', async () => {
    const t = await openTestVolume(mk());
    await t.vol.write(4096, pattern(0xab, 8192));
    expect(readImage(t.imagePath, 4096, 8192).equals(pattern(0xab, 8192))).toBe(true);
    expect((await t.vol.read(4096, 8192)).equals(pattern(0xab, 8192))).toBe(true);
    await t.vol.close();
  });

  it('rejects out-of-range and unaligned requests and logs nothing for them', async () => {
    const t = await openTestVolume(mk());
    const before = t.vol.journal.lastSeq;
    await expectCode(t.vol.write(8 << 20, pattern(1, 512)), 'OUT_OF_RANGE');
    await expectCode(t.vol.write((8 << 20) - 512, pattern(1, 1024)), 'OUT_OF_RANGE');
    await expectCode(t.vol.write(100, pattern(1, 512)), 'UNALIGNED');
    await expectCode(t.vol.write(512, pattern(1, 100)), 'UNALIGNED');
    await expectCode(t.vol.write(-512, pattern(1, 512)), 'OUT_OF_RANGE');
    await expectCode(t.vol.read(0, (8 << 20) + 512), 'OUT_OF_RANGE');
    expect(t.vol.journal.lastSeq).toBe(before);
    await t.vol.close();
  });

  it('overlapping concurrent writes land in issue order', async () => {
    const t = await openTestVolume(mk());
    const ps: Promise<void>[] = [];
    for (let i = 1; i <= 200; i++) ps.push(t.vol.write((i % 3) * 512, pattern(i, 4096)));
    await Promise.all(ps);
    // Last write (i=200) covers offset 400*... : compute expected by replaying in order.
    const model = Buffer.alloc(8192);
    for (let i = 1; i <= 200; i++) pattern(i, 4096).copy(model, (i % 3) * 512);
    expect(readImage(t.imagePath, 0, 8192).equals(model)).toBe(true);
    await t.vol.close();
  });
});

describe('hold queue under the volume policy', () => {
  it('holds writes during a backup, serves reads from them, and releases them in arrival order at end', async () => {
    const t = await openTestVolume(mk());
    await t.vol.write(0, pattern(0x11, 4096));
    const s = await BackupSession.begin(t.vol, 'b1', 'volume', noProbe);
    await t.vol.write(0, pattern(0x22, 4096));
    await t.vol.write(2048, pattern(0x33, 4096)); // overlaps the first held write
    await t.vol.write(1 << 20, pattern(0x44, 512));
    expect(t.vol.holdState().heldCount).toBe(3);
    // Not forwarded to the device while held (claim 2)...
    expect(readImage(t.imagePath, 0, 4096).equals(pattern(0x11, 4096))).toBe(true);
    // ...the point-in-time image is the volume at begin (claim 5)...
    expect((await s.read(0, 4096)).equals(pattern(0x11, 4096))).toBe(true);
    // ...and readers of the volume see their writes.
    const seen = await t.vol.read(0, 8192);
    expect(seen.subarray(0, 2048).equals(pattern(0x22, 2048))).toBe(true);
    expect(seen.subarray(2048, 6144).equals(pattern(0x33, 4096))).toBe(true);
    await s.end('snap-1');
    expect(t.vol.holdState().heldCount).toBe(0);
    const dev = readImage(t.imagePath, 0, 8192);
    expect(dev.subarray(0, 2048).equals(pattern(0x22, 2048))).toBe(true);
    expect(dev.subarray(2048, 6144).equals(pattern(0x33, 4096))).toBe(true);
    expect(readImage(t.imagePath, 1 << 20, 512).equals(pattern(0x44, 512))).toBe(true);
    await t.vol.close();
  });

  it('reads held payloads back from the journal once logged: the callers\' buffers are not kept', async () => {
    const t = await openTestVolume(mk());
    const s = await BackupSession.begin(t.vol, 'b1', 'volume', noProbe);
    // An NBD socket read: one 64 KiB buffer carrying many requests, each payload a view of it.
    const chunk = Buffer.alloc(64 << 10, 0x5a);
    await t.vol.write(0, chunk.subarray(8192, 12288), { stable: true });
    const own = pattern(0x66, 4096);
    await t.vol.write(1 << 20, own, { stable: true });
    const large = pattern(0x88, 512 << 10);
    await t.vol.write(2 << 20, large, { stable: true });
    // Not stable: the caller reuses the buffer as soon as the write is acknowledged.
    const reused = pattern(0x44, 8192);
    await t.vol.write(3 << 20, reused);
    expect(t.vol.holdState().heldBytes).toBe(8192 + (512 << 10) + 8192);
    // Changing the buffers now (a stable caller never does) shows that nothing kept them.
    chunk.fill(0x00);
    own.fill(0x77);
    large.fill(0x99);
    reused.fill(0x11);
    expect((await t.vol.read(0, 4096)).equals(Buffer.alloc(4096, 0x5a))).toBe(true);
    expect((await t.vol.read(1 << 20, 4096)).equals(pattern(0x66, 4096))).toBe(true);
    expect((await t.vol.read(2 << 20, 512 << 10)).equals(pattern(0x88, 512 << 10))).toBe(true);
    // A read that covers part of a held write and part of the device.
    const edge = await t.vol.read((3 << 20) + 4096, 8192);
    expect(edge.subarray(0, 4096).equals(pattern(0x44, 8192).subarray(4096))).toBe(true);
    expect(edge.subarray(4096).equals(Buffer.alloc(4096))).toBe(true);
    await s.end('snap-1');
    expect(readImage(t.imagePath, 0, 4096).equals(Buffer.alloc(4096, 0x5a))).toBe(true);
    expect(readImage(t.imagePath, 1 << 20, 4096).equals(pattern(0x66, 4096))).toBe(true);
    expect(readImage(t.imagePath, 2 << 20, 512 << 10).equals(pattern(0x88, 512 << 10))).toBe(true);
    expect(readImage(t.imagePath, 3 << 20, 8192).equals(pattern(0x44, 8192))).toBe(true);
    await t.vol.close();
  });

  it('never holds writes to another volume while one volume is held', async () => {
    const d = mk();
    const a = await openTestVolume(d, 'a');
    const b = await openTestVolume(d, 'b', 8 << 20, { id: 2, ackMode: 'device' });
    const s = await BackupSession.begin(a.vol, 'ba', 'volume', noProbe);
    await a.vol.write(0, pattern(1, 4096));
    // B keeps writing while A is held: every one of B's writes completes and none waits in a queue.
    const n = 2000;
    let maxHeldB = 0;
    for (let i = 0; i < n; i++) {
      await b.vol.write((i % 2048) * 4096, pattern(i & 0xff, 4096));
      maxHeldB = Math.max(maxHeldB, b.vol.holdState().heldCount);
    }
    expect(maxHeldB).toBe(0);
    expect(a.vol.holdState().heldCount).toBe(1);
    expect(readImage(b.imagePath, ((n - 1) % 2048) * 4096, 4096).equals(pattern((n - 1) & 0xff, 4096))).toBe(true);
    await s.end('x');
    await a.vol.close();
    await b.vol.close();
  });

  it('in device ack mode a held writer waits until the backup ends', async () => {
    const t = await openTestVolume(mk(), 'dev', 8 << 20, { ackMode: 'device' });
    const s = await BackupSession.begin(t.vol, 'b', 'volume', noProbe);
    let acked = false;
    const w = t.vol.write(0, pattern(9, 4096)).then(() => (acked = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(acked).toBe(false);
    await s.end('snap');
    await w;
    expect(acked).toBe(true);
    expect(readImage(t.imagePath, 0, 4096).equals(pattern(9, 4096))).toBe(true);
    await t.vol.close();
  });

  it('a held write is not in the changed-block map until it is released (claim 9)', async () => {
    const t = await openTestVolume(mk());
    const s = await BackupSession.begin(t.vol, 'b', 'volume', noProbe);
    await t.vol.write(64 << 10, pattern(5, 4096));
    expect(t.vol.changedSinceParent().map.has(16)).toBe(false);
    await s.end('snap-2');
    expect(t.vol.changedSinceParent().map.has(16)).toBe(true);
    expect(t.vol.changedSinceParent().parentSnapshotId).toBe('snap-2');
    await t.vol.close();
  });
});

describe('range policy', () => {
  it('holds only writes to uncopied blocks and releases them as ranges are copied', async () => {
    const t = await openTestVolume(mk());
    const s = await BackupSession.begin(t.vol, 'r', 'range', noProbe);
    await t.vol.write(0, pattern(1, 4096));
    await t.vol.write(1 << 20, pattern(2, 4096));
    expect(t.vol.holdState().heldCount).toBe(2);
    expect(s.urgentRanges().map((r) => r.offset)).toEqual([0, 1 << 20]);
    const pit = await s.read(0, 1 << 20);
    expect(pit.subarray(0, 4096).equals(pattern(0, 4096))).toBe(true);
    s.rangeCopied(0, 1 << 20);
    await new Promise((r) => setTimeout(r, 20));
    expect(t.vol.holdState().heldCount).toBe(1);
    expect(readImage(t.imagePath, 0, 4096).equals(pattern(1, 4096))).toBe(true);
    // A write to a copied range goes straight through.
    await t.vol.write(8192, pattern(3, 4096));
    expect(t.vol.holdState().heldCount).toBe(1);
    expect(readImage(t.imagePath, 8192, 4096).equals(pattern(3, 4096))).toBe(true);
    await s.end('s');
    expect(readImage(t.imagePath, 1 << 20, 4096).equals(pattern(2, 4096))).toBe(true);
    await t.vol.close();
  });
});

describe('reads while held writes are released', () => {
  it('a read in flight while its held write is applied and leaves the queue still returns that write', async () => {
    // The device read of a large request runs on the thread pool. Here it reads the device
    // before the release writes it, and completes only after the entry left the queue.
    let gate: Promise<void> | null = null;
    let open!: () => void;
    const inner = new NodeEnv();
    const env = Object.create(inner) as NodeEnv;
    env.open = async (p, o) => {
      const f = await inner.open(p, o);
      return Object.assign(Object.create(f) as BlockFile, {
        read: async (buf: Buffer, pos: number) => {
          const n = await f.read(buf, pos);
          if (gate && p.endsWith('.img')) await gate;
          return n;
        },
      });
    };
    const t = await openTestVolume(mk(), 'vol', 8 << 20, { env });
    const s = await BackupSession.begin(t.vol, 'r', 'range', noProbe);
    await t.vol.write(0, pattern(7, 4096));
    expect(t.vol.holdState().heldCount).toBe(1);
    gate = new Promise<void>((r) => (open = r));
    const reading = t.vol.read(0, 256 << 10);
    await new Promise((r) => setTimeout(r, 20)); // the device read has happened (old bytes)
    s.rangeCopied(0, 1 << 20);
    for (let i = 0; i < 100 && t.vol.holdState().heldCount > 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(t.vol.holdState().heldCount).toBe(0);
    open();
    const got = await reading;
    expect(got.subarray(0, 4096).equals(pattern(7, 4096))).toBe(true);
    gate = null;
    await s.end('s');
    await t.vol.close();
  });
});

describe('journal capacity', () => {
  it('applies backpressure when held data fills the journal, and never drops the write', async () => {
    const t = await openTestVolume(mk(), 'bp', 8 << 20, { capacity: 256 << 10 });
    const s = await BackupSession.begin(t.vol, 'b', 'volume', noProbe);
    for (let i = 0; i < 3; i++) await t.vol.write(i * 65536, pattern(i + 1, 65536));
    let done = false;
    const blocked = (async () => {
      for (let i = 3; i < 8; i++) await t.vol.write(i * 65536, pattern(i + 1, 65536));
      done = true;
    })();
    await new Promise((r) => setTimeout(r, 100));
    expect(done).toBe(false);
    await s.end('snap');
    await blocked;
    for (let i = 0; i < 8; i++) expect(readImage(t.imagePath, i * 65536, 65536).equals(pattern(i + 1, 65536))).toBe(true);
    await t.vol.close();
  });
});

describe('crash recovery', () => {
  it('redoes held writes acknowledged from the journal and fails the interrupted backup', async () => {
    const d = mk();
    const t = await openTestVolume(d);
    await BackupSession.begin(t.vol, 'crashed', 'volume', noProbe);
    await t.vol.write(0, pattern(7, 4096));
    await t.vol.write(4096, pattern(8, 4096));
    await t.vol.flush();
    await t.vol.abandon(); // like SIGKILL: nothing more is written
    await t.file.close();
    expect(readImage(t.imagePath, 0, 4096).equals(pattern(0, 4096))).toBe(true);
    const r1 = await t.reopen();
    expect(r1.report.redone).toBe(2);
    expect(r1.report.interruptedBackupId).toBe('crashed');
    expect(readImage(t.imagePath, 0, 8192).equals(Buffer.concat([pattern(7, 4096), pattern(8, 4096)]))).toBe(true);
    expect(r1.vol.holdState().backupFlag).toBe(false);
    await r1.vol.abandon();
    await t.file.close();
    const r2 = await t.reopen();
    expect(r2.report.redone).toBe(0);
    expect(r2.report.interruptedBackupId).toBe(null);
    expect(readImage(t.imagePath, 0, 8192).equals(Buffer.concat([pattern(7, 4096), pattern(8, 4096)]))).toBe(true);
    await r2.vol.close();
  });

  it('discards a torn journal tail and keeps everything before it', async () => {
    const d = mk();
    const t = await openTestVolume(d);
    await BackupSession.begin(t.vol, 'b', 'volume', noProbe);
    await t.vol.write(0, pattern(7, 4096));
    await t.vol.abandon();
    await t.file.close();
    const jdir = `${d}/journal-vol`;
    const seg = fs.readdirSync(jdir).filter((n) => n.endsWith('.log')).sort().pop()!;
    fs.appendFileSync(`${jdir}/${seg}`, Buffer.from('HFJR-garbage-torn-tail'));
    const r = await t.reopen();
    expect(r.report.discarded).toMatch(/bad magic|short|crc/);
    expect(readImage(t.imagePath, 0, 4096).equals(pattern(7, 4096))).toBe(true);
    await r.vol.write(8192, pattern(3, 4096));
    await r.vol.close();
  });
});
