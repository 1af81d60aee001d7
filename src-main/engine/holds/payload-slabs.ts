/**
 * Memory for held writes' payloads: size-class slots in 1 MiB slabs, reused once a payload is
 * gone. A held write's bytes stay in memory until it is released, often for seconds, at
 * thousands of held writes a second. Two costs shaped this:
 * - One allocation per write means one ArrayBuffer (and its view) per write that survives the
 *   young generation; V8's scavenges copy every such survivor, and while a backup held writes
 *   that made each scavenge take 2–3 ms instead of 0.5. So payloads share slabs, and a held
 *   write keeps only the slab's ArrayBuffer and an offset (see HeldWrite).
 * - Fresh memory costs a page fault per 4 KiB on first touch: 12–14 µs on the 2-vCPU CI
 *   machine, against 0.4 µs to copy 4 KiB into a page already touched. With slabs written once
 *   and left to the garbage collector, every held write paid that fault (the largest part of
 *   what holding added to a write). So a slot is reused once its payload is gone, and slabs
 *   stay allocated until the hold queue has been empty for a while (`trimWhenIdle`).
 * - Reuse cannot help while the held data grows — a backup's first seconds, and a random writer
 *   on a large volume holds more for most of a range backup — and each new slab still faulted
 *   on the thread that answers NBD clients (~6 µs per held 4 KiB write on the 2-vCPU bench VM,
 *   a third of the engine's own time for a write). With a `warmSlab` source (the engine's:
 *   prefault.ts, off the engine thread) a few slabs are faulted in ahead of need
 *   (RESERVE_SLABS), from the backup's begin (`warm`) and whenever one is taken, so new slabs
 *   come warm.
 * - Even so, the first seconds of a backup stayed its worst: every write is held then (nothing
 *   is copied yet), the held data grows at the full write rate, and each slab faulted in while
 *   the clients write costs them. So before a backup begins, `warmAhead` has the engine's page
 *   toucher (prefault.ts) fault in the slab memory the backup's first WARM_AHEAD_SECONDS will
 *   hold, and the backup's flag is set once that is done. Hold-only rounds of a range backup
 *   at QD16 and 12k writes/s, 3 interleaved pairs: p99 of their first 6 s 2.5–2.6 ms →
 *   0.7–1.7 ms (0.7–1.8 over all 7 runs), of the whole round 0.87–1.31 → 0.60–1.07 ms
 *   (`bench/results/nbd-latency-session31.txt`).
 * - A slab's memory is mapped twice on a VM: for the copy into it (user space) and for the
 *   journal's write from it (the kernel); a kernel prefault covers only the second, a
 *   user-space touch only the first (prefault.ts has the figures). The engine's `warmSlab`, the
 *   page toucher, does both, for the reserve as for warmAhead.
 *
 * Size classes are powers of two from 512 bytes to SLAB_PAYLOAD_MAX; each slab serves one
 * class. A payload of n bytes takes a slot of the smallest class ≥ n (at most 2× its size).
 *
 * Invariants:
 * - A slot is handed out by keep() only while no view of it is in use: its payload was
 *   `release`d (applied, dropped, or superseded for good) and every read that took views of
 *   held payloads before that (`pin`) has finished. A view handed to a read's overlay or to
 *   a journal batch therefore keeps its bytes for as long as it is used: the journal writes a
 *   batch before any of its entries can be released, and reads pin.
 * - release() is called at most once per kept payload, with the slab and offset keep() returned.
 * - Slab memory is at most the payload bytes held at the peak (×2 for the class rounding),
 *   plus one partly used slab per class, plus slots released while reads were pinned, plus
 *   what is faulted in ahead (RESERVE_SLABS, or what warmAhead was asked for, at most
 *   WARM_AHEAD_MAX_BYTES); the hold
 *   queue's bytes are bounded by the journal's capacity in ack mode `journal`.
 */
import { invariant } from '../../../src-shared/errors';

/** Payloads up to this size share slabs; larger ones get memory of their own. */
export const SLAB_PAYLOAD_MAX = 256 << 10;
export const SLAB_BYTES = 1 << 20;
const MIN_CLASS_SHIFT = 9; // 512 bytes: a sector
const CLASSES = Math.log2(SLAB_PAYLOAD_MAX) - MIN_CLASS_SHIFT + 1;
/** The hold queue empty this long: slabs are dropped (the memory goes back to the system). */
export const SLAB_IDLE_MS = 30_000;
/**
 * Slabs faulted in ahead of need: at 6k held 4 KiB writes a second (a queue-depth-1 writer)
 * one slab lasts ~40 ms and faulting one in takes the page toucher ~4 ms.
 */
export const RESERVE_SLABS = 4;
/** warmAhead faults in the payload memory of this many seconds of writes at the rate before the backup. */
export const WARM_AHEAD_SECONDS = 8;
/** …but at most this much (a volume written faster holds more than this only after its first seconds). */
export const WARM_AHEAD_MAX_BYTES = 512 << 20;

/** A slab of `bytes` (zeroes) whose pages were faulted in off the calling thread. */
export type WarmSlab = (bytes: number) => Promise<Buffer>;

function classOf(n: number): number {
  return n <= 1 << MIN_CLASS_SHIFT ? 0 : 32 - Math.clz32(n - 1) - MIN_CLASS_SHIFT;
}

const SLOT_CHUNK_SHIFT = 10;
const SLOT_CHUNK = 1 << SLOT_CHUNK_SHIFT;
const SLOT_CHUNK_MASK = SLOT_CHUNK - 1;

/**
 * Free slots of one class: a stack of (slab, offset) in fixed chunks of SLOT_CHUNK entries (no
 * object per slot). Not one growing array: a JavaScript array reallocates and copies its whole
 * backing store as it grows, into fresh memory, and with ~100k free slots (a range backup's
 * releases) one push took 13–16 ms on the bench VM — a stall of the thread that answers NBD
 * clients. A new chunk is one small allocation; chunks emptied by pops stay for the next
 * pushes, until clear().
 */
export class SlotStack {
  private readonly mems: (ArrayBufferLike | undefined)[][] = [];
  private readonly ats: Int32Array[] = [];
  private n = 0;

  push(mem: ArrayBufferLike, at: number): void {
    invariant(at >= 0 && at < SLAB_BYTES, 'a slot starts inside its slab');
    const c = this.n >>> SLOT_CHUNK_SHIFT;
    const i = this.n & SLOT_CHUNK_MASK;
    if (c === this.mems.length) {
      this.mems.push(new Array<ArrayBufferLike | undefined>(SLOT_CHUNK));
      this.ats.push(new Int32Array(SLOT_CHUNK));
    }
    this.mems[c]![i] = mem;
    this.ats[c]![i] = at;
    this.n++;
  }

  /** The last slot pushed, as a view of `length` bytes, taken off the stack. */
  popView(length: number): Buffer {
    invariant(this.n > 0, 'a slot is popped from a non-empty stack');
    this.n--;
    const c = this.n >>> SLOT_CHUNK_SHIFT;
    const i = this.n & SLOT_CHUNK_MASK;
    const mem = this.mems[c]![i]!;
    this.mems[c]![i] = undefined;
    return Buffer.from(mem, this.ats[c]![i]!, length);
  }

  get length(): number {
    return this.n;
  }

  /** Forgets every slot and its chunks. */
  clear(): void {
    this.mems.length = 0;
    this.ats.length = 0;
    this.n = 0;
  }
}

export class PayloadSlabs {
  /** Slab → its class, for every slab this allocator made (and still owns). */
  private readonly slabClass = new Map<ArrayBufferLike, number>();
  private readonly free: SlotStack[] = Array.from({ length: CLASSES }, () => new SlotStack());
  /** Per class: the slab being carved, and how far. */
  private readonly carving: (Buffer | null)[] = new Array<Buffer | null>(CLASSES).fill(null);
  private readonly carved: number[] = new Array<number>(CLASSES).fill(0);
  /** Released while a pinned read may hold a view: slot, class and the pin epoch it waits for. */
  private quarantine: { mem: ArrayBufferLike; at: number; cls: number; epoch: number }[] = [];
  private epoch = 0;
  private readonly pins = new Set<number>();
  private idleTimer: ReturnType<typeof setTimeout> | null = null;
  /** Slabs faulted in and not yet carved (RESERVE_SLABS at most, with those being faulted). */
  private readonly reserve: Buffer[] = [];
  private filling = 0;
  /** Bumped by trim(): a slab faulted in for an earlier generation is not kept. */
  private generation = 0;
  /** Counters for tests: slabs allocated (taken into use), of those prefaulted, slots reused. */
  slabsAllocated = 0;
  slabsPrefaulted = 0;
  slotsReused = 0;

  /**
   * `warmSlab`: where the reserve and warmAhead get slabs already faulted in (the engine's:
   * prefault.ts, touchedSlab); null: no reserve, warmAhead does nothing, and new slabs fault on
   * first touch.
   */
  constructor(private readonly warmSlab: WarmSlab | null = null) {}

  /**
   * A copy of `data` that the caller may keep until it calls release(). `stable`: the caller
   * never changes `data` again, so a large payload that owns most of its memory is kept as it
   * is (a small view of a large buffer is copied: it would keep the whole buffer alive).
   */
  keep(data: Buffer, stable: boolean): Buffer {
    const n = data.byteLength;
    if (n > SLAB_PAYLOAD_MAX) {
      if (stable && n * 2 >= data.buffer.byteLength) return data;
      const own = Buffer.allocUnsafeSlow(n);
      data.copy(own);
      return own;
    }
    this.cancelIdle();
    const cls = classOf(n);
    const f = this.free[cls]!;
    let view: Buffer;
    if (f.length > 0) {
      view = f.popView(n);
      this.slotsReused++;
    } else {
      const size = 1 << (cls + MIN_CLASS_SHIFT);
      let slab = this.carving[cls]!;
      if (slab === null || this.carved[cls]! + size > SLAB_BYTES) {
        slab = this.carving[cls] = this.newSlab();
        this.carved[cls] = 0;
        this.slabClass.set(slab.buffer, cls);
        this.slabsAllocated++;
      }
      view = slab.subarray(this.carved[cls]!, this.carved[cls]! + n);
      this.carved[cls]! += size;
    }
    data.copy(view);
    return view;
  }

  /** A slab for carving: a faulted-in one from the reserve if there is one. */
  private newSlab(): Buffer {
    const warm = this.reserve.pop();
    if (warm) this.slabsPrefaulted++;
    this.refill();
    return warm ?? Buffer.allocUnsafeSlow(SLAB_BYTES);
  }

  /** Holding is about to start (a backup begins): fault in the reserve now. */
  warm(): void {
    this.cancelIdle();
    this.refill();
  }

  /**
   * A backup is about to begin on a volume written at `bytesPerSec`: gets (from `warmSlab`) the
   * slab memory WARM_AHEAD_SECONDS of its writes will take when every one is held, at most
   * WARM_AHEAD_MAX_BYTES, counting the slabs already there (the hold queue is empty when a
   * backup begins, so every slab kept since the last one is free for reuse). Settles when those
   * slabs are in the reserve (or failed: they are then simply not there, and slabs come as
   * before). The reserve goes the usual way: taken by new slabs, dropped by trim().
   */
  async warmAhead(bytesPerSec: number): Promise<void> {
    const warmSlab = this.warmSlab;
    if (!warmSlab || !(bytesPerSec > 0)) return;
    this.cancelIdle();
    const want = Math.ceil(Math.min(bytesPerSec * WARM_AHEAD_SECONDS, WARM_AHEAD_MAX_BYTES) / SLAB_BYTES);
    const faulting: Promise<void>[] = [];
    for (let have = this.slabClass.size + this.reserve.length + this.filling; have < want; have++) {
      faulting.push(this.toReserve(warmSlab(SLAB_BYTES)));
    }
    await Promise.all(faulting);
  }

  /** Tops the reserve up to RESERVE_SLABS from `warmSlab`. */
  private refill(): void {
    const warmSlab = this.warmSlab;
    if (!warmSlab) return;
    while (this.reserve.length + this.filling < RESERVE_SLABS) void this.toReserve(warmSlab(SLAB_BYTES));
  }

  /**
   * Counts a slab being faulted in (`filling`); it joins the reserve once ready, unless trim()
   * came first. One that fails is simply not there: a new slab then faults on first touch.
   */
  private toReserve(slab: Promise<Buffer>): Promise<void> {
    this.filling++;
    const gen = this.generation;
    return slab.then(
      (s) => {
        this.filling--;
        if (gen === this.generation) this.reserve.push(s);
      },
      () => {
        this.filling--;
      },
    );
  }

  /** The payload keep() returned at (mem, byteOffset) is gone for good: its slot may be reused. */
  release(mem: ArrayBufferLike, at: number): void {
    const cls = this.slabClass.get(mem);
    if (cls === undefined) return; // its own memory (large), or a slab dropped by trim()
    invariant(at % (1 << (cls + MIN_CLASS_SHIFT)) === 0, 'a released payload starts a slot of its slab');
    if (this.pins.size === 0) this.free[cls]!.push(mem, at);
    else this.quarantine.push({ mem, at, cls, epoch: this.epoch });
  }

  /**
   * A read takes views of held payloads: slots released from now on are not reused until it
   * calls the returned function (once).
   */
  pin(): () => void {
    const e = ++this.epoch;
    this.pins.add(e);
    return () => {
      invariant(this.pins.delete(e), 'a pin is released once');
      this.drainQuarantine();
    };
  }

  private drainQuarantine(): void {
    const q = this.quarantine;
    if (q.length === 0) return;
    // A slot released at epoch r may have been seen by the reads pinned at epochs ≤ r.
    let oldest = Infinity;
    for (const p of this.pins) if (p < oldest) oldest = p;
    let i = 0;
    while (i < q.length && q[i]!.epoch < oldest) {
      const s = q[i++]!;
      this.free[s.cls]!.push(s.mem, s.at);
    }
    if (i > 0) this.quarantine = q.slice(i);
  }

  /** The hold queue is empty: drop the slabs if it stays so for `idleMs` (the timer does not keep the process alive). */
  trimWhenIdle(idleMs = SLAB_IDLE_MS): void {
    if (this.idleTimer !== null || this.slabClass.size + this.reserve.length + this.filling === 0) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      this.trim();
    }, idleMs);
    this.idleTimer.unref?.();
  }

  private cancelIdle(): void {
    if (this.idleTimer === null) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }

  /**
   * Forgets every slab (the garbage collector frees each once no view of it is left). Safe at
   * any time: a payload kept before and released after is unknown to release(), which ignores
   * it; that only costs reuse.
   */
  trim(): void {
    this.cancelIdle();
    this.slabClass.clear();
    for (const f of this.free) f.clear();
    this.carving.fill(null);
    this.carved.fill(0);
    this.quarantine = [];
    this.reserve.length = 0;
    this.generation++;
  }

  /** Bytes of slab memory this allocator owns (slabs in use and the faulted-in reserve). */
  get slabBytes(): number {
    return (this.slabClass.size + this.reserve.length) * SLAB_BYTES;
  }
}
