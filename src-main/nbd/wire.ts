/**
 * One client's socket as the protocol code sees it: received bytes land in a ByteQueue;
 * the handshake awaits `need(n)`, the transmission phase takes over with `onData`. Outgoing
 * messages written in the same tick are corked into one writev. Once closed, nothing is
 * sent and every pending `need` rejects, so no code path waits on a dead client.
 */
import type { Socket } from 'node:net';
import { HoldfastError } from '../../src-shared/errors';
import { ByteQueue } from './byte-queue';

export class Wire {
  readonly queue = new ByteQueue();
  closed = false;
  private waiter: { n: number; resolve: () => void; reject: (e: Error) => void } | null = null;
  private corked = false;
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

  send(buf: Buffer): void {
    if (this.closed) return;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(this.uncork);
    }
    this.socket.write(buf);
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
