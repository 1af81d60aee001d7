/**
 * Memory for read replies, reused across requests and connections. A fresh buffer per read costs
 * a page fault per 4 KiB when the read first fills it (each a trip through the hypervisor on a
 * VM) and external memory that drives V8's major collections: nbdcopy reading a 512 MiB volume in
 * 256 KiB requests made the engine fault ~19k pages and spend ~10 % of its CPU marking.
 *
 * Buffers come in power-of-two classes from MIN_CLASS; at most MAX_FREE bytes wait for reuse.
 * A buffer goes back only once nothing can still write into it or read from it: after the socket
 * is done with the reply, never after a failed read (a sibling read may still be landing in it).
 */
import { invariant } from '../../src-shared/errors';

export const MIN_CLASS = 64 << 10;
const MAX_FREE = 64 << 20;

function classOf(length: number): number {
  let c = MIN_CLASS;
  while (c < length) c *= 2;
  return c;
}

export class ReplyBuffers {
  private readonly free = new Map<number, Buffer[]>();
  private freeBytes = 0;

  /** Memory of at least `length` bytes; give() it back whole. */
  take(length: number): Buffer {
    const c = classOf(length);
    const b = this.free.get(c)?.pop();
    if (b) {
      this.freeBytes -= c;
      return b;
    }
    return Buffer.allocUnsafeSlow(c);
  }

  give(buf: Buffer): void {
    invariant(buf.length === classOf(buf.length) && buf.byteOffset === 0, 'only whole buffers from take() come back');
    if (this.freeBytes + buf.length > MAX_FREE) return;
    let list = this.free.get(buf.length);
    if (!list) this.free.set(buf.length, (list = []));
    list.push(buf);
    this.freeBytes += buf.length;
  }

  get idleBytes(): number {
    return this.freeBytes;
  }
}

/** The process's pool (every connection's reads). */
export const replyBuffers = new ReplyBuffers();
