/**
 * A deliberately small NBD client over a raw socket, for tests that need byte-level control
 * (fuzzing, never-reading clients, revoke). It speaks fixed newstyle + NBD_OPT_GO with
 * structured replies and parses both simple and structured replies (a read's reply may come in
 * several chunks, data and holes: `chunks` lists them, `data` is the assembled bytes).
 */
import net from 'node:net';

export interface Reply {
  cookie: bigint;
  error: number;
  data?: Buffer;
  extents?: Array<[number, number]>;
  /** A structured read's chunks in arrival order. */
  chunks?: Array<{ type: 'data' | 'hole'; offset: number; length: number }>;
}

export class RawClient {
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  closed = false;
  replies = new Map<bigint, Reply>();
  private replyWaiters = new Map<bigint, (r: Reply) => void>();
  private transmission = false;
  structured = false;
  /** Pending READ lengths for simple replies, keyed by cookie. */
  private readLengths = new Map<bigint, number>();
  /** Pending structured READs (offset, length) and their chunks so far, keyed by cookie. */
  private structuredReads = new Map<bigint, { offset: number; length: number; data: Buffer; chunks: NonNullable<Reply['chunks']> }>();

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      if (this.transmission) this.parseReplies();
      for (const w of this.waiters.splice(0)) w();
    });
    const done = () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    };
    socket.on('close', done);
    socket.on('error', done);
  }

  static connect(path: string | { port: number }): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = typeof path === 'string' ? net.connect(path) : net.connect(path.port, '127.0.0.1');
      s.once('connect', () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  async read(n: number, timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buf.length < n) {
      if (this.closed) throw new Error(`connection closed while waiting for ${n} bytes`);
      if (Date.now() > deadline) throw new Error(`timeout waiting for ${n} bytes`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return Buffer.from(out);
  }

  /** Resolves true when the server closes the connection within the timeout. */
  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.closed;
  }

  write(b: Buffer): void {
    if (!this.closed) this.socket.write(b);
  }

  async greeting(): Promise<number> {
    const g = await this.read(18);
    if (g.toString('latin1', 0, 16) !== 'NBDMAGICIHAVEOPT') throw new Error('bad greeting');
    return g.readUInt16BE(16);
  }

  sendOption(option: number, data: Buffer = Buffer.alloc(0), lengthOverride?: number): void {
    const h = Buffer.alloc(16);
    h.write('IHAVEOPT', 0, 'latin1');
    h.writeUInt32BE(option, 8);
    h.writeUInt32BE(lengthOverride ?? data.length, 12);
    this.write(Buffer.concat([h, data]));
  }

  async optionReply(): Promise<{ option: number; type: number; data: Buffer }> {
    const h = await this.read(20);
    if (h.readUInt32BE(0) !== 0x0003e889 || h.readUInt32BE(4) !== 0x045565a9) throw new Error('bad option reply magic');
    const len = h.readUInt32BE(16);
    return { option: h.readUInt32BE(8), type: h.readUInt32BE(12), data: await this.read(len) };
  }

  /** Full handshake to the transmission phase; returns size and transmission flags. */
  async go(name: string, opts: { structured?: boolean; baseAllocation?: boolean } = {}): Promise<{ size: number; flags: number }> {
    await this.greeting();
    this.write(Buffer.from([0, 0, 0, 3]));
    if (opts.structured ?? true) {
      this.sendOption(8);
      const r = await this.optionReply();
      if (r.type !== 1) throw new Error('structured replies refused');
      this.structured = true;
    }
    const n = Buffer.from(name, 'utf8');
    if (opts.baseAllocation) {
      const q = Buffer.from('base:allocation');
      const d = Buffer.alloc(4 + n.length + 4 + 4 + q.length);
      d.writeUInt32BE(n.length, 0);
      n.copy(d, 4);
      d.writeUInt32BE(1, 4 + n.length);
      d.writeUInt32BE(q.length, 8 + n.length);
      q.copy(d, 12 + n.length);
      this.sendOption(10, d);
      for (;;) {
        const r = await this.optionReply();
        if (r.type === 1) break;
        if (r.type >= 0x80000000) throw new Error(`SET_META_CONTEXT failed ${r.type}`);
      }
    }
    const d = Buffer.alloc(4 + n.length + 2);
    d.writeUInt32BE(n.length, 0);
    n.copy(d, 4);
    this.sendOption(7, d);
    let size = -1;
    let flags = 0;
    for (;;) {
      const r = await this.optionReply();
      if (r.type >= 0x80000000) throw new Error(`GO failed: ${r.type} ${r.data.toString()}`);
      if (r.type === 3 && r.data.readUInt16BE(0) === 0) {
        size = Number(r.data.readBigUInt64BE(2));
        flags = r.data.readUInt16BE(10);
      }
      if (r.type === 1) break;
    }
    this.transmission = true;
    this.parseReplies();
    return { size, flags };
  }

  static request(type: number, cookie: bigint, offset: bigint | number, length: number, flags = 0, magic = 0x25609513): Buffer {
    const b = Buffer.alloc(28);
    b.writeUInt32BE(magic >>> 0, 0);
    b.writeUInt16BE(flags, 4);
    b.writeUInt16BE(type, 6);
    b.writeBigUInt64BE(cookie, 8);
    b.writeBigUInt64BE(BigInt(offset), 16);
    b.writeUInt32BE(length >>> 0, 24);
    return b;
  }

  send(type: number, cookie: bigint, offset: bigint | number, length: number, flags = 0, payload?: Buffer): void {
    if (type === 0 && !this.structured) this.readLengths.set(cookie, length);
    // (Reads over 64 MiB are refused by the server: not worth a buffer.)
    if (type === 0 && this.structured && length <= 64 << 20) this.structuredReads.set(cookie, { offset: Number(offset), length, data: Buffer.alloc(length), chunks: [] });
    this.write(payload ? Buffer.concat([RawClient.request(type, cookie, offset, length, flags), payload]) : RawClient.request(type, cookie, offset, length, flags));
  }

  async reply(cookie: bigint, timeoutMs = 10000): Promise<Reply> {
    const have = this.replies.get(cookie);
    if (have) {
      this.replies.delete(cookie);
      return have;
    }
    return new Promise((resolve, reject) => {
      const check = setInterval(() => {
        if (this.closed) {
          clearInterval(check);
          clearTimeout(t);
          this.replyWaiters.delete(cookie);
          reject(new Error(`connection closed before reply for cookie ${cookie}`));
        }
      }, 20);
      const t = setTimeout(() => {
        clearInterval(check);
        this.replyWaiters.delete(cookie);
        reject(new Error(`no reply for cookie ${cookie}`));
      }, timeoutMs);
      this.replyWaiters.set(cookie, (r) => {
        clearTimeout(t);
        clearInterval(check);
        resolve(r);
      });
    });
  }

  async request(type: number, offset: number, length: number, flags = 0, payload?: Buffer): Promise<Reply> {
    const cookie = BigInt(Math.floor(Math.random() * 2 ** 48));
    this.send(type, cookie, offset, length, flags, payload);
    return this.reply(cookie);
  }

  private deliver(r: Reply): void {
    const w = this.replyWaiters.get(r.cookie);
    if (w) {
      this.replyWaiters.delete(r.cookie);
      w(r);
    } else this.replies.set(r.cookie, r);
  }

  private parseReplies(): void {
    for (;;) {
      if (this.buf.length < 4) return;
      const magic = this.buf.readUInt32BE(0);
      if (magic === 0x67446698) {
        if (this.buf.length < 16) return;
        const error = this.buf.readUInt32BE(4);
        const cookie = this.buf.readBigUInt64BE(8);
        const rl = this.readLengths.get(cookie);
        const dataLen = rl !== undefined && error === 0 ? rl : 0;
        if (this.buf.length < 16 + dataLen) return;
        this.readLengths.delete(cookie);
        const r: Reply = { cookie, error };
        if (rl !== undefined && error === 0) r.data = Buffer.from(this.buf.subarray(16, 16 + dataLen));
        this.buf = this.buf.subarray(16 + dataLen);
        this.deliver(r);
      } else if (magic === 0x668e33ef) {
        if (this.buf.length < 20) return;
        const flags = this.buf.readUInt16BE(4);
        const type = this.buf.readUInt16BE(6);
        const cookie = this.buf.readBigUInt64BE(8);
        const len = this.buf.readUInt32BE(16);
        if (this.buf.length < 20 + len) return;
        const p = Buffer.from(this.buf.subarray(20, 20 + len));
        this.buf = this.buf.subarray(20 + len);
        const read = this.structuredReads.get(cookie);
        if (read && (type === 1 || type === 2)) {
          const at = Number(p.readBigUInt64BE(0));
          const length = type === 1 ? p.length - 8 : p.readUInt32BE(8);
          if (at < read.offset || at + length > read.offset + read.length) throw new Error(`chunk ${at}+${length} outside the read`);
          if (type === 1) p.copy(read.data, at - read.offset, 8);
          read.chunks.push({ type: type === 1 ? 'data' : 'hole', offset: at, length });
          if ((flags & 1) === 0) continue;
          this.structuredReads.delete(cookie);
          this.deliver({ cookie, error: 0, data: read.data, chunks: read.chunks });
          continue;
        }
        if ((flags & 1) === 0) throw new Error('test client expects single-chunk replies except for reads');
        this.structuredReads.delete(cookie);
        const r: Reply = { cookie, error: 0 };
        if (type === 1) r.data = p.subarray(8);
        else if (type === 5) {
          r.extents = [];
          for (let i = 4; i + 8 <= p.length; i += 8) r.extents.push([p.readUInt32BE(i), p.readUInt32BE(i + 4)]);
        } else if (type & 0x8000) r.error = p.readUInt32BE(0);
        this.deliver(r);
      } else {
        throw new Error(`bad reply magic 0x${magic.toString(16)}`);
      }
    }
  }

  close(): void {
    this.socket.destroy();
  }
}
