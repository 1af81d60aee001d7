/**
 * A minimal RFC 6455 WebSocket server endpoint for the serve host's event stream.
 *
 * Why our own and not `ws`: this endpoint only pushes events to the page; the page never
 * sends data messages. The inbound side is therefore just control frames (ping, pong,
 * close), which keeps the parser tiny and easy to bound, and the packaged app and the
 * bundled CLI carry no extra dependency. What it enforces: client frames must be masked
 * (1002 otherwise), RSV bits zero, control frames ≤ 125 bytes and unfragmented, any
 * message ≤ MAX_INBOUND bytes (1009 otherwise); data messages from the page are read and
 * ignored. Outbound: unmasked text frames; a client whose unsent output exceeds
 * MAX_OUTBOUND_PENDING is disconnected (it is not reading). A ping every PING_INTERVAL_MS;
 * no pong by the next tick closes the connection.
 */
import crypto from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
export const MAX_INBOUND = 64 * 1024;
export const MAX_OUTBOUND_PENDING = 8 * 1024 * 1024;
export const PING_INTERVAL_MS = 30_000;

const OP_CONT = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

export function acceptKey(key: string): string {
  return crypto.createHash('sha1').update(key + GUID).digest('base64');
}

/** Checks the handshake headers; returns a reason string when the request is not a valid upgrade. */
export function checkUpgrade(req: IncomingMessage): string | null {
  if (req.method !== 'GET') return 'WebSocket upgrades must use GET.';
  if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') return 'Expected "Upgrade: websocket".';
  const conn = (req.headers.connection ?? '').toLowerCase().split(',').map((s) => s.trim());
  if (!conn.includes('upgrade')) return 'Expected "Connection: Upgrade".';
  if (req.headers['sec-websocket-version'] !== '13') return 'Only WebSocket version 13 is supported.';
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || Buffer.from(key, 'base64').length !== 16) return 'Missing or malformed Sec-WebSocket-Key.';
  return null;
}

export function encodeFrame(opcode: number, payload: Buffer): Buffer {
  const len = payload.length;
  let header: Buffer;
  if (len < 126) {
    header = Buffer.from([0x80 | opcode, len]);
  } else if (len < 65536) {
    header = Buffer.alloc(4);
    header[0] = 0x80 | opcode;
    header[1] = 126;
    header.writeUInt16BE(len, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = 0x80 | opcode;
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(len), 2);
  }
  return Buffer.concat([header, payload]);
}

export class WebSocketConnection {
  private buf: Buffer = Buffer.alloc(0);
  private messageBytes = 0;
  private inMessage = false;
  private closing = false;
  private awaitingPong = false;
  private readonly pinger: NodeJS.Timeout;
  private readonly closeListeners: Array<() => void> = [];

  /** Completes the handshake (after the caller's checks passed) and starts reading. */
  constructor(
    private readonly socket: Duplex,
    req: IncomingMessage,
    head: Buffer,
  ) {
    const key = req.headers['sec-websocket-key'] as string;
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' + `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`,
    );
    socket.on('data', (c: Buffer) => this.onData(c));
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      clearInterval(this.pinger);
      for (const l of this.closeListeners.splice(0)) l();
    });
    this.pinger = setInterval(() => {
      if (this.awaitingPong) return this.socket.destroy();
      this.awaitingPong = true;
      this.writeFrame(OP_PING, Buffer.alloc(0));
    }, PING_INTERVAL_MS);
    this.pinger.unref();
    if (head.length) this.onData(head);
  }

  get open(): boolean {
    return !this.closing && !this.socket.destroyed;
  }

  onClose(listener: () => void): void {
    if (this.socket.destroyed) listener();
    else this.closeListeners.push(listener);
  }

  sendText(text: string): void {
    if (!this.open) return;
    if (this.socket.writableLength > MAX_OUTBOUND_PENDING) {
      this.socket.destroy();
      return;
    }
    this.writeFrame(OP_TEXT, Buffer.from(text, 'utf8'));
  }

  close(code = 1000, reason = ''): void {
    if (this.socket.destroyed) return;
    if (!this.closing) {
      this.closing = true;
      const r = Buffer.from(reason.slice(0, 100), 'utf8');
      const p = Buffer.alloc(2 + r.length);
      p.writeUInt16BE(code, 0);
      r.copy(p, 2);
      this.writeFrame(OP_CLOSE, p);
    }
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private writeFrame(opcode: number, payload: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(encodeFrame(opcode, payload));
  }

  private onData(chunk: Buffer): void {
    // Bound what we buffer: one header (≤ 14 bytes) plus at most MAX_INBOUND of payload.
    if (this.closing) return;
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (!this.closing && !this.socket.destroyed && this.parseOne()) {
      /* keep parsing */
    }
    if (this.buf.length > MAX_INBOUND + 14) this.fail(1009, 'Message too big');
  }

  /** Parses one frame from the buffer; false when more bytes are needed or the connection ended. */
  private parseOne(): boolean {
    const b = this.buf;
    if (b.length < 2) return false;
    const fin = (b[0]! & 0x80) !== 0;
    const rsv = b[0]! & 0x70;
    const opcode = b[0]! & 0x0f;
    const masked = (b[1]! & 0x80) !== 0;
    let len = b[1]! & 0x7f;
    let off = 2;
    if (rsv) return this.fail(1002, 'Reserved bits set');
    if (!masked) return this.fail(1002, 'Client frames must be masked');
    if (len === 126) {
      if (b.length < 4) return false;
      len = b.readUInt16BE(2);
      off = 4;
    } else if (len === 127) {
      if (b.length < 10) return false;
      const big = b.readBigUInt64BE(2);
      if (big > BigInt(MAX_INBOUND)) return this.fail(1009, 'Message too big');
      len = Number(big);
      off = 10;
    }
    const isControl = opcode >= 0x8;
    if (isControl && (len > 125 || !fin)) return this.fail(1002, 'Bad control frame');
    if (![OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG].includes(opcode)) return this.fail(1002, 'Unknown opcode');
    if (len > MAX_INBOUND) return this.fail(1009, 'Message too big');
    if (b.length < off + 4 + len) return false;
    const mask = b.subarray(off, off + 4);
    const payload = Buffer.from(b.subarray(off + 4, off + 4 + len));
    for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ mask[i & 3]!;
    this.buf = b.subarray(off + 4 + len);

    switch (opcode) {
      case OP_PING:
        this.writeFrame(OP_PONG, payload);
        return true;
      case OP_PONG:
        this.awaitingPong = false;
        return true;
      case OP_CLOSE:
        this.close(payload.length >= 2 ? this.echoableCode(payload.readUInt16BE(0)) : 1000);
        return false;
      case OP_CONT:
        if (!this.inMessage) return this.fail(1002, 'Continuation without a message');
        break;
      default: // text or binary start
        if (this.inMessage) return this.fail(1002, 'New message inside a fragmented one');
        this.inMessage = true;
        this.messageBytes = 0;
    }
    // Data from the page carries nothing we act on; count it to enforce the cap, then drop it.
    this.messageBytes += len;
    if (this.messageBytes > MAX_INBOUND) return this.fail(1009, 'Message too big');
    if (fin) this.inMessage = false;
    return true;
  }

  private echoableCode(code: number): number {
    return code >= 1000 && code < 5000 && code !== 1005 && code !== 1006 && code !== 1015 ? code : 1002;
  }

  private fail(code: number, reason: string): false {
    this.buf = Buffer.alloc(0);
    this.close(code, reason);
    return false;
  }
}
