/**
 * One client's socket as the protocol code sees it: received bytes land in a ByteQueue;
 * the handshake awaits `need(n)`, the transmission phase takes over with `onData`. Outgoing
 * messages written in the same tick are corked into one writev. Simple replies (16 bytes, the
 * answer to every write) are packed into a shared slab and sent with one socket write per
 * event-loop turn: at tens of thousands of writes a second, a stream write per reply cost more
 * than the write itself. Order is kept: any other message flushes the packed replies first.
 * Once closed, nothing is sent and every pending `need` rejects, so no code path waits on a
 * dead client.
 */
import type { Socket } from 'node:net';
import { HoldfastError } from '../../src-shared/errors';
import { ByteQueue } from './byte-queue';

/** Slab for packed simple replies (4096 of them). */
const OUT_SLAB = 64 << 10;

export class Wire {
  readonly queue = new ByteQueue();
  closed = false;
  private waiter: { n: number; resolve: () => void; reject: (e: Error) => void } | null = null;
  private corked = false;
  /** Packed simple replies not yet handed to the socket: out[outStart, outEnd). */
  private out = Buffer.allocUnsafe(OUT_SLAB);
  private outStart = 0;
  private outEnd = 0;
  private flushScheduled = false;
  private tickScheduled = false;
  private readonly closeHandlers: Array<() => void> = [];
  /** Set by the transmission phase: called after every received chunk. */
  onData: (() => void) | null = null;

  constructor(readonly socket: Socket) {
    socket.setNoDelay?.(true);
    socket.on('data', (chunk: Buffer) => {
      if (this.closed) return;
      this.queue.push(chunk);
      const w = this.waiter;
      if (w) {
        if (this.queue.length >= w.n) {
          this.waiter = null;
          w.resolve();
        }
      } else if (this.onData) this.onData();
    });
    socket.on('error', () => this.markClosed());
    socket.on('close', () => this.markClosed());
    socket.on('end', () => this.markClosed());
  }

  /** Resolves once at least n unread bytes are queued; rejects if the client goes away. */
  need(n: number): Promise<void> {
    if (this.queue.length >= n) return Promise.resolve();
    if (this.closed) return Promise.reject(new HoldfastError('CANCELLED', 'The NBD client disconnected.'));
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
    });
  }

  /**
   * Queues an NBD simple reply (magic, errno, cookie); sent with the others of this turn, or
   * with `last` (no other request of this client in flight, so no other reply can join it) at
   * the end of this tick. Held writes released during a range backup go one per event-loop
   * turn; a reply sent from setImmediate waited behind the one queued before it, while the
   * client waiting for it could not send anything. Sent at once, the release write runs while
   * the client prepares its next request. (Measured in bench/results/nbd-latency-session25.txt:
   * better in the first four interleaved runs, within this VM's run-to-run noise in the next.)
   */
  simpleReply(magic: number, errno: number, cookieHi: number, cookieLo: number, last = false): void {
    if (this.closed) return;
    if (this.outEnd + 16 > this.out.length) {
      this.flushReplies();
      if (this.out.length - this.outEnd < 16) {
        this.out = Buffer.allocUnsafe(OUT_SLAB);
        this.outStart = this.outEnd = 0;
      }
    }
    const o = this.out;
    const at = this.outEnd;
    o.writeUInt32BE(magic, at);
    o.writeUInt32BE(errno, at + 4);
    o.writeUInt32BE(cookieHi, at + 8);
    o.writeUInt32BE(cookieLo, at + 12);
    this.outEnd = at + 16;
    if (last) {
      if (!this.tickScheduled) {
        this.tickScheduled = true;
        process.nextTick(this.flushTick);
      }
    } else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushLater);
    }
  }

  private readonly flushLater = (): void => {
    this.flushScheduled = false;
    this.flushReplies();
  };

  private readonly flushTick = (): void => {
    this.tickScheduled = false;
    this.flushReplies();
  };

  /** Hands the packed replies to the socket; that part of the slab is never written again. */
  private flushReplies(): void {
    if (this.outEnd === this.outStart) return;
    const chunk = this.out.subarray(this.outStart, this.outEnd);
    this.outStart = this.outEnd;
    if (this.out.length - this.outEnd < 1024) {
      this.out = Buffer.allocUnsafe(OUT_SLAB);
      this.outStart = this.outEnd = 0;
    }
    if (!this.closed) this.socket.write(chunk);
  }

  /** `sent`: called once the socket is done with buf's memory (written out, or the write failed). */
  send(buf: Buffer, sent?: () => void): void {
    if (this.closed) {
      sent?.();
      return;
    }
    this.flushReplies();
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(this.uncork);
    }
    if (sent) this.socket.write(buf, () => sent());
    else this.socket.write(buf);
  }

  private readonly uncork = (): void => {
    this.corked = false;
    if (!this.socket.destroyed) this.socket.uncork();
  };

  onClose(cb: () => void): void {
    if (this.closed) cb();
    else this.closeHandlers.push(cb);
  }

  /** Graceful close: flushes what was sent, then ends the socket. */
  end(): void {
    if (this.socket.destroyed) return;
    this.flushReplies();
    this.socket.end();
    this.markClosed();
  }

  /** Hard disconnect. */
  destroy(): void {
    this.socket.destroy();
    this.markClosed();
  }

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.clear();
    const w = this.waiter;
    this.waiter = null;
    w?.reject(new HoldfastError('CANCELLED', 'The NBD client disconnected.'));
    for (const cb of this.closeHandlers.splice(0)) {
      try {
        cb();
      } catch {
        /* a close handler must not stop the others */
      }
    }
  }
}
