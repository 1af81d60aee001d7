/**
 * Held payloads: small ones are copies in size-class slots of shared slabs (one ArrayBuffer for
 * many held writes, so the garbage collector has one object per held write to move, not three),
 * and a slot is reused once its payload is gone and no read that may still hold a view of it is
 * running (fresh memory costs a page fault per 4 KiB); large ones own their memory. HeldWrite
 * keeps a payload as memory + offset and hands out views equal to what was written. New slabs
 * come from a reserve faulted in on the thread pool ahead of need, from a backup's begin on.
 */
import { describe, expect, it } from 'vitest';
import { BackupSession } from '../../src-main/engine/backup/backup-session';
import { HeldWrite, HoldQueue } from '../../src-main/engine/holds/hold-queue';
import { PayloadSlabs, RESERVE_SLABS, SLAB_BYTES, SLAB_PAYLOAD_MAX } from '../../src-main/engine/holds/payload-slabs';
import { prefaultPages } from '../../src-main/engine/holds/prefault';
import { noProbe, openTestVolume, pattern, useTempDirs } from './helpers';

const mk = useTempDirs();

describe('payload slabs', () => {
  it('copies small payloads into shared slabs, front to back, none sharing a byte while kept', () => {
    const slabs = new PayloadSlabs();
    const kept: Buffer[] = [];
    const n = Math.ceil((3 * SLAB_BYTES) / 4096) + 7;
    for (let i = 0; i < n; i++) {
      const src = Buffer.alloc(4096, i & 0xff);
      kept.push(slabs.keep(src, i % 2 === 0));
      src.fill(0xee); // the caller reuses its buffer: the kept copy must not change
    }
    const memories = new Set(kept.map((b) => b.buffer));
    expect(memories.size).toBe(Math.ceil(n / (SLAB_BYTES / 4096)));
    for (const m of memories) expect(m.byteLength).toBe(SLAB_BYTES);
    kept.forEach((b, i) => expect(b.equals(Buffer.alloc(4096, i & 0xff)), `payload ${i}`).toBe(true));
    // No two kept payloads share a byte (nothing is reused in place).
    const spans = kept.map((b) => [b.buffer, b.byteOffset, b.byteOffset + b.length] as const).sort((a, b) => (a[0] === b[0] ? a[1] - b[1] : 0));
    for (let i = 1; i < spans.length; i++) if (spans[i]![0] === spans[i - 1]![0]) expect(spans[i]![1]).toBeGreaterThanOrEqual(spans[i - 1]![2]);
  });

  it('keeps a large stable payload that owns its memory, and copies a large view or an unstable one', () => {
    const slabs = new PayloadSlabs();
    const own = Buffer.alloc(SLAB_PAYLOAD_MAX + 4096, 1);
    expect(slabs.keep(own, true) === own).toBe(true);
    const unstable = slabs.keep(own, false);
    expect(unstable === own).toBe(false);
    expect(unstable.buffer === own.buffer).toBe(false);
    expect(unstable.equals(own)).toBe(true);
    const big = Buffer.alloc(4 * SLAB_PAYLOAD_MAX, 2);
    const view = big.subarray(0, SLAB_PAYLOAD_MAX + 512);
    const kept = slabs.keep(view, true);
    expect(kept.buffer === big.buffer).toBe(false);
    expect(kept.byteLength).toBe(SLAB_PAYLOAD_MAX + 512);
    expect(kept.buffer.byteLength).toBe(SLAB_PAYLOAD_MAX + 512);
  });

  it('a held write hands out views of its payload, drops it when superseded and gets it back when the superseder is dropped', () => {
    const slabs = new PayloadSlabs();
    const q = new HoldQueue(true);
    const a = new HeldWrite(1, 8192, 4096, slabs.keep(Buffer.alloc(4096, 0xa1), false), 12.7);
    expect(a.heldAt).toBe(12);
    q.push(a);
    expect(a.data!.equals(Buffer.alloc(4096, 0xa1))).toBe(true);
    expect(a.data === a.data).toBe(false); // a new view each time, of the same memory
    expect(a.data!.buffer === a.data!.buffer).toBe(true);
    const b = new HeldWrite(2, 8192, 4096, slabs.keep(Buffer.alloc(4096, 0xb2), false), 13);
    q.push(b);
    expect(a.superseded).toBe(true);
    expect(a.data).toBeNull();
    // b's record failed to commit: b leaves, a is back with its own bytes.
    expect(q.dropSeqs(2, 2)).toBe(1);
    expect(a.superseded).toBe(false);
    expect(a.data!.equals(Buffer.alloc(4096, 0xa1))).toBe(true);
    expect(() => new HeldWrite(3, 0, 4096, Buffer.alloc(512), 0)).toThrow();
    const zero = new HeldWrite(4, 0, 4096, null, 0);
    expect(zero.data).toBeNull();
  });

  it('reuses the slot of a released payload: the memory stays at the peak held, not the total', () => {
    const slabs = new PayloadSlabs();
    const live: { buf: Buffer; byte: number }[] = [];
    for (let i = 0; i < 20_000; i++) {
      live.push({ buf: slabs.keep(Buffer.alloc(4096, i & 0xff), false), byte: i & 0xff });
      // At most 301 held at any time, released in a scrambled order.
      if (live.length > 300) {
        const [gone] = live.splice((i * 7919) % live.length, 1);
        slabs.release(gone!.buf.buffer, gone!.buf.byteOffset);
      }
    }
    expect(slabs.slabsAllocated).toBe(2); // 301 slots of 4 KiB: two 1 MiB slabs
    expect(slabs.slotsReused).toBe(20_000 - 301);
    // Every payload still held has its own slot and its own bytes.
    const mems = [...new Set(live.map((l) => l.buf.buffer))];
    expect(new Set(live.map((l) => mems.indexOf(l.buf.buffer) * SLAB_BYTES + l.buf.byteOffset)).size).toBe(live.length);
    for (const l of live) expect(l.buf.equals(Buffer.alloc(4096, l.byte))).toBe(true);
  });

  it('rounds a payload up to a power-of-two slot, one class per slab; a large one is not the slabs\' to reuse', () => {
    const slabs = new PayloadSlabs();
    const a = slabs.keep(Buffer.alloc(5000, 1), false);
    const b = slabs.keep(Buffer.alloc(5000, 2), false);
    expect(a.buffer === b.buffer).toBe(true);
    expect(b.byteOffset - a.byteOffset).toBe(8192);
    const sector = slabs.keep(Buffer.alloc(512, 3), false);
    expect(sector.buffer === a.buffer).toBe(false); // another class, another slab
    slabs.release(a.buffer, a.byteOffset);
    const c = slabs.keep(Buffer.alloc(8192, 4), false);
    expect(c.buffer === a.buffer && c.byteOffset === a.byteOffset).toBe(true);
    expect(b.equals(Buffer.alloc(5000, 2))).toBe(true);
    const big = slabs.keep(Buffer.alloc(SLAB_PAYLOAD_MAX + 512, 5), false);
    slabs.release(big.buffer, 0); // its own memory: nothing to reuse
    expect(slabs.keep(Buffer.alloc(SLAB_PAYLOAD_MAX + 512, 6), false).buffer === big.buffer).toBe(false);
    expect(() => slabs.release(b.buffer, b.byteOffset + 512)).toThrow(/starts a slot/);
  });

  it('does not reuse a slot while a read pinned before its release runs; later pins do not hold it back', () => {
    const slabs = new PayloadSlabs();
    const x = slabs.keep(Buffer.alloc(4096, 0x11), false);
    const y = slabs.keep(Buffer.alloc(4096, 0x22), false);
    const unpin1 = slabs.pin(); // a read that took a view of x
    slabs.release(x.buffer, x.byteOffset);
    const unpin2 = slabs.pin(); // started after x left: cannot see it
    slabs.release(y.buffer, y.byteOffset); // both reads may see y
    const fresh = slabs.keep(Buffer.alloc(4096, 0x33), false);
    expect([x.byteOffset, y.byteOffset]).not.toContain(fresh.byteOffset);
    expect(x.equals(Buffer.alloc(4096, 0x11))).toBe(true);
    unpin1(); // x is free now; y waits for the second read
    const reusedX = slabs.keep(Buffer.alloc(4096, 0x44), false);
    expect(reusedX.byteOffset).toBe(x.byteOffset);
    const notY = slabs.keep(Buffer.alloc(4096, 0x55), false);
    expect(notY.byteOffset).not.toBe(y.byteOffset);
    expect(y.equals(Buffer.alloc(4096, 0x22))).toBe(true);
    unpin2();
    expect(slabs.keep(Buffer.alloc(4096, 0x66), false).byteOffset).toBe(y.byteOffset);
    expect(() => unpin2()).toThrow(/once/);
  });

  it('trim forgets the slabs: payloads released afterwards are ignored, new ones get new memory', () => {
    const slabs = new PayloadSlabs();
    const a = slabs.keep(Buffer.alloc(4096, 1), false);
    expect(slabs.slabBytes).toBe(SLAB_BYTES);
    slabs.trim();
    expect(slabs.slabBytes).toBe(0);
    slabs.release(a.buffer, a.byteOffset);
    const b = slabs.keep(Buffer.alloc(4096, 2), false);
    expect(b.buffer === a.buffer).toBe(false);
    expect(a.equals(Buffer.alloc(4096, 1))).toBe(true);
  });

  it('the hold queue hands back the payloads of applied, dropped and superseded writes, each once', () => {
    const gone: number[] = [];
    const slabs = new PayloadSlabs();
    const q = new HoldQueue(true, (mem, at) => {
      gone.push(at);
      slabs.release(mem, at);
    });
    const w = (seq: number, offset: number, byte: number) => new HeldWrite(seq, offset, 4096, slabs.keep(Buffer.alloc(4096, byte), false), 0);
    const a = w(1, 0, 1);
    const b = w(2, 0, 2); // supersedes a
    const c = w(3, 8192, 3);
    const d = w(4, 16384, 4);
    for (const x of [a, b, c, d]) q.push(x);
    expect(a.superseded).toBe(true);
    const atA = 0;
    q.confirm(1); // b not committed yet: a's bytes may come back
    expect(gone).toEqual([]);
    q.confirm(2);
    expect(gone).toEqual([atA]);
    q.remove(a); // a no-op release: nothing more to hand back
    q.remove(c);
    expect(gone).toEqual([atA, 8192]);
    expect(q.dropSeqs(4, 4)).toBe(1);
    expect(gone).toEqual([atA, 8192, 12288]);
    q.remove(b);
    expect(gone).toEqual([atA, 8192, 12288, 4096]);
    expect(q.count).toBe(0);
  });

  it('a read that overlays a held write gets its bytes even when the write is released and another held write wants memory while the device read is out', async () => {
    const t = await openTestVolume(mk(), 'vol', 8 << 20);
    const s = await BackupSession.begin(t.vol, 'r', 'range', noProbe);
    await t.vol.write(0, pattern(0xa1, 4096)); // held: nothing is copied yet
    expect(t.vol.holdState().heldCount).toBe(1);
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
    await t.vol.write(4 << 20, pattern(0xb2, 4096)); // ...and this one is held in the memory it would have freed
    open();
    const got = await reading;
    expect(got.subarray(0, 4096).equals(pattern(0xa1, 4096)), 'the overlay kept its bytes').toBe(true);
    expect(got.subarray(4096).equals(Buffer.alloc((128 << 10) - 4096))).toBe(true);
    t.file.read = deviceRead;
    expect((await t.vol.read(4 << 20, 4096)).equals(pattern(0xb2, 4096))).toBe(true);
    await s.end('snap');
    expect((await t.vol.read(0, 8192)).equals(Buffer.concat([pattern(0xa1, 4096), Buffer.alloc(4096)]))).toBe(true);
    await t.vol.close();
  });

  describe('the faulted-in reserve', () => {
    /** A prefault the test settles by hand: which buffers were asked for, in order. */
    function manualPrefault() {
      const asked: { buf: Buffer; settle: (ok: boolean) => void }[] = [];
      const fn = (buf: Buffer) =>
        new Promise<void>((resolve, reject) => asked.push({ buf, settle: (ok) => (ok ? resolve() : reject(new Error('no /dev/zero'))) }));
      return { fn, asked };
    }
    const tick = () => new Promise((r) => setImmediate(r));

    it('warm() faults RESERVE_SLABS slabs in; new slabs come from them and each one taken is replaced', async () => {
      const pf = manualPrefault();
      const slabs = new PayloadSlabs(pf.fn);
      slabs.warm();
      expect(pf.asked.length).toBe(RESERVE_SLABS);
      slabs.warm(); // already filling: no more
      expect(pf.asked.length).toBe(RESERVE_SLABS);
      // Until a fault-in finishes, a new slab is fresh memory (never a buffer still being faulted).
      const early = slabs.keep(Buffer.alloc(4096, 1), false);
      expect(pf.asked.some((a) => a.buf.buffer === early.buffer)).toBe(false);
      expect(slabs.slabsPrefaulted).toBe(0);
      for (const a of pf.asked) a.settle(true);
      await tick();
      expect(slabs.slabBytes).toBe((1 + RESERVE_SLABS) * SLAB_BYTES);
      // Fill the first slab, then the next one is a faulted-in slab, and a replacement is asked for.
      const perSlab = SLAB_BYTES / 4096;
      for (let i = 1; i < perSlab; i++) slabs.keep(Buffer.alloc(4096, 2), false);
      const next = slabs.keep(Buffer.alloc(4096, 3), false);
      expect(pf.asked.slice(0, RESERVE_SLABS).some((a) => a.buf.buffer === next.buffer)).toBe(true);
      expect(next.equals(Buffer.alloc(4096, 3))).toBe(true);
      expect(slabs.slabsPrefaulted).toBe(1);
      expect(slabs.slabsAllocated).toBe(2);
      expect(pf.asked.length).toBe(RESERVE_SLABS + 1);
      // A slab of another class is taken from the same reserve.
      const sector = slabs.keep(Buffer.alloc(512, 4), false);
      expect(pf.asked.some((a) => a.buf.buffer === sector.buffer)).toBe(true);
      expect(slabs.slabsPrefaulted).toBe(2);
    });

    it('trim() drops the reserve, and slabs still being faulted in are not kept', async () => {
      const pf = manualPrefault();
      const slabs = new PayloadSlabs(pf.fn);
      slabs.warm();
      pf.asked[0]!.settle(true);
      await tick();
      expect(slabs.slabBytes).toBe(SLAB_BYTES);
      slabs.trim();
      expect(slabs.slabBytes).toBe(0);
      for (const a of pf.asked.slice(1)) a.settle(true);
      await tick();
      expect(slabs.slabBytes).toBe(0);
      const fresh = slabs.keep(Buffer.alloc(4096, 1), false);
      expect(pf.asked.slice(0, RESERVE_SLABS).some((a) => a.buf.buffer === fresh.buffer)).toBe(false);
    });

    it('an idle allocator with only a reserve drops it after the idle time', async () => {
      const pf = manualPrefault();
      const slabs = new PayloadSlabs(pf.fn);
      slabs.warm();
      for (const a of pf.asked) a.settle(true);
      await tick();
      expect(slabs.slabBytes).toBe(RESERVE_SLABS * SLAB_BYTES);
      slabs.trimWhenIdle(5);
      await new Promise((r) => setTimeout(r, 30));
      expect(slabs.slabBytes).toBe(0);
    });

    it('a prefault that fails turns prefaulting off: slabs are allocated as they are needed', async () => {
      const pf = manualPrefault();
      const slabs = new PayloadSlabs(pf.fn);
      slabs.warm();
      for (const a of pf.asked) a.settle(false);
      await tick();
      expect(slabs.slabBytes).toBe(0);
      const n = 2 * (SLAB_BYTES / 4096) + 1;
      for (let i = 0; i < n; i++) expect(slabs.keep(Buffer.alloc(4096, i & 0xff), false).equals(Buffer.alloc(4096, i & 0xff))).toBe(true);
      expect(slabs.slabsAllocated).toBe(3);
      expect(slabs.slabsPrefaulted).toBe(0);
      expect(pf.asked.length).toBe(RESERVE_SLABS);
    });

    it('prefaultPages writes every byte of the buffer (on the thread pool)', async () => {
      const buf = Buffer.allocUnsafeSlow(SLAB_BYTES + 4096).fill(0xaa);
      await prefaultPages(buf);
      // /dev/zero (Linux, macOS) leaves zeroes; the random fallback leaves bytes that are not all 0xaa.
      if (process.platform !== 'win32') expect(buf.equals(Buffer.alloc(buf.length))).toBe(true);
      else expect(buf.equals(Buffer.alloc(buf.length, 0xaa))).toBe(false);
    });

    it('a volume faults its reserve in when a backup begins, and held writes use it', async () => {
      const t = await openTestVolume(mk(), 'vol', 8 << 20);
      const s = await BackupSession.begin(t.vol, 'r', 'range', noProbe);
      for (let i = 0; i < 50 && t.vol.payloadSlabBytes() < RESERVE_SLABS * SLAB_BYTES; i++) await new Promise((r) => setTimeout(r, 5));
      expect(t.vol.payloadSlabBytes()).toBe(RESERVE_SLABS * SLAB_BYTES);
      await t.vol.write(4096, pattern(0x5c, 4096)); // held, in a faulted-in slab
      expect(t.vol.holdState().heldCount).toBe(1);
      expect((await t.vol.read(4096, 4096)).equals(pattern(0x5c, 4096))).toBe(true);
      await s.end('snap');
      expect((await t.vol.read(4096, 4096)).equals(pattern(0x5c, 4096))).toBe(true);
      await t.vol.close();
    });
  });
});
