/**
 * Held payloads: small ones are copies in size-class slots of shared slabs (one ArrayBuffer for
 * many held writes, so the garbage collector has one object per held write to move, not three),
 * and a slot is reused once its payload is gone and no read that may still hold a view of it is
 * running (fresh memory costs a page fault per 4 KiB); large ones own their memory. HeldWrite
 * keeps a payload as memory + offset and hands out views equal to what was written. New slabs
 * come from a reserve faulted in ahead of need, from a backup's begin on: shared memory by the
 * page toucher (a worker thread writing into every page), other memory on the thread pool.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BackupSession } from '../../src-main/engine/backup/backup-session';
import { HeldWrite, HoldQueue } from '../../src-main/engine/holds/hold-queue';
import { PayloadSlabs, RESERVE_SLABS, SLAB_BYTES, SlotStack, SLAB_PAYLOAD_MAX, WARM_AHEAD_MAX_BYTES, WARM_AHEAD_SECONDS } from '../../src-main/engine/holds/payload-slabs';
import { PageToucher, pageToucher, prefaultPages, touchedSlab } from '../../src-main/engine/holds/prefault';
import { WriteRateSampler } from '../../src-main/engine/volumes/write-rate';
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

  it('a free-slot stack hands slots back last in, first out, across its chunks, and forgets them on clear()', () => {
    const st = new SlotStack();
    const slabs = [new ArrayBuffer(SLAB_BYTES), new SharedArrayBuffer(SLAB_BYTES)];
    const n = 2500; // more than two chunks
    for (let i = 0; i < n; i++) st.push(slabs[i % 2]!, (i * 512) % SLAB_BYTES);
    expect(st.length).toBe(n);
    for (let i = n - 1; i >= 1200; i--) {
      const v = st.popView(512);
      expect(v.buffer).toBe(slabs[i % 2]);
      expect(v.byteOffset).toBe((i * 512) % SLAB_BYTES);
      expect(v.length).toBe(512);
    }
    // Pushed again over the emptied chunks, then everything comes back in order.
    for (let i = 1200; i < 1300; i++) st.push(slabs[0]!, (i - 1200) * 4096);
    expect(st.length).toBe(1300);
    for (let i = 1299; i >= 1200; i--) expect(st.popView(4096).byteOffset).toBe((i - 1200) * 4096);
    for (let i = 1199; i >= 0; i--) expect(st.popView(512).byteOffset).toBe((i * 512) % SLAB_BYTES);
    expect(st.length).toBe(0);
    expect(() => st.popView(512)).toThrow(/non-empty/);
    expect(() => st.push(slabs[0]!, SLAB_BYTES)).toThrow(/inside its slab/);
    st.push(slabs[1]!, 0);
    st.clear();
    expect(st.length).toBe(0);
    st.push(slabs[0]!, 1024);
    expect(st.popView(16).byteOffset).toBe(1024);
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
    /** A WarmSlab the test settles by hand: what was asked for, in order, and the slabs it gave. */
    function manualWarmSlab() {
      const asked: { bytes: number; settle: (ok: boolean) => void }[] = [];
      const made: Buffer[] = [];
      const give = (bytes: number) => {
        const b = Buffer.allocUnsafeSlow(bytes);
        made.push(b);
        return b;
      };
      const fn = (bytes: number) =>
        new Promise<Buffer>((resolve, reject) => asked.push({ bytes, settle: (ok) => (ok ? resolve(give(bytes)) : reject(new Error('no toucher'))) }));
      return { fn, asked, made };
    }
    const tick = () => new Promise((r) => setImmediate(r));

    it('warm() faults RESERVE_SLABS slabs in; new slabs come from them and each one taken is replaced', async () => {
      const touch = manualWarmSlab();
      const slabs = new PayloadSlabs(touch.fn);
      slabs.warm();
      expect(touch.asked.length).toBe(RESERVE_SLABS);
      expect(touch.asked.every((a) => a.bytes === SLAB_BYTES)).toBe(true);
      slabs.warm(); // already filling: no more
      expect(touch.asked.length).toBe(RESERVE_SLABS);
      // Until a fault-in finishes, a new slab is fresh memory (it does not wait for one).
      const early = slabs.keep(Buffer.alloc(4096, 1), false);
      expect(slabs.slabsPrefaulted).toBe(0);
      for (const a of touch.asked) a.settle(true);
      await tick();
      expect(touch.made.some((b) => b.buffer === early.buffer)).toBe(false);
      expect(slabs.slabBytes).toBe((1 + RESERVE_SLABS) * SLAB_BYTES);
      // Fill the first slab, then the next one is a faulted-in slab, and a replacement is asked for.
      const perSlab = SLAB_BYTES / 4096;
      for (let i = 1; i < perSlab; i++) slabs.keep(Buffer.alloc(4096, 2), false);
      const next = slabs.keep(Buffer.alloc(4096, 3), false);
      expect(touch.made.some((b) => b.buffer === next.buffer)).toBe(true);
      expect(next.equals(Buffer.alloc(4096, 3))).toBe(true);
      expect(slabs.slabsPrefaulted).toBe(1);
      expect(slabs.slabsAllocated).toBe(2);
      expect(touch.asked.length).toBe(RESERVE_SLABS + 1);
      // A slab of another class is taken from the same reserve.
      const sector = slabs.keep(Buffer.alloc(512, 4), false);
      expect(touch.made.some((b) => b.buffer === sector.buffer)).toBe(true);
      expect(slabs.slabsPrefaulted).toBe(2);
    });

    it('trim() drops the reserve, and slabs still being faulted in are not kept', async () => {
      const touch = manualWarmSlab();
      const slabs = new PayloadSlabs(touch.fn);
      slabs.warm();
      touch.asked[0]!.settle(true);
      await tick();
      expect(slabs.slabBytes).toBe(SLAB_BYTES);
      slabs.trim();
      expect(slabs.slabBytes).toBe(0);
      for (const a of touch.asked.slice(1)) a.settle(true);
      await tick();
      expect(slabs.slabBytes).toBe(0);
      const fresh = slabs.keep(Buffer.alloc(4096, 1), false);
      expect(touch.made.some((b) => b.buffer === fresh.buffer)).toBe(false);
    });

    it('an idle allocator with only a reserve drops it after the idle time', async () => {
      const touch = manualWarmSlab();
      const slabs = new PayloadSlabs(touch.fn);
      slabs.warm();
      for (const a of touch.asked) a.settle(true);
      await tick();
      expect(slabs.slabBytes).toBe(RESERVE_SLABS * SLAB_BYTES);
      slabs.trimWhenIdle(5);
      await new Promise((r) => setTimeout(r, 30));
      expect(slabs.slabBytes).toBe(0);
    });

    it('without a slab source there is no reserve: slabs are allocated as they are needed', async () => {
      const slabs = new PayloadSlabs();
      slabs.warm();
      await slabs.warmAhead(64 * SLAB_BYTES);
      expect(slabs.slabBytes).toBe(0);
      const n = 2 * (SLAB_BYTES / 4096) + 1;
      for (let i = 0; i < n; i++) expect(slabs.keep(Buffer.alloc(4096, i & 0xff), false).equals(Buffer.alloc(4096, i & 0xff))).toBe(true);
      expect(slabs.slabsAllocated).toBe(3);
      expect(slabs.slabsPrefaulted).toBe(0);
      expect(slabs.slabBytes).toBe(3 * SLAB_BYTES);
    });

    it('prefaultPages writes every byte of other memory (on the thread pool)', async () => {
      const buf = Buffer.allocUnsafeSlow(SLAB_BYTES + 4096).fill(0xaa);
      await prefaultPages(buf);
      // /dev/zero (Linux, macOS) leaves zeroes; the random fallback leaves bytes that are not all 0xaa.
      if (process.platform !== 'win32') expect(buf.equals(Buffer.alloc(buf.length))).toBe(true);
      else expect(buf.equals(Buffer.alloc(buf.length, 0xaa))).toBe(false);
    });

    it('touchedSlab is shared memory the page toucher allocated and faulted in (zeroes); prefaultPages is the kernel\'s', async () => {
      const slab = await touchedSlab(SLAB_BYTES);
      expect(slab.buffer instanceof SharedArrayBuffer).toBe(true);
      expect(slab.length).toBe(SLAB_BYTES);
      expect(slab.equals(Buffer.alloc(SLAB_BYTES))).toBe(true);
      expect(pageToucher.usable).toBe(true);
      // touchedSlab's fallback, the kernel's way, fills any memory (this thread's) with zeroes.
      const shared = Buffer.from(new SharedArrayBuffer(2 * 4096)).fill(0xaa);
      await prefaultPages(shared);
      expect(shared.equals(Buffer.alloc(shared.length, 0xaa))).toBe(false);
    });

    it('the page toucher keeps the process alive only while a request waits: a process that used it gets its slab and exits on its own', () => {
      const mod = path.resolve(__dirname, '../../src-main/engine/holds/prefault.ts');
      const script = `const { touchedSlab } = require(${JSON.stringify(mod)});
        touchedSlab(${SLAB_BYTES}).then((s) => console.log('slab', s.length, s.buffer instanceof SharedArrayBuffer));`;
      const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { encoding: 'utf8', timeout: 20_000 });
      expect(r.error).toBeUndefined(); // a timeout (the process did not exit) is an error here
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toBe(`slab ${SLAB_BYTES} true`);
      expect(r.status).toBe(0);
    });

    it('a page toucher that fails rejects what waits and refuses later requests', async () => {
      const t = new PageToucher();
      await expect(t.slab(0)).rejects.toThrow(/a slab of 0 bytes/);
      const ok = await t.slab(8192);
      expect(ok.equals(Buffer.alloc(8192))).toBe(true);
      // A request the worker cannot serve (more memory than it can have) kills it.
      await expect(t.slab(2 ** 50)).rejects.toThrow();
      expect(t.usable).toBe(false);
      await expect(t.slab(4096)).rejects.toThrow(/not running/);
      await t.close();
    });

    it('the page toucher reports its thread to the CPU split while it runs', async () => {
      const t = new PageToucher();
      const added: number[] = [];
      const removed: number[] = [];
      t.place({ addWorker: (tid) => added.push(tid), removeWorker: (tid) => removed.push(tid) });
      await t.slab(4096);
      if (process.platform === 'linux') {
        expect(added).toHaveLength(1);
        expect(added[0]).not.toBe(process.pid); // its own thread, not the engine's
      }
      await t.close();
      expect(removed).toEqual(added);
      // A new placement learns of a running toucher at once.
      await t.slab(4096);
      const later: number[] = [];
      t.place({ addWorker: (tid) => later.push(tid), removeWorker: () => undefined });
      if (process.platform === 'linux') expect(later).toHaveLength(1);
      await t.close();
    });

    it('warmAhead() gets WARM_AHEAD_SECONDS of writes at the given rate, counting the reserve, and settles when they are in it', async () => {
      const touch = manualWarmSlab();
      const slabs = new PayloadSlabs(touch.fn);
      await slabs.warmAhead(0); // nobody writes: nothing ahead
      expect(touch.asked.length).toBe(0);
      slabs.warm();
      expect(touch.asked.length).toBe(RESERVE_SLABS);
      const rate = (3 * SLAB_BYTES) / WARM_AHEAD_SECONDS; // 3 slabs' worth; the RESERVE_SLABS filling count
      await slabs.warmAhead(rate);
      expect(touch.asked.length).toBe(RESERVE_SLABS);
      const want = RESERVE_SLABS + 5;
      let settled = false;
      const warming = slabs.warmAhead((want * SLAB_BYTES) / WARM_AHEAD_SECONDS).then(() => (settled = true));
      expect(touch.asked.length).toBe(want);
      for (const a of touch.asked.slice(0, want - 1)) a.settle(true);
      await tick();
      expect(settled).toBe(false);
      expect(slabs.slabBytes).toBe((want - 1) * SLAB_BYTES);
      touch.asked[want - 1]!.settle(true);
      await warming;
      expect(slabs.slabBytes).toBe(want * SLAB_BYTES);
      // New slabs of any class come from what was warmed, and it is not refilled while it lasts.
      const held = [slabs.keep(Buffer.alloc(4096, 1), false), slabs.keep(Buffer.alloc(512, 2), false)];
      expect(held.every((v) => touch.made.some((b) => b.buffer === v.buffer))).toBe(true);
      expect(touch.asked.every((a) => a.bytes === SLAB_BYTES)).toBe(true);
      expect(slabs.slabsPrefaulted).toBe(2);
      expect(touch.asked.length).toBe(want);
      slabs.trim();
      expect(slabs.slabBytes).toBe(0);
    });

    it('warmAhead() counts the slabs kept since the last backup (free again when one begins)', async () => {
      const touch = manualWarmSlab();
      const slabs = new PayloadSlabs(touch.fn);
      const kept = Array.from({ length: (2 * SLAB_BYTES) / 4096 }, (_, i) => slabs.keep(Buffer.alloc(4096, i & 0xff), false));
      for (const k of kept) slabs.release(k.buffer, k.byteOffset);
      // Taking slabs asked the toucher for the reserve; say it could not give them.
      expect(touch.asked.length).toBe(RESERVE_SLABS);
      for (const a of touch.asked) a.settle(false);
      await tick();
      const warming = slabs.warmAhead((5 * SLAB_BYTES) / WARM_AHEAD_SECONDS);
      expect(touch.asked.length).toBe(RESERVE_SLABS + 3);
      for (const a of touch.asked.slice(RESERVE_SLABS)) a.settle(true);
      await warming;
      expect(slabs.slabBytes).toBe(5 * SLAB_BYTES);
    });

    it('warmAhead() asks for at most WARM_AHEAD_MAX_BYTES; a slab whose fault-in fails is not kept, and later ones still are', async () => {
      const touch = manualWarmSlab();
      const slabs = new PayloadSlabs(touch.fn);
      const warming = slabs.warmAhead(100 * WARM_AHEAD_MAX_BYTES);
      expect(touch.asked.length).toBe(WARM_AHEAD_MAX_BYTES / SLAB_BYTES);
      touch.asked[0]!.settle(false);
      for (const a of touch.asked.slice(1)) a.settle(true);
      await warming;
      expect(slabs.slabBytes).toBe(WARM_AHEAD_MAX_BYTES - SLAB_BYTES);
      // Nothing was kept (so nothing refilled): an idle allocator still drops what was warmed.
      slabs.trimWhenIdle(5);
      await new Promise((r) => setTimeout(r, 30));
      expect(slabs.slabBytes).toBe(0);
    });

    it('a reserve slab the page toucher cannot give is simply not there: new slabs then fault on first touch', async () => {
      const touch = manualWarmSlab();
      const slabs = new PayloadSlabs(touch.fn);
      slabs.warm();
      expect(touch.asked.length).toBe(RESERVE_SLABS);
      for (const a of touch.asked) a.settle(false);
      await tick();
      expect(slabs.slabBytes).toBe(0);
      const v = slabs.keep(Buffer.alloc(4096, 7), false);
      expect(v.equals(Buffer.alloc(4096, 7))).toBe(true);
      expect(slabs.slabsPrefaulted).toBe(0);
      // Taking a slab asks for the reserve again.
      expect(touch.asked.length).toBe(2 * RESERVE_SLABS);
      for (const a of touch.asked.slice(RESERVE_SLABS)) a.settle(true);
      await tick();
      expect(slabs.slabBytes).toBe((1 + RESERVE_SLABS) * SLAB_BYTES);
      slabs.trim();
    });

    it('a backup beginning on a volume being written warms its payload memory for the writes it will hold; the metadata policy does not', async () => {
      const t = await openTestVolume(mk(), 'vol', 64 << 20);
      // The engine's write-rate sampler tells the volume its rate (a manual clock: 1 s between samples).
      let now = 0;
      const sampler = new WriteRateSampler(() => [t.vol], () => undefined, () => now);
      sampler.sample();
      const bytes = 3 * SLAB_BYTES; // 3 MiB in the last second: 24 slabs for 8 s
      for (let o = 0; o < bytes; o += 1 << 20) await t.vol.write(o, pattern(o & 0xff, 1 << 20));
      now += 1000;
      sampler.sample();
      expect(t.vol.recentBytesPerSec).toBe(bytes);
      const s = await BackupSession.begin(t.vol, 'r', 'range', noProbe);
      // Settled before the point in time: the slabs are there (the reserve refill may add its own).
      expect(t.vol.payloadSlabBytes()).toBeGreaterThanOrEqual((bytes / SLAB_BYTES) * WARM_AHEAD_SECONDS * SLAB_BYTES);
      await t.vol.write(4096, pattern(0x5c, 4096)); // held, in a warmed slab
      expect(t.vol.holdState().heldCount).toBe(1);
      expect((await t.vol.read(4096, 4096)).equals(pattern(0x5c, 4096))).toBe(true);
      await s.end('snap');
      expect((await t.vol.read(4096, 4096)).equals(pattern(0x5c, 4096))).toBe(true);
      await t.vol.close();

      const m = await openTestVolume(mk(), 'meta', 64 << 20);
      m.vol.recentBytesPerSec = bytes;
      const ms = await BackupSession.begin(m.vol, 'm', 'metadata', noProbe);
      expect(m.vol.payloadSlabBytes()).toBeLessThanOrEqual(RESERVE_SLABS * SLAB_BYTES);
      await ms.end('snap');
      await m.vol.close();
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
