/**
 * The transmission phase of one connection: parses request headers straight out of the
 * received chunks, validates every field before acting on it, runs requests concurrently
 * against the export and replies as each completes (possibly out of order).
 *
 * Invariants:
 * - A reply is sent only after the export's promise settles; a write is acknowledged only
 *   after export.write resolved (durable too when FUA was set).
 * - Memory per connection is bounded: requests are admitted only while the bytes in flight
 *   stay under maxInflightBytes (one oversized request may run alone) and the socket's
 *   unsent reply bytes stay under the same cap; otherwise the socket is paused, so a client
 *   that never reads its replies stalls only itself. Payloads of refused writes are drained
 *   by counting, never buffered.
 * - Anything thrown by the export becomes an NBD errno reply; nothing here throws past the
 *   event loop.
 * - Requests need no alignment (minimum block size 1, as qemu-nbd advertises for files):
 *   unaligned ones go through read-modify-write in unaligned.ts.
 * - Bad request magic means the stream cannot be framed any more: hard disconnect.
 */
import type { AllocationExtent, BlockExport } from '../engine/block-export';
import { errorMessage, nbdErrno } from './errno';
import type { Negotiated } from './handshake';
import * as P from './protocol';
import { readAround, readAny, type ReadPart, trimAny, writeAny, writeZeroesAny } from './unaligned';
import { MIN_CLASS, replyBuffers } from './reply-buffers';
import type { Wire } from './wire';

/** Bookkeeping cost charged to every request on top of its payload, so floods of tiny requests are bounded too. */
const REQUEST_OVERHEAD = 512;
/** Most descriptors in one block-status reply. */
const MAX_EXTENTS = 1024;
/** Reads from this size on are sent with holes where the export knows zeroes. */
const SPARSE_READ_MIN = 64 * 1024;
/** Cost charged for trim / write-zeroes: the export may allocate a zero buffer up to this size. */
const ZERO_COST_CAP = 1024 * 1024;
/** After a shutdown request, give in-flight requests this long before a hard disconnect. */
const SHUTDOWN_GRACE_MS = 10_000;

export interface TransmissionOptions {
  maxInflightBytes: number;
  log: (msg: string) => void;
}

export class Transmission {
  private readonly ex: BlockExport;
  private readonly structured: boolean;
  private readonly baseAllocation: boolean;
  private readonly cap: number;
  private readonly log: (msg: string) => void;
  private readonly scratch = Buffer.allocUnsafe(P.REQUEST_HEADER_SIZE);

  private inflightCount = 0;
  private inflightBytes = 0;
  /** Bytes of a refused write payload still to be discarded from the stream. */
  private skipRemaining = 0;
  private paused = false;
  /** No more requests are parsed (NBD_CMD_DISC received, or the server is shutting us down). */
  private stopping = false;
  private readonly idleWaiters: Array<() => void> = [];

  constructor(
    private readonly wire: Wire,
    readonly negotiated: Negotiated,
    opts: TransmissionOptions,
  ) {
    this.ex = negotiated.lease.export;
    this.structured = negotiated.structuredReplies;
    this.baseAllocation = negotiated.baseAllocation;
    this.cap = Math.max(opts.maxInflightBytes, P.MAX_BLOCK_SIZE + REQUEST_OVERHEAD);
    this.log = opts.log;
    wire.onData = () => this.parse();
    wire.socket.on('drain', () => this.maybeResume());
    wire.onClose(() => {
      for (const w of this.idleWaiters.splice(0)) w();
    });
    // Requests may have arrived together with the last option.
    this.parse();
  }

  get exportName(): string {
    return this.ex.name;
  }

  /** Stops taking requests, lets in-flight ones finish (bounded by a grace period), then closes. */
  shutdown(): Promise<void> {
    this.stopping = true;
    this.pauseReading();
    if (this.wire.closed) return Promise.resolve();
    const timer = setTimeout(() => this.wire.destroy(), SHUTDOWN_GRACE_MS);
    timer.unref?.();
    return new Promise<void>((resolve) => {
      this.wire.onClose(() => {
        clearTimeout(timer);
        resolve();
      });
      if (this.inflightCount === 0) this.wire.end();
    });
  }

  private parse(): void {
    const q = this.wire.queue;
    while (!this.stopping && !this.wire.closed) {
      if (this.skipRemaining > 0) {
        this.skipRemaining -= q.skip(this.skipRemaining);
        if (this.skipRemaining > 0) return;
        continue;
      }
      if (q.length < P.REQUEST_HEADER_SIZE) return;
      const [b, o] = q.peek(P.REQUEST_HEADER_SIZE, this.scratch);
      if (b.readUInt32BE(o) !== P.NBD_REQUEST_MAGIC) {
        this.log('nbd: bad request magic; disconnecting client');
        this.wire.destroy();
        return;
      }
      const flags = b.readUInt16BE(o + 4);
      const type = b.readUInt16BE(o + 6);
      const cookieHi = b.readUInt32BE(o + 8);
      const cookieLo = b.readUInt32BE(o + 12);
      const offHi = b.readUInt32BE(o + 16);
      const offset = offHi * 0x100000000 + b.readUInt32BE(o + 20);
      const length = b.readUInt32BE(o + 24);
      // Offsets past 2^53 cannot be represented exactly; no export is that big, so they are "past the end".
      const offsetValid = offHi <= 0x1fffff;

      let cost = REQUEST_OVERHEAD;
      if (type === P.NBD_CMD_READ || type === P.NBD_CMD_WRITE) cost += Math.min(length, P.MAX_BLOCK_SIZE);
      else if (type === P.NBD_CMD_TRIM || type === P.NBD_CMD_WRITE_ZEROES) cost += Math.min(length, ZERO_COST_CAP);
      if (!this.admits(cost)) {
        this.pauseReading();
        return;
      }

      if (type === P.NBD_CMD_WRITE) {
        const err = this.checkWrite(flags, offset, offsetValid, length);
        if (err !== 0) {
          q.skip(P.REQUEST_HEADER_SIZE);
          this.skipRemaining = length;
          this.replyError(cookieHi, cookieLo, err, 'Write refused.');
          continue;
        }
        if (q.length < P.REQUEST_HEADER_SIZE + length) return; // wait for the payload
        q.skip(P.REQUEST_HEADER_SIZE);
        // A view of the received chunk where possible: the export may keep it (held writes).
        const data = q.takeView(length);
        this.begin(cost);
        this.track(this.callSafely(() => writeAny(this.ex, offset, data, (flags & P.NBD_CMD_FLAG_FUA) !== 0, true)), cost, cookieHi, cookieLo, true);
        continue;
      }

      q.skip(P.REQUEST_HEADER_SIZE);
      switch (type) {
        case P.NBD_CMD_READ:
          this.read(flags, offset, offsetValid, length, cost, cookieHi, cookieLo);
          break;
        case P.NBD_CMD_DISC:
          this.stopping = true;
          q.clear();
          if (this.inflightCount === 0) this.wire.end();
          return;
        case P.NBD_CMD_FLUSH:
          if ((flags & ~P.NBD_CMD_FLAG_FUA) !== 0 || offset !== 0 || length !== 0) {
            this.replyError(cookieHi, cookieLo, P.NBD_EINVAL, 'Flush takes no offset, length or flags.');
            break;
          }
          this.begin(cost);
          this.track(this.callSafely(() => this.ex.flush()), cost, cookieHi, cookieLo, true);
          break;
        case P.NBD_CMD_TRIM:
        case P.NBD_CMD_WRITE_ZEROES:
          this.zeroOrTrim(type, flags, offset, offsetValid, length, cost, cookieHi, cookieLo);
          break;
        case P.NBD_CMD_BLOCK_STATUS:
          this.blockStatus(flags, offset, offsetValid, length, cost, cookieHi, cookieLo);
          break;
        default:
          this.replyError(cookieHi, cookieLo, P.NBD_EINVAL, `Unknown command ${type}.`);
      }
    }
  }

  /** 0 when the write may proceed, else the errno to reply. */
  private checkWrite(flags: number, offset: number, offsetValid: boolean, length: number): number {
    if ((flags & ~P.NBD_CMD_FLAG_FUA) !== 0) return P.NBD_EINVAL;
    if (this.ex.readOnly) return P.NBD_EPERM;
    if (length === 0 || length > P.MAX_BLOCK_SIZE) return P.NBD_EINVAL;
    if (!offsetValid || offset + length > this.ex.size()) return P.NBD_ENOSPC;
    return 0;
  }

  /** Range check shared by read, trim, write-zeroes and block status; 0 when valid. */
  private checkRange(offset: number, offsetValid: boolean, length: number, pastEnd: number): number {
    if (length === 0) return P.NBD_EINVAL;
    if (!offsetValid || offset + length > this.ex.size()) return pastEnd;
    return 0;
  }

  private read(flags: number, offset: number, offsetValid: boolean, length: number, cost: number, hi: number, lo: number): void {
    const allowed = P.NBD_CMD_FLAG_FUA | (this.structured ? P.NBD_CMD_FLAG_DF : 0);
    let err = (flags & ~allowed) !== 0 || length > P.MAX_BLOCK_SIZE ? P.NBD_EINVAL : 0;
    if (err === 0) err = this.checkRange(offset, offsetValid, length, P.NBD_EINVAL);
    if (err !== 0) {
      this.replyError(hi, lo, err, 'Read refused: check offset and length.');
      return;
    }
    this.begin(cost);
    // Known zeroes go as holes when the client takes the reply in chunks (qemu-nbd's sparse reads).
    const holes = this.structured && (flags & P.NBD_CMD_FLAG_DF) === 0 && length >= SPARSE_READ_MIN ? (this.ex.knownZeroes?.(offset, length) ?? []) : [];
    if (holes.length > 0) {
      this.callSafely(() => readAround(this.ex, offset, length, holes, replyBuffers)).then(
        (parts) => {
          this.replySparse(hi, lo, parts);
          this.finish(cost);
        },
        (e: unknown) => {
          this.replyError(hi, lo, nbdErrno(e, false), errorMessage(e));
          this.finish(cost);
        },
      );
      return;
    }
    const into = this.ex.readInto && length >= MIN_CLASS && offset % this.ex.sectorSize === 0 && length % this.ex.sectorSize === 0;
    if (into) {
      // Into reused memory (reply-buffers.ts); after a failure it is not reused.
      const mem = replyBuffers.take(length);
      const view = mem.subarray(0, length);
      this.callSafely(() => this.ex.readInto!(offset, view)).then(
        () => {
          this.replyData(hi, lo, offset, view, () => replyBuffers.give(mem));
          this.finish(cost);
        },
        (e: unknown) => {
          this.replyError(hi, lo, nbdErrno(e, false), errorMessage(e));
          this.finish(cost);
        },
      );
      return;
    }
    this.callSafely(() => readAny(this.ex, offset, length)).then(
      (data) => {
        if (data.length !== length) this.replyError(hi, lo, P.NBD_EIO, 'Short read from the export.');
        else this.replyData(hi, lo, offset, data);
        this.finish(cost);
      },
      (e: unknown) => {
        this.replyError(hi, lo, nbdErrno(e, false), errorMessage(e));
        this.finish(cost);
      },
    );
  }

  private zeroOrTrim(type: number, flags: number, offset: number, offsetValid: boolean, length: number, cost: number, hi: number, lo: number): void {
    const isZero = type === P.NBD_CMD_WRITE_ZEROES;
    const allowed = P.NBD_CMD_FLAG_FUA | (isZero ? P.NBD_CMD_FLAG_NO_HOLE | P.NBD_CMD_FLAG_FAST_ZERO : 0);
    let err = (flags & ~allowed) !== 0 ? P.NBD_EINVAL : 0;
    if (err === 0 && this.ex.readOnly) err = P.NBD_EPERM;
    if (err === 0) err = this.checkRange(offset, offsetValid, length, isZero ? P.NBD_ENOSPC : P.NBD_EINVAL);
    // No export here can zero faster than writing zeroes, so a fast-zero request fails at once.
    if (err === 0 && (flags & P.NBD_CMD_FLAG_FAST_ZERO) !== 0) err = P.NBD_ENOTSUP;
    if (err !== 0) {
      this.replyError(hi, lo, err, isZero ? 'Write zeroes refused.' : 'Trim refused.');
      return;
    }
    const fua = (flags & P.NBD_CMD_FLAG_FUA) !== 0;
    this.begin(cost);
    const op = isZero
      ? this.callSafely(() => writeZeroesAny(this.ex, offset, length, { fua, noHole: (flags & P.NBD_CMD_FLAG_NO_HOLE) !== 0 }))
      : this.callSafely(async () => {
          await trimAny(this.ex, offset, length);
          if (fua) await this.ex.flush();
        });
    this.track(op, cost, hi, lo, true);
  }

  private blockStatus(flags: number, offset: number, offsetValid: boolean, length: number, cost: number, hi: number, lo: number): void {
    let err = (flags & ~(P.NBD_CMD_FLAG_FUA | P.NBD_CMD_FLAG_REQ_ONE)) !== 0 || !this.baseAllocation ? P.NBD_EINVAL : 0;
    if (err === 0) err = this.checkRange(offset, offsetValid, length, P.NBD_EINVAL);
    if (err !== 0) {
      this.replyError(hi, lo, err, this.baseAllocation ? 'Block status refused.' : 'Select base:allocation first.');
      return;
    }
    const max = (flags & P.NBD_CMD_FLAG_REQ_ONE) !== 0 ? 1 : MAX_EXTENTS;
    this.begin(cost);
    this.callSafely(() => this.ex.blockStatus(offset, length, max)).then(
      (extents) => {
        this.replyBlockStatus(hi, lo, encodeExtents(extents, length, max));
        this.finish(cost);
      },
      (e: unknown) => {
        this.replyError(hi, lo, nbdErrno(e, false), errorMessage(e));
        this.finish(cost);
      },
    );
  }

  /** Replies with success or the mapped error once `op` settles. */
  private track(op: Promise<void>, cost: number, hi: number, lo: number, isWrite: boolean): void {
    op.then(
      () => {
        this.replySimple(hi, lo, 0);
        this.finish(cost);
      },
      (e: unknown) => {
        this.replyError(hi, lo, nbdErrno(e, isWrite), errorMessage(e));
        this.finish(cost);
      },
    );
  }

  /** Turns a synchronous throw from the export into a rejected promise. */
  private callSafely<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return fn();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  private admits(cost: number): boolean {
    if (this.wire.socket.writableLength > this.cap) return false;
    return this.inflightCount === 0 || this.inflightBytes + cost <= this.cap;
  }

  private begin(cost: number): void {
    this.inflightCount++;
    this.inflightBytes += cost;
  }

  private finish(cost: number): void {
    this.inflightCount--;
    this.inflightBytes -= cost;
    if (this.inflightCount === 0) {
      if (this.stopping && !this.wire.closed) this.wire.end();
      for (const w of this.idleWaiters.splice(0)) w();
    }
    this.maybeResume();
  }

  private pauseReading(): void {
    if (this.paused) return;
    this.paused = true;
    this.wire.socket.pause();
  }

  private maybeResume(): void {
    if (!this.paused || this.stopping || this.wire.closed) return;
    if (this.wire.socket.writableLength > this.cap) return;
    this.paused = false;
    this.wire.socket.resume();
    this.parse();
  }

  // ---- replies ----

  /** Called before the request's `finish`: an in-flight count of 1 is this request alone. */
  private replySimple(hi: number, lo: number, errno: number): void {
    this.wire.simpleReply(P.NBD_SIMPLE_REPLY_MAGIC, errno, hi, lo, this.inflightCount <= 1);
  }

  /** `sent`: called once the socket no longer needs data's memory. */
  private replyData(hi: number, lo: number, offset: number, data: Buffer, sent?: () => void): void {
    if (!this.structured) {
      const h = Buffer.allocUnsafe(P.SIMPLE_REPLY_SIZE);
      h.writeUInt32BE(P.NBD_SIMPLE_REPLY_MAGIC, 0);
      h.writeUInt32BE(0, 4);
      h.writeUInt32BE(hi, 8);
      h.writeUInt32BE(lo, 12);
      this.wire.send(h);
      this.wire.send(data, sent);
      return;
    }
    const h = Buffer.allocUnsafe(P.STRUCTURED_REPLY_HEADER_SIZE + 8);
    h.writeUInt32BE(P.NBD_STRUCTURED_REPLY_MAGIC, 0);
    h.writeUInt16BE(P.NBD_REPLY_FLAG_DONE, 4);
    h.writeUInt16BE(P.NBD_REPLY_TYPE_OFFSET_DATA, 6);
    h.writeUInt32BE(hi, 8);
    h.writeUInt32BE(lo, 12);
    h.writeUInt32BE(8 + data.length, 16);
    h.writeUInt32BE(Math.floor(offset / 0x100000000), 20);
    h.writeUInt32BE(offset >>> 0, 24);
    this.wire.send(h);
    this.wire.send(data, sent);
  }

  /** A read's reply as OFFSET_DATA and OFFSET_HOLE chunks, in offset order, the last one DONE. */
  private replySparse(hi: number, lo: number, parts: ReadPart[]): void {
    parts.forEach((p, i) => {
      const hole = p.data === null;
      const h = Buffer.allocUnsafe(P.STRUCTURED_REPLY_HEADER_SIZE + (hole ? 12 : 8));
      h.writeUInt32BE(P.NBD_STRUCTURED_REPLY_MAGIC, 0);
      h.writeUInt16BE(i === parts.length - 1 ? P.NBD_REPLY_FLAG_DONE : 0, 4);
      h.writeUInt16BE(hole ? P.NBD_REPLY_TYPE_OFFSET_HOLE : P.NBD_REPLY_TYPE_OFFSET_DATA, 6);
      h.writeUInt32BE(hi, 8);
      h.writeUInt32BE(lo, 12);
      h.writeUInt32BE(hole ? 12 : 8 + p.length, 16);
      h.writeUInt32BE(Math.floor(p.offset / 0x100000000), 20);
      h.writeUInt32BE(p.offset >>> 0, 24);
      if (hole) h.writeUInt32BE(p.length, 28);
      this.wire.send(h);
      if (!hole) this.wire.send(p.data!, p.mem ? () => replyBuffers.give(p.mem!) : undefined);
    });
  }

  private replyError(hi: number, lo: number, errno: number, message: string): void {
    if (!this.structured) {
      this.replySimple(hi, lo, errno);
      return;
    }
    const msg = Buffer.from(message.slice(0, 200), 'utf8');
    const h = Buffer.allocUnsafe(P.STRUCTURED_REPLY_HEADER_SIZE + 6 + msg.length);
    h.writeUInt32BE(P.NBD_STRUCTURED_REPLY_MAGIC, 0);
    h.writeUInt16BE(P.NBD_REPLY_FLAG_DONE, 4);
    h.writeUInt16BE(P.NBD_REPLY_TYPE_ERROR, 6);
    h.writeUInt32BE(hi, 8);
    h.writeUInt32BE(lo, 12);
    h.writeUInt32BE(6 + msg.length, 16);
    h.writeUInt32BE(errno, 20);
    h.writeUInt16BE(msg.length, 24);
    msg.copy(h, 26);
    this.wire.send(h);
  }

  private replyBlockStatus(hi: number, lo: number, descriptors: number[]): void {
    const n = descriptors.length / 2;
    const h = Buffer.allocUnsafe(P.STRUCTURED_REPLY_HEADER_SIZE + 4 + 8 * n);
    h.writeUInt32BE(P.NBD_STRUCTURED_REPLY_MAGIC, 0);
    h.writeUInt16BE(P.NBD_REPLY_FLAG_DONE, 4);
    h.writeUInt16BE(P.NBD_REPLY_TYPE_BLOCK_STATUS, 6);
    h.writeUInt32BE(hi, 8);
    h.writeUInt32BE(lo, 12);
    h.writeUInt32BE(4 + 8 * n, 16);
    h.writeUInt32BE(P.BASE_ALLOCATION_ID, 20);
    for (let i = 0; i < descriptors.length; i++) h.writeUInt32BE(descriptors[i]!, 24 + 4 * i);
    this.wire.send(h);
  }
}

/**
 * Turns an export's extents into (length, flags) pairs: clipped to the request, zero-length
 * and malformed extents dropped, neighbours with equal flags merged. Never empty: with no
 * usable extents the whole range is reported as plain data (status 0 is always safe).
 */
export function encodeExtents(extents: AllocationExtent[], requestLength: number, max: number): number[] {
  const out: number[] = [];
  let covered = 0;
  for (const e of extents) {
    if (covered >= requestLength) break;
    if (!(e.length > 0) || !Number.isFinite(e.length)) continue;
    const len = Math.min(Math.floor(e.length), requestLength - covered);
    const flags = (e.hole ? P.NBD_STATE_HOLE : 0) | (e.zero ? P.NBD_STATE_ZERO : 0);
    const last = out.length - 2;
    if (last >= 0 && out[last + 1] === flags) out[last] += len;
    else {
      if (out.length / 2 >= max) break;
      out.push(len, flags);
    }
    covered += len;
  }
  if (out.length === 0) out.push(requestLength, 0);
  return out;
}
