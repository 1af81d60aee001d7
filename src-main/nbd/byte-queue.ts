/**
 * The bytes received from one client and not yet parsed: a queue of the socket's chunks
 * with a cursor into the first, so the parser reads across chunk boundaries without
 * concatenating. Invariant: `length` equals the unread bytes over all chunks, and
 * chunks[0] has at least one unread byte past `head` whenever length > 0.
 */
export class ByteQueue {
  private chunks: Buffer[] = [];
  private head = 0;
  length = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /**
   * Copies the next n bytes (n ≤ length) into dst at 0 without consuming them. Returns the
   * buffer and offset to read from: the first chunk itself when the bytes lie in it (no copy).
   */
  peek(n: number, dst: Buffer): [Buffer, number] {
    const first = this.chunks[0]!;
    if (first.length - this.head >= n) return [first, this.head];
    this.copyTo(dst, 0, n, false);
    return [dst, 0];
  }

  /**
   * Consumes n bytes as a buffer the caller may keep: a view of the received chunk when the
   * bytes lie in one (no allocation of its own, no copy; the chunk is never reused), else a copy.
   */
  takeView(n: number): Buffer {
    const first = this.chunks[0];
    if (first && first.length - this.head >= n) {
      const v = first.subarray(this.head, this.head + n);
      this.head += n;
      this.length -= n;
      if (this.head === first.length) {
        this.chunks.shift();
        this.head = 0;
      }
      return v;
    }
    return this.take(n);
  }

  /** Consumes n bytes into a new buffer the caller owns. */
  take(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    this.copyTo(out, 0, n, true);
    return out;
  }

  /** Consumes up to n bytes without keeping them; returns how many were dropped. */
  skip(n: number): number {
    let left = Math.min(n, this.length);
    const dropped = left;
    while (left > 0) {
      const first = this.chunks[0]!;
      const avail = first.length - this.head;
      if (avail <= left) {
        left -= avail;
        this.chunks.shift();
        this.head = 0;
      } else {
        this.head += left;
        left = 0;
      }
    }
    this.length -= dropped;
    return dropped;
  }

  clear(): void {
    this.chunks = [];
    this.head = 0;
    this.length = 0;
  }

  private copyTo(dst: Buffer, at: number, n: number, consume: boolean): void {
    if (n > this.length) throw new RangeError(`ByteQueue: asked for ${n} bytes, have ${this.length}`);
    let ci = 0;
    let head = this.head;
    let left = n;
    while (left > 0) {
      const c = this.chunks[ci]!;
      const take = Math.min(c.length - head, left);
      c.copy(dst, at, head, head + take);
      at += take;
      left -= take;
      head += take;
      if (head === c.length) {
        ci++;
        head = 0;
      }
    }
    if (consume) {
      if (ci > 0) this.chunks.splice(0, ci);
      this.head = head;
      this.length -= n;
    }
  }
}
