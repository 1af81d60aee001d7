/**
 * Faults a buffer's pages in off the engine thread, so the thread that later writes into it
 * (the engine's, answering NBD clients) does not pay a page fault per 4 KiB of fresh memory.
 * On the 2-vCPU PVM bench machine a page is mapped twice over: once for user space and once for
 * the kernel's copies from and to it, and each first access costs a trip through the hypervisor.
 * Per 4 KiB page of fresh memory, measured there (node, 64 MiB buffers; a worker thread on the
 * other CPU did the faulting, so it carries over between threads and CPUs):
 *
 *                                       engine copies 4 KiB in   engine pwrite()s 4 KiB from it
 *   untouched                                  14.4 µs                      28.6 µs
 *   touched from user space only                0.2–0.8 µs                   8.7–9.3 µs
 *   read from /dev/zero into (kernel) only      5.5–6.0 µs                   3.3 µs
 *   both                                        0.2–0.8 µs                   3.3–3.9 µs
 *
 * A held write is copied into its slab (user space) and then written from it to the journal
 * (the kernel), so its slab memory wants both; with only the user-space touch each held write
 * paid ~5 µs in the journal's write on the engine thread (its commit time during a range backup
 * fell from 97 to 64 ms/s once both were done, bench/results/nbd-latency-session32.txt).
 * - `prefaultPages`: reads /dev/zero into the buffer on the libuv thread pool (the kernel zeroes
 *   each page as it faults it in; where there is no /dev/zero, random bytes instead): the
 *   kernel's side only. The buffer's bytes afterwards are unspecified, and the caller must not
 *   touch it until the promise settles.
 * - `touchedSlab`: a small worker thread, the page toucher, allocates shared memory (a
 *   SharedArrayBuffer), reads /dev/zero into it and then writes one byte into every page from
 *   user space: both sides. The worker allocates it too: zero-filled memory may be zeroed by
 *   the allocating thread (glibc's calloc does for memory it reuses), which would fault it in
 *   on the engine thread. The toucher pays every fault itself (~4.1 ms per MiB; 3.0 with the
 *   user-space touch alone), on the CPU the backup's CPU split gives the chunk workers.
 *
 * The toucher is one more thread of the engine process, started on the first request: while a
 * backup splits the CPUs (cpu-split.ts) it belongs with the chunk workers, away from the engine
 * thread, so it reports its thread id to the placement given with `placePageToucher`.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { ThreadPlacement } from '../vault/cpu-split';

/** /dev/zero, opened on first use and kept open; null where it cannot be opened. */
let zeroFd: number | null | undefined;

/** Faults `buf`'s pages in by the kernel, on the libuv thread pool. */
export function prefaultPages(buf: Buffer): Promise<void> {
  if (zeroFd === undefined) {
    try {
      zeroFd = fs.openSync('/dev/zero', 'r');
    } catch {
      zeroFd = null;
    }
  }
  const fd = zeroFd;
  if (fd === null) return new Promise((resolve, reject) => crypto.randomFill(buf, (e) => (e ? reject(e) : resolve())));
  return new Promise((resolve, reject) => {
    // A read of /dev/zero may stop short (a signal): go on from where it stopped.
    const from = (at: number): void =>
      fs.read(fd, buf, at, buf.length - at, null, (e, n) => {
        if (e) reject(e);
        else if (n === 0) reject(new Error('/dev/zero returned no bytes'));
        else if (at + n < buf.length) from(at + n);
        else resolve();
      });
    from(0);
  });
}

/** Every 4 KiB (the smallest page size; on larger pages a few writes are redundant). */
const TOUCH_STRIDE = 4096;

/**
 * The toucher's code: it allocates the shared memory itself (zero-filled memory may be zeroed
 * by whoever allocates it: that thread takes the faults), has the kernel fill it from /dev/zero
 * (the kernel's mapping; where /dev/zero cannot be read, that side is left to the first write
 * from it) and then writes into every page (the user-space mapping; a read would map the
 * shared zero page), then hands the memory over.
 */
const TOUCHER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
let tid = null;
try { tid = Number(fs.readlinkSync('/proc/thread-self').split('/').pop()) || null; } catch {}
let zero = null;
try { zero = fs.openSync('/dev/zero', 'r'); } catch {}
parentPort.postMessage({ ready: true, tid });
parentPort.on('message', (m) => {
  const sab = new SharedArrayBuffer(m.bytes);
  const u = new Uint8Array(sab);
  try {
    for (let at = 0; zero !== null && at < u.length; ) {
      const n = fs.readSync(zero, u, at, u.length - at, null);
      if (n <= 0) break;
      at += n;
    }
  } catch {}
  for (let o = 0; o < u.length; o += ${TOUCH_STRIDE}) u[o] = 0;
  parentPort.postMessage({ id: m.id, sab });
});
`;

interface Pending {
  resolve: (slab: Buffer) => void;
  reject: (e: Error) => void;
}

/**
 * The page toucher: one worker thread, started on first use, that keeps the process alive only
 * while a request waits. Requests are answered in order. If it fails or exits, every waiting
 * request rejects and later ones are refused (the caller falls back to the kernel).
 */
export class PageToucher {
  private worker: Worker | null = null;
  private failed = false;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private tid: number | null = null;
  private placement: ThreadPlacement | null = null;

  /** Whether it can take requests (it has not failed). */
  get usable(): boolean {
    return !this.failed;
  }

  get placedWith(): ThreadPlacement | null {
    return this.placement;
  }

  /** Where to report the toucher's thread (now, if it runs, and whenever it starts later). */
  place(placement: ThreadPlacement | null): void {
    if (this.placement && this.tid !== null) this.placement.removeWorker(this.tid);
    this.placement = placement;
    if (placement && this.tid !== null) placement.addWorker(this.tid);
  }

  /** `bytes` of shared memory (zeroes), allocated and with every page faulted in (both sides) by the toucher's thread. */
  slab(bytes: number): Promise<Buffer> {
    if (!(Number.isSafeInteger(bytes) && bytes > 0)) return Promise.reject(new Error(`a slab of ${bytes} bytes`));
    const w = this.start();
    if (!w) return Promise.reject(new Error('the page toucher is not running'));
    const id = this.nextId++;
    return new Promise<Buffer>((resolve, reject) => {
      // A request keeps the process alive while it waits (as any I/O does); an idle toucher does not.
      if (this.pending.size === 0) w.ref();
      this.pending.set(id, { resolve, reject });
      w.postMessage({ id, bytes });
    });
  }

  /** Stops the worker (waiting requests reject); the next request starts a new one. */
  async close(): Promise<void> {
    const w = this.worker;
    if (!w) return;
    this.gone(w, new Error('the page toucher was closed'));
    this.failed = false;
    await w.terminate();
  }

  private start(): Worker | null {
    if (this.worker) return this.worker;
    if (this.failed) return null;
    let w: Worker;
    try {
      w = new Worker(TOUCHER_SOURCE, { eval: true });
    } catch {
      this.failed = true;
      return null;
    }
    this.worker = w;
    w.on('message', (m: { ready?: boolean; tid?: number | null; id?: number; sab?: SharedArrayBuffer }) => {
      if (m.ready) {
        if (m.tid && this.worker === w) {
          this.tid = m.tid;
          this.placement?.addWorker(m.tid);
        }
        return;
      }
      const p = this.pending.get(m.id!);
      if (!p) return;
      this.pending.delete(m.id!);
      if (this.pending.size === 0) w.unref();
      if (m.sab) p.resolve(Buffer.from(m.sab));
      else p.reject(new Error('the page toucher answered without memory'));
    });
    w.on('error', (e) => this.gone(w, e));
    w.on('exit', (code) => this.gone(w, new Error(`the page toucher exited (code ${code})`)));
    // Idle until a request comes; after the listeners, since adding a 'message' listener refs
    // the worker's port again.
    w.unref();
    return w;
  }

  private gone(w: Worker, e: Error): void {
    if (this.worker !== w) return;
    this.worker = null;
    this.failed = true;
    if (this.tid !== null) this.placement?.removeWorker(this.tid);
    this.tid = null;
    const waiting = [...this.pending.values()];
    this.pending.clear();
    for (const p of waiting) p.reject(e);
  }
}

/** The engine process's toucher (one thread for every volume's slabs). */
export const pageToucher = new PageToucher();

/** Reports the toucher's thread to `placement` (the backup CPU split) from now on. */
export function placePageToucher(placement: ThreadPlacement): void {
  pageToucher.place(placement);
}

/** `placement` is going away: stop reporting to it (if it is still the one reported to). */
export function unplacePageToucher(placement: ThreadPlacement): void {
  if (pageToucher.placedWith === placement) pageToucher.place(null);
}

/**
 * A slab of `bytes` faulted in off the calling thread: shared memory the page toucher allocated
 * and faulted in on both sides; where the toucher cannot run (or failed), memory of this
 * thread's faulted in by the kernel on the thread pool instead (its user-space side then
 * faults on the first copy into it).
 */
export function touchedSlab(bytes: number): Promise<Buffer> {
  const byKernel = async () => {
    const buf = Buffer.allocUnsafeSlow(bytes);
    await prefaultPages(buf);
    return buf;
  };
  return pageToucher.usable ? pageToucher.slab(bytes).catch(byKernel) : byKernel();
}
