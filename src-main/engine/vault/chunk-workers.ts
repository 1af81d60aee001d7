/**
 * A small pool of worker threads that hash, compress, encrypt and decode chunks, so the main
 * thread only does I/O and both cores work during a backup or restore. Buffers are transferred,
 * not copied: a buffer handed to the pool must not be used by the caller afterwards.
 *
 * Invariant: every task settles exactly once (result, or error — also when a worker dies or the
 * pool is closed); close() terminates every worker this pool started.
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { HoldfastError } from '../../../src-shared/errors';
import { makeChunkCodec, type CodecKeys } from './chunk-codec';

type Op = 'digest' | 'encode' | 'digestEncode' | 'decode';

interface Task {
  id: number;
  op: Op;
  buf: Buffer;
  name?: string;
  resolve: (r: WorkerReply) => void;
  reject: (e: Error) => void;
}

interface WorkerReply {
  id: number;
  digest?: Uint8Array;
  out?: Uint8Array;
  buf?: Uint8Array;
  error?: string;
  corrupt?: boolean;
}

const WORKER_SOURCE = (factory: string) => `
const { parentPort, workerData } = require('node:worker_threads');
const crypto = require('node:crypto');
const zstd = require(workerData.zstdPath);
const keys = {
  encKey: workerData.encKey ? Buffer.from(workerData.encKey) : null,
  idKey: workerData.idKey ? Buffer.from(workerData.idKey) : null,
  level: workerData.level,
};
const codec = (${factory})({ crypto, zstd, keys });
const own = (b) => (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b : Buffer.from(b));
parentPort.on('message', (m) => {
  try {
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
    parentPort.postMessage({ id: m.id, error: String(e && e.message || e), corrupt: !!(e && e.corrupt) });
  }
});
`;

function zstdPath(): string {
  // Resolved on the main thread, where module resolution knows the app's node_modules.
  return require.resolve('zstd-napi');
}

/** A buffer that owns its whole ArrayBuffer, so it can be transferred without taking neighbours along. */
function transferable(b: Buffer): Buffer {
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && !(b.buffer instanceof SharedArrayBuffer) ? b : Buffer.from(b);
}

const asBuffer = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

export class ChunkWorkers {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: Task[] = [];
  private readonly running = new Map<Worker, Task>();
  private nextId = 1;
  private closed = false;

  constructor(keys: CodecKeys, count = Math.max(1, Math.min(4, os.availableParallelism()))) {
    const source = WORKER_SOURCE(makeChunkCodec.toString());
    for (let i = 0; i < count; i++) {
      const w = new Worker(source, {
        eval: true,
        workerData: { zstdPath: zstdPath(), encKey: keys.encKey, idKey: keys.idKey, level: keys.level },
      });
      w.on('message', (r: WorkerReply) => this.settle(w, r));
      w.on('error', (e) => this.fail(w, e));
      w.on('exit', () => this.fail(w, new Error('chunk worker exited')));
      this.workers.push(w);
      this.idle.push(w);
    }
  }

  get size(): number {
    return this.workers.length;
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
    for (const t of this.queue.splice(0)) t.reject(new HoldfastError('CANCELLED', 'The chunk workers were closed.'));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private run(op: Op, buf: Buffer, name?: string): Promise<WorkerReply> {
    if (this.closed) return Promise.reject(new HoldfastError('CANCELLED', 'The chunk workers were closed.'));
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, op, buf: transferable(buf), name, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.idle.length && this.queue.length) {
      const w = this.idle.pop()!;
      const t = this.queue.shift()!;
      this.running.set(w, t);
      w.postMessage({ id: t.id, op: t.op, buf: t.buf, name: t.name }, [t.buf.buffer as ArrayBuffer]);
    }
  }

  private settle(w: Worker, r: WorkerReply): void {
    const t = this.running.get(w);
    if (!t || t.id !== r.id) return;
    this.running.delete(w);
    this.idle.push(w);
    if (r.error !== undefined) {
      t.reject(
        r.corrupt
          ? new HoldfastError('VAULT_CORRUPT', `Chunk ${t.name} is damaged: ${r.error}.`, { chunk: t.name })
          : new HoldfastError('INTERNAL', `Chunk worker failed: ${r.error}`),
      );
    } else t.resolve(r);
    this.pump();
  }

  private fail(w: Worker, e: Error): void {
    const t = this.running.get(w);
    this.running.delete(w);
    const i = this.workers.indexOf(w);
    if (i >= 0) this.workers.splice(i, 1);
    const j = this.idle.indexOf(w);
    if (j >= 0) this.idle.splice(j, 1);
    if (t) t.reject(this.closed ? new HoldfastError('CANCELLED', 'The chunk workers were closed.') : new HoldfastError('INTERNAL', `Chunk worker failed: ${e.message}`));
    if (!this.workers.length) for (const q of this.queue.splice(0)) q.reject(new HoldfastError('INTERNAL', 'No chunk workers left.'));
  }
}
