/**
 * A small pool of worker threads that hash, compress, encrypt and decode chunks, so the main
 * thread only does I/O and both cores work during a backup or restore. Two ways to hand data
 * over:
 *
 * - transfer: a Buffer's memory moves to the worker and the result comes back in a fresh one
 *   (restore, verify, consolidation); a buffer handed over must not be used afterwards;
 * - slots (backups): a fixed set of SharedArrayBuffer-backed input/output buffers, allocated
 *   once per pool. The caller reads a chunk straight into a slot's input, the worker checks it
 *   for zeroes, hashes it and encodes it into the slot's output. No chunk-sized allocation
 *   happens on the calling thread, which keeps the garbage collector (and its pauses) away
 *   from the thread that also serves NBD writes.
 *
 * On Linux the workers run at a lower scheduling priority (nice is per thread there), so a
 * backup saturating both cores still lets the engine's own thread answer writes promptly.
 * Threads start one at a time, as waiting work needs them (see start()).
 *
 * Invariant: every task settles exactly once (result, or error — also when a worker dies or the
 * pool is closed); close() terminates every worker this pool started; at most `count` threads
 * are ever started. A slot is owned by one
 * holder between acquire() and release(); the pool never touches a slot no task names.
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { HoldfastError, invariant } from '../../../src-shared/errors';
import { alignedSharedMemory, alignUp } from '../env/aligned-memory';
import fs from 'node:fs';
import { localCodec, makeChunkCodec, type ChunkCodec, type CodecKeys, type ZstdBinding } from './chunk-codec';
import type { ThreadPlacement } from './cpu-split';

type Op = 'digest' | 'encode' | 'digestEncode' | 'decode' | 'slotDigest' | 'slotEncode' | 'slotDecode' | 'slotPack';

interface Task {
  id: number;
  op: Op;
  buf: Buffer | null;
  slot?: number;
  len?: number;
  name?: string;
  zeroCheck?: boolean;
  zeroGrain?: number;
  pack?: { reads: Float64Array; picks: Uint32Array; blockSize: number };
  resolve: (r: WorkerReply) => void;
  reject: (e: Error) => void;
}

interface WorkerReply {
  id: number;
  /** Sent once, when the worker has loaded its codec (id 0), with its thread id (Linux). */
  ready?: boolean;
  tid?: number | null;
  digest?: Uint8Array;
  out?: Uint8Array;
  buf?: Uint8Array;
  zero?: boolean;
  outLen?: number;
  plainTail?: boolean;
  zeroPieces?: Uint8Array | null;
  zeroBlocks?: Uint8Array;
  /** slotPack: bytes kept (non-zero picks). */
  length?: number;
  error?: string;
  code?: string;
  corrupt?: boolean;
}

/**
 * slotPack's work: gathers `reads` (fd, uncached fd or -1, position, length, slot offset) into
 * `input` (a file ending early reads as zeroes; a piece through its uncached descriptor until
 * the kernel refuses with EINVAL — unaligned memory or rest — and buffered from there), keeps
 * the non-zero blocks at `picks` packed from the start, and hashes and encodes them into
 * `output`. Runs in a worker, or on the caller's thread while no worker has booted;
 * self-contained, as its source is what the workers run.
 */
function packSlot(
  fs: { readSync(fd: number, buf: Buffer, at: number, len: number, pos: number): number },
  codec: ChunkCodec,
  input: Buffer,
  output: Buffer,
  reads: Float64Array,
  picks: Uint32Array,
  bs: number,
): { zeroBlocks: Uint8Array; length: number; digest?: Buffer; outLen: number; plainTail?: boolean } {
  for (let i = 0; i < reads.length; i += 5) {
    let direct = reads[i + 1]!;
    const pos = reads[i + 2]!;
    const len = reads[i + 3]!;
    const at = reads[i + 4]!;
    if (at + len > input.length) throw new Error('a gather read overruns its slot');
    for (let done = 0; done < len; ) {
      let n: number;
      if (direct >= 0) {
        try {
          n = fs.readSync(direct, input, at + done, len - done, pos + done);
        } catch (e) {
          if ((e as { code?: string }).code !== 'EINVAL') throw e;
          direct = -1;
          continue;
        }
      } else n = fs.readSync(reads[i]!, input, at + done, len - done, pos + done);
      if (n === 0) {
        input.fill(0, at + done, at + len);
        break;
      }
      done += n;
    }
  }
  const zeroBlocks = new Uint8Array(picks.length);
  let kept = 0;
  for (let j = 0; j < picks.length; j++) {
    if (j > 0 && picks[j]! <= picks[j - 1]!) throw new Error('picked blocks ascend');
    const src = picks[j]! * bs;
    if (src + bs > input.length) throw new Error('a picked block lies outside its slot');
    if (codec.isZero(input.subarray(src, src + bs))) {
      zeroBlocks[j] = 1;
      continue;
    }
    if (src !== kept * bs) input.copy(input, kept * bs, src, src + bs); // src >= kept * bs: never overwrites a block still to pick
    kept++;
  }
  if (kept === 0) return { zeroBlocks, length: 0, outLen: 0 };
  const plain = input.subarray(0, kept * bs);
  const digest = codec.digest(plain);
  const h = codec.encodeHead(plain, digest.toString('hex'), output);
  return { zeroBlocks, length: kept * bs, digest, outLen: h.length, plainTail: h.plainTail };
}

/** The workers' source, built once. */
let workerSource: string | undefined;
const WORKER_SOURCE = (factory: string, pack: string) => `
const { parentPort, workerData } = require('node:worker_threads');
const crypto = require('node:crypto');
const fs = require('node:fs');
const zstd = require(workerData.zstdPath);
const zstdBinding = workerData.zstdBindingPath ? require(workerData.zstdBindingPath) : null;
const keys = {
  encKey: workerData.encKey ? Buffer.from(workerData.encKey) : null,
  idKey: workerData.idKey ? Buffer.from(workerData.idKey) : null,
  level: workerData.level,
};
const codec = (${factory})({ crypto, zstd, zstdBinding, keys });
const packSlot = (${pack});
const own = (b) => (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b : Buffer.from(b));
if (workerData.nice !== null) {
  try { require('node:os').setPriority(workerData.nice); } catch {}
}
let slots = null;
const slotIn = (m) => Buffer.from(slots.input, m.slot * slots.inputBytes, m.len);
const slotOut = (m) => Buffer.from(slots.output, m.slot * slots.outputBytes, slots.outputBytes);
let tid = null;
try { tid = Number(fs.readlinkSync('/proc/thread-self').split('/').pop()) || null; } catch {}
parentPort.postMessage({ id: 0, ready: true, tid });
parentPort.on('message', (m) => {
  try {
    if (m.op === 'slots') {
      slots = m;
      return;
    }
    if (m.op === 'slotDigest') {
      const buf = slotIn(m);
      if (m.zeroCheck && codec.isZero(buf)) parentPort.postMessage({ id: m.id, zero: true });
      else parentPort.postMessage({ id: m.id, zero: false, digest: codec.digest(buf) });
      return;
    }
    if (m.op === 'slotEncode') {
      const h = codec.encodeHead(slotIn(m), m.name, slotOut(m));
      parentPort.postMessage({ id: m.id, outLen: h.length, plainTail: h.plainTail });
      return;
    }
    if (m.op === 'slotPack') {
      const r = packSlot(fs, codec, Buffer.from(slots.input, m.slot * slots.inputBytes, slots.inputBytes), slotOut(m), m.pack.reads, m.pack.picks, m.pack.blockSize);
      parentPort.postMessage({ id: m.id, ...r });
      return;
    }
    if (m.op === 'slotDecode') {
      const plain = Buffer.from(slots.input, m.slot * slots.inputBytes, slots.inputBytes);
      const n = codec.decodeInto(slotOut(m).subarray(0, m.len), m.name, plain);
      let zeroPieces = null;
      if (m.zeroGrain) {
        zeroPieces = new Uint8Array(Math.ceil(n / m.zeroGrain));
        for (let k = 0; k < zeroPieces.length; k++) zeroPieces[k] = codec.isZero(plain.subarray(k * m.zeroGrain, Math.min(n, (k + 1) * m.zeroGrain))) ? 1 : 0;
      }
      parentPort.postMessage({ id: m.id, outLen: n, zeroPieces });
      return;
    }
    const buf = Buffer.from(m.buf.buffer, m.buf.byteOffset, m.buf.byteLength);
    if (m.op === 'digest') {
      const digest = codec.digest(buf);
      parentPort.postMessage({ id: m.id, digest, buf }, [buf.buffer]);
    } else if (m.op === 'encode') {
      const out = own(codec.encode(buf, m.name));
      parentPort.postMessage({ id: m.id, out }, [out.buffer]);
    } else if (m.op === 'digestEncode') {
      const digest = codec.digest(buf);
      const out = own(codec.encode(buf, digest.toString('hex')));
      parentPort.postMessage({ id: m.id, digest, out }, [out.buffer]);
    } else if (m.op === 'decode') {
      const out = own(codec.decode(buf, m.name));
      parentPort.postMessage({ id: m.id, out }, [out.buffer]);
    }
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String(e && e.message || e), code: e && typeof e.code === 'string' ? e.code : undefined, corrupt: !!(e && e.corrupt) });
  }
});
`;

function zstdPath(): string {
  // Resolved on the main thread, where module resolution knows the app's node_modules.
  return require.resolve('zstd-napi');
}

/** zstd-napi's low-level binding (compress into a given buffer), or null if this build lacks it. */
function zstdBindingPath(): string | null {
  try {
    return require.resolve('zstd-napi/binding');
  } catch {
    return null;
  }
}

/** A buffer that owns its whole ArrayBuffer, so it can be transferred without taking neighbours along. */
function transferable(b: Buffer): Buffer {
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && !(b.buffer instanceof SharedArrayBuffer) ? b : Buffer.from(b);
}

const asBuffer = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

/** Nice value for the workers: per thread on Linux only (elsewhere it would lower the whole app). */
const WORKER_NICE = process.platform === 'linux' ? 10 : null;

/** Worst-case growth of an encoded chunk over its plaintext (header, nonce, tag; stored raw when zstd does not help). */
const ENCODE_OVERHEAD = 64;

/** One shared input/output buffer pair; see ChunkWorkers.slots(). */
export interface ChunkSlot {
  readonly index: number;
  /** Where the caller puts a chunk's plaintext (at most the pool's slot size). */
  readonly input: Buffer;
  /** Where the worker puts the encoded chunk file; valid for `outLen` bytes after an encode. */
  readonly output: Buffer;
}

class SlotSet {
  readonly all: ChunkSlot[] = [];
  private readonly free: ChunkSlot[] = [];
  private readonly waiters: ((s: ChunkSlot) => void)[] = [];
  constructor(
    count: number,
    readonly inputBytes: number,
    readonly outputBytes: number,
    readonly input: SharedArrayBuffer,
    readonly output: SharedArrayBuffer,
  ) {
    for (let i = 0; i < count; i++) {
      const slot = {
        index: i,
        input: Buffer.from(input, i * inputBytes, inputBytes),
        output: Buffer.from(output, i * outputBytes, outputBytes),
      };
      this.all.push(slot);
      this.free.push(slot);
    }
  }
  get size(): number {
    return this.all.length;
  }
  acquire(): Promise<ChunkSlot> {
    const s = this.free.pop();
    if (s) return Promise.resolve(s);
    return new Promise((resolve) => this.waiters.push(resolve));
  }
  release(s: ChunkSlot): void {
    invariant(this.all[s.index] === s && !this.free.includes(s), 'a slot is released once, by its holder');
    const w = this.waiters.shift();
    if (w) w(s);
    else this.free.push(s);
  }
}

export class ChunkWorkers {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: Task[] = [];
  private readonly running = new Map<Worker, Task>();
  private nextId = 1;
  private closed = false;
  private slotSet: SlotSet | null = null;
  private readyCount = 0;
  /** Threads that have booted and not exited. */
  private readonly up = new Set<Worker>();
  /** Threads started so far (at most `count`). */
  private spawned = 0;
  private local: ChunkCodec | null = null;
  private started = false;
  /** Thread ids of the workers that reported one (for `placement`). */
  private readonly tids = new Map<Worker, number>();

  /**
   * The threads start on the first task that needs them, or on start(): a worker costs ~70 ms
   * of CPU to boot on a small VM, more than a small incremental's whole packing work (which
   * slotPack does on the calling thread until a worker is up).
   */
  constructor(
    private readonly keys: CodecKeys,
    private readonly count = Math.max(1, Math.min(4, os.availableParallelism())),
    /** Told each worker thread's id once it runs, and when it exits (the engine's CPU split). */
    private readonly placement: ThreadPlacement | null = null,
  ) {}

  /**
   * Starts the pool (once): one worker thread boots in the background, and the others join
   * only when work waits for a thread while every thread that is up is busy (see grow). A
   * throttled backup — 16–32 MiB/s while volumes are written — never keeps one worker busy,
   * and each boot is ~70 ms of CPU that the volumes' clients would wait behind; a backup at
   * full speed has its second worker within one boot.
   */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    this.spawn();
  }

  /** Boots one more worker thread. */
  private spawn(): void {
    invariant(this.spawned < this.count, 'a pool starts at most `count` worker threads');
    this.spawned++;
    const keys = this.keys;
    const source = (workerSource ??= WORKER_SOURCE(makeChunkCodec.toString(), packSlot.toString()));
    const w = new Worker(source, {
      eval: true,
      workerData: { zstdPath: zstdPath(), zstdBindingPath: zstdBindingPath(), encKey: keys.encKey, idKey: keys.idKey, level: keys.level, nice: WORKER_NICE },
    });
    w.on('message', (r: WorkerReply) => this.settle(w, r));
    w.on('error', (e) => this.fail(w, e));
    w.on('exit', () => this.fail(w, new Error('chunk worker exited')));
    this.workers.push(w);
    this.idle.push(w);
    const set = this.slotSet;
    if (set) w.postMessage({ op: 'slots', input: set.input, output: set.output, inputBytes: set.inputBytes, outputBytes: set.outputBytes });
  }

  /**
   * Work waits, no thread is idle and none is still booting (a booting thread takes the work
   * already handed to it): one more thread, up to `count`.
   */
  private grow(): void {
    if (this.closed || !this.started || this.spawned >= this.count) return;
    if (this.queue.length === 0 || this.idle.length > 0) return;
    for (const w of this.workers) if (!this.up.has(w)) return;
    this.spawn();
  }

  /**
   * Starts the pool and resolves once a thread is up — or after `timeoutMs`, or at once when
   * one is already up, the pool is closed or no thread is left to start. (A backup of volumes
   * being written boots its worker before it begins holding their writes.)
   */
  whenUp(timeoutMs: number): Promise<void> {
    this.start();
    if (this.up.size > 0 || this.closed || this.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(done, timeoutMs);
      t.unref?.();
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.upWaiters.push(done);
    });
  }

  private upWaiters: (() => void)[] = [];

  /** Worker threads running now (booting or up). */
  get threads(): number {
    return this.workers.length;
  }

  /** Whether the threads were started (by start() or a task that needs them). */
  get threadsStarted(): boolean {
    return this.started;
  }

  /**
   * Worker threads the pool works with: `count` until threads die (each one that dies is gone
   * for good; 0 once every thread the pool may start has died). Threads not booted yet count:
   * callers size their pipelines by it.
   */
  get size(): number {
    return this.workers.length + (this.count - this.spawned);
  }

  /**
   * Whether a worker has started up (loaded its codec). A worker thread takes ~0.1 s to boot on
   * a small VM; until one has, work the caller can do itself is better not queued behind the boot.
   */
  get booted(): boolean {
    return this.readyCount > 0;
  }

  /**
   * The pool's slots of `bytes` each: one set per pool, shared by everything using the pool (a
   * backup and a restore of the same vault take turns), at least `count` of them and at least
   * two per worker plus two. Memory: slots × (2 × bytes + overhead), shared with the workers.
   */
  slots(count: number, bytes: number): { readonly size: number; acquire(): Promise<ChunkSlot>; release(s: ChunkSlot): void } {
    if (this.slotSet) {
      invariant(this.slotSet.all.length >= count && this.slotSet.inputBytes >= bytes, 'a pool has one slot set, sized by its first user');
      return this.slotSet;
    }
    const n = Math.max(count, this.size * 2 + 2);
    // Inputs in page-aligned memory, each a whole number of pages: backups read straight into them uncached (O_DIRECT).
    const inputBytes = alignUp(bytes);
    const outputBytes = bytes + ENCODE_OVERHEAD;
    const set = new SlotSet(n, inputBytes, outputBytes, alignedSharedMemory(n * inputBytes), new SharedArrayBuffer(n * outputBytes));
    for (const w of this.workers) w.postMessage({ op: 'slots', input: set.input, output: set.output, inputBytes, outputBytes });
    this.slotSet = set;
    return set;
  }

  /** Zero check (when asked) and digest of slot.input[0, len). */
  async slotDigest(slot: ChunkSlot, len: number, zeroCheck: boolean): Promise<{ zero: true } | { zero: false; digest: Buffer }> {
    const r = await this.runSlot('slotDigest', slot, len, undefined, zeroCheck);
    return r.zero ? { zero: true } : { zero: false, digest: asBuffer(r.digest!) };
  }

  /**
   * Encodes slot.input[0, len) as chunk `name` into slot.output. The chunk file is
   * slot.output[0, outLen), followed by slot.input[0, len) when plainTail (stored as is).
   */
  async slotEncode(slot: ChunkSlot, len: number, name: string): Promise<{ outLen: number; plainTail: boolean }> {
    const r = await this.runSlot('slotEncode', slot, len, name);
    return { outLen: r.outLen!, plainTail: r.plainTail === true };
  }

  /**
   * Builds a delta chunk in the slot on a worker: reads `reads` (fd, uncached fd or -1,
   * position, length, slot offset — five numbers each, from SnapshotSource.locate) into
   * slot.input, then keeps the blocks at `picks` (ascending, in blockSize units of the slot)
   * that are not all zero, packed from the slot's start, and hashes and encodes them (the digest names the chunk). zeroBlocks[j] is 1
   * for a pick that was all zero. length 0 (no digest): every pick was zero, nothing to store.
   * The file's parts are fileParts(slot, length, result). A failed read rejects with its errno code.
   */
  async slotPack(
    slot: ChunkSlot,
    reads: Float64Array,
    picks: Uint32Array,
    blockSize: number,
  ): Promise<{ zeroBlocks: Uint8Array; length: number; digest: Buffer | null; outLen: number; plainTail: boolean }> {
    invariant(reads.length % 5 === 0 && picks.length > 0, 'a pack names whole reads and at least one block');
    let r: { zeroBlocks?: Uint8Array; length?: number; digest?: Uint8Array; outLen?: number; plainTail?: boolean };
    if (!this.booted && !this.closed) {
      // No worker is up yet (~0.1 s after the pool starts on a small VM): a pack is a few ms of
      // work, cheaper done here than queued behind the boot.
      invariant(this.slotSet?.all[slot.index] === slot, 'slot tasks name a slot of this pool');
      if (!this.local) {
        const binding = zstdBindingPath();
        this.local = localCodec(this.keys, binding ? (require(binding) as ZstdBinding) : null);
      }
      r = packSlot(fs, this.local, slot.input, slot.output, reads, picks, blockSize);
    } else r = await this.runSlot('slotPack', slot, 0, undefined, undefined, undefined, { reads, picks, blockSize });
    const length = r.length!;
    return { zeroBlocks: r.zeroBlocks!, length, digest: length ? asBuffer(r.digest!) : null, outLen: r.outLen!, plainTail: r.plainTail === true };
  }

  /** The chunk file a slot encode produced, as the parts to write. */
  static fileParts(slot: ChunkSlot, len: number, e: { outLen: number; plainTail: boolean }): Buffer[] {
    const head = slot.output.subarray(0, e.outLen);
    return e.plainTail ? [head, slot.input.subarray(0, len)] : [head];
  }

  /**
   * Decodes the chunk file in slot.output[0, fileLen) into slot.input and checks it is chunk
   * `name`; returns the plaintext length and, when zeroGrain is given, which zeroGrain-sized
   * pieces of it are all zero (1) — for sparse restores.
   */
  async slotDecode(slot: ChunkSlot, fileLen: number, name: string, zeroGrain = 0): Promise<{ length: number; zeroPieces: Uint8Array | null }> {
    invariant(fileLen <= slot.output.length, 'a chunk file fits its slot');
    const r = await this.runSlot('slotDecode', slot, fileLen, name, undefined, zeroGrain);
    return { length: r.outLen!, zeroPieces: r.zeroPieces ?? null };
  }

  /** Digest of plain; the buffer comes back (it travelled to the worker and returns). */
  async digest(plain: Buffer): Promise<{ digest: Buffer; buf: Buffer }> {
    const r = await this.run('digest', plain);
    return { digest: asBuffer(r.digest!), buf: asBuffer(r.buf!) };
  }

  async encode(plain: Buffer, name: string): Promise<Buffer> {
    return asBuffer((await this.run('encode', plain, name)).out!);
  }

  async digestEncode(plain: Buffer): Promise<{ digest: Buffer; file: Buffer }> {
    const r = await this.run('digestEncode', plain);
    return { digest: asBuffer(r.digest!), file: asBuffer(r.out!) };
  }

  /** Decodes and checks a chunk file; a mismatch rejects with VAULT_CORRUPT naming the chunk. */
  async decode(file: Buffer, name: string): Promise<Buffer> {
    return asBuffer((await this.run('decode', file, name)).out!);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const done of this.upWaiters.splice(0)) done();
    for (const tid of this.tids.values()) this.placement?.removeWorker(tid);
    this.tids.clear();
    for (const t of this.queue.splice(0)) t.reject(new HoldfastError('CANCELLED', 'The chunk workers were closed.'));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private run(op: Op, buf: Buffer, name?: string): Promise<WorkerReply> {
    if (this.closed) return Promise.reject(new HoldfastError('CANCELLED', 'The chunk workers were closed.'));
    this.start();
    if (this.size === 0) return Promise.reject(new HoldfastError('INTERNAL', 'No chunk workers left.'));
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, op, buf: transferable(buf), name, resolve, reject });
      this.pump();
    });
  }

  private runSlot(op: Op, slot: ChunkSlot, len: number, name?: string, zeroCheck?: boolean, zeroGrain?: number, pack?: Task['pack']): Promise<WorkerReply> {
    if (this.closed) return Promise.reject(new HoldfastError('CANCELLED', 'The chunk workers were closed.'));
    invariant(this.slotSet?.all[slot.index] === slot && len <= (op === 'slotDecode' ? this.slotSet.outputBytes : this.slotSet.inputBytes), 'slot tasks name a slot of this pool and fit it');
    this.start();
    if (this.size === 0) return Promise.reject(new HoldfastError('INTERNAL', 'No chunk workers left.'));
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, op, buf: null, slot: slot.index, len, name, zeroCheck, zeroGrain, pack, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    this.grow();
    while (this.idle.length && this.queue.length) {
      const w = this.idle.pop()!;
      const t = this.queue.shift()!;
      this.running.set(w, t);
      if (t.buf) w.postMessage({ id: t.id, op: t.op, buf: t.buf, name: t.name }, [t.buf.buffer as ArrayBuffer]);
      else w.postMessage({ id: t.id, op: t.op, slot: t.slot, len: t.len, name: t.name, zeroCheck: t.zeroCheck, zeroGrain: t.zeroGrain, pack: t.pack });
    }
  }

  private settle(w: Worker, r: WorkerReply): void {
    if (r.ready) {
      this.readyCount++;
      this.up.add(w);
      for (const done of this.upWaiters.splice(0)) done();
      if (r.tid && this.placement && this.workers.includes(w)) {
        this.tids.set(w, r.tid);
        this.placement.addWorker(r.tid);
      }
      return;
    }
    const t = this.running.get(w);
    if (!t || t.id !== r.id) return;
    this.running.delete(w);
    this.idle.push(w);
    if (r.error !== undefined) {
      t.reject(
        r.corrupt
          ? new HoldfastError('VAULT_CORRUPT', `Chunk ${t.name} is damaged: ${r.error}.`, { chunk: t.name })
          : r.code
            ? Object.assign(new Error(r.error), { code: r.code }) // an I/O error: the caller knows which file it was
            : new HoldfastError('INTERNAL', `Chunk worker failed: ${r.error}`),
      );
    } else t.resolve(r);
    this.pump();
  }

  private fail(w: Worker, e: Error): void {
    const tid = this.tids.get(w);
    if (tid !== undefined) {
      this.tids.delete(w);
      this.placement?.removeWorker(tid);
    }
    const t = this.running.get(w);
    this.running.delete(w);
    const i = this.workers.indexOf(w);
    if (i >= 0) this.workers.splice(i, 1);
    const j = this.idle.indexOf(w);
    if (j >= 0) this.idle.splice(j, 1);
    if (t) t.reject(this.closed ? new HoldfastError('CANCELLED', 'The chunk workers were closed.') : new HoldfastError('INTERNAL', `Chunk worker failed: ${e.message}`));
    this.up.delete(w);
    if (!this.closed && this.spawned < this.count && this.queue.length) this.pump(); // a thread not started yet takes over
    if (!this.workers.length && this.spawned >= this.count) for (const q of this.queue.splice(0)) q.reject(new HoldfastError('INTERNAL', 'No chunk workers left.'));
  }
}
