/**
 * The fixed-newstyle handshake: greets the client, answers options until one picks an export
 * (NBD_OPT_GO or the legacy NBD_OPT_EXPORT_NAME), and returns what the transmission phase
 * needs. Every length from the client is checked before anything is allocated for it:
 * option payloads over MAX_OPTION_LENGTH are drained (never buffered) and refused, strings
 * over 4096 bytes are invalid, and malformed framing (bad magic, unknown client flags)
 * disconnects. Returns null when the client aborted or was disconnected.
 */
import { HoldfastError } from '../../src-shared/errors';
import type { ExportLease, ExportRegistry } from '../engine/block-export';
import { errorMessage } from './errno';
import * as P from './protocol';
import type { Wire } from './wire';

export interface Negotiated {
  lease: ExportLease;
  exportName: string;
  structuredReplies: boolean;
  baseAllocation: boolean;
  /** Transmission flags sent to the client. */
  transmissionFlags: number;
}

/** The capacity an export has that is not part of BlockExport itself. */
function transmissionFlags(lease: ExportLease, structuredReplies: boolean): number {
  const ex = lease.export;
  let f = P.NBD_FLAG_HAS_FLAGS | P.NBD_FLAG_SEND_FLUSH | P.NBD_FLAG_SEND_FUA | P.NBD_FLAG_CAN_MULTI_CONN;
  if (ex.readOnly) f |= P.NBD_FLAG_READ_ONLY;
  else f |= P.NBD_FLAG_SEND_TRIM | P.NBD_FLAG_SEND_WRITE_ZEROES | P.NBD_FLAG_SEND_FAST_ZERO;
  // We never split a read reply, so "don't fragment" is always honoured.
  if (structuredReplies) f |= P.NBD_FLAG_SEND_DF;
  return f;
}

class Disconnect extends Error {}

export async function negotiate(wire: Wire, registry: ExportRegistry, log: (msg: string) => void): Promise<Negotiated | null> {
  const greeting = Buffer.alloc(18);
  P.NBD_INIT_MAGIC.copy(greeting, 0);
  P.NBD_OPTS_MAGIC.copy(greeting, 8);
  greeting.writeUInt16BE(P.NBD_FLAG_FIXED_NEWSTYLE | P.NBD_FLAG_NO_ZEROES, 16);
  wire.send(greeting);

  await wire.need(4);
  const clientFlags = wire.queue.take(4).readUInt32BE(0);
  if ((clientFlags & ~(P.NBD_FLAG_C_FIXED_NEWSTYLE | P.NBD_FLAG_C_NO_ZEROES)) !== 0) {
    log(`nbd: client sent unknown handshake flags 0x${clientFlags.toString(16)}; disconnecting`);
    wire.destroy();
    return null;
  }
  const noZeroes = (clientFlags & P.NBD_FLAG_C_NO_ZEROES) !== 0;

  let structuredReplies = false;
  // Meta contexts are selected for one export name; GO on another name drops them.
  let metaExport: string | null = null;
  let baseAllocation = false;

  const reply = (option: number, type: number, data?: Buffer): void => {
    const len = data ? data.length : 0;
    const h = Buffer.allocUnsafe(20);
    h.writeUInt32BE(P.NBD_REP_MAGIC_HI, 0);
    h.writeUInt32BE(P.NBD_REP_MAGIC_LO, 4);
    h.writeUInt32BE(option, 8);
    h.writeUInt32BE(type, 12);
    h.writeUInt32BE(len, 16);
    wire.send(data && len ? Buffer.concat([h, data]) : h);
  };
  const replyError = (option: number, type: number, message: string): void => reply(option, type, Buffer.from(message, 'utf8'));

  /** Resolves a name to an open lease; "" is the default export when there is exactly one. */
  const openExport = (name: string): ExportLease => {
    let target = name;
    if (name === '') {
      const all = registry.list();
      if (all.length === 1) target = all[0]!.name;
    }
    return registry.open(target);
  };

  try {
    for (;;) {
      await wire.need(P.OPTION_HEADER_SIZE);
      const head = wire.queue.take(P.OPTION_HEADER_SIZE);
      if (!head.subarray(0, 8).equals(P.NBD_OPTS_MAGIC)) {
        log('nbd: bad option magic; disconnecting');
        throw new Disconnect();
      }
      const option = head.readUInt32BE(8);
      const length = head.readUInt32BE(12);

      if (length > P.MAX_OPTION_LENGTH) {
        if (option === P.NBD_OPT_EXPORT_NAME || length > P.MAX_OPTION_DRAIN) throw new Disconnect();
        let left = length;
        while (left > 0) {
          await wire.need(1);
          left -= wire.queue.skip(left);
        }
        replyError(option, P.NBD_REP_ERR_TOO_BIG, `Option payload of ${length} bytes is too large.`);
        continue;
      }
      await wire.need(length);
      const data = wire.queue.take(length);
      const reader = new OptionReader(data);

      switch (option) {
        case P.NBD_OPT_EXPORT_NAME: {
          const name = data.toString('utf8');
          let lease: ExportLease;
          try {
            if (length > P.MAX_STRING) throw new HoldfastError('INVALID_NAME', 'Export name too long.');
            lease = openExport(name);
          } catch (e) {
            // This option cannot report errors: the spec says to close the connection.
            log(`nbd: NBD_OPT_EXPORT_NAME ${JSON.stringify(name.slice(0, 80))}: ${errorMessage(e)}`);
            throw new Disconnect();
          }
          const flags = transmissionFlags(lease, structuredReplies);
          const out = Buffer.alloc(noZeroes ? 10 : 134);
          writeU64(out, 0, lease.export.size());
          out.writeUInt16BE(flags, 8);
          wire.send(out);
          return {
            lease,
            exportName: name,
            structuredReplies,
            baseAllocation: baseAllocation && metaExport === name,
            transmissionFlags: flags,
          };
        }
        case P.NBD_OPT_ABORT:
          reply(option, P.NBD_REP_ACK);
          wire.end();
          return null;
        case P.NBD_OPT_LIST: {
          if (length !== 0) {
            replyError(option, P.NBD_REP_ERR_INVALID, 'NBD_OPT_LIST takes no data.');
            break;
          }
          for (const e of registry.list()) {
            const name = Buffer.from(e.name, 'utf8');
            const desc = Buffer.from(e.description, 'utf8');
            const d = Buffer.allocUnsafe(4 + name.length + desc.length);
            d.writeUInt32BE(name.length, 0);
            name.copy(d, 4);
            desc.copy(d, 4 + name.length);
            reply(option, P.NBD_REP_SERVER, d);
          }
          reply(option, P.NBD_REP_ACK);
          break;
        }
        case P.NBD_OPT_STRUCTURED_REPLY:
          if (length !== 0) {
            replyError(option, P.NBD_REP_ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data.');
            break;
          }
          structuredReplies = true;
          reply(option, P.NBD_REP_ACK);
          break;
        case P.NBD_OPT_INFO:
        case P.NBD_OPT_GO: {
          const name = reader.string32();
          const nreq = reader.u16();
          const requests: number[] = [];
          for (let i = 0; nreq !== null && i < nreq; i++) {
            const r = reader.u16();
            if (r === null) break;
            requests.push(r);
          }
          if (name === null || nreq === null || requests.length !== nreq || !reader.atEnd()) {
            replyError(option, P.NBD_REP_ERR_INVALID, 'Malformed NBD_OPT_INFO/NBD_OPT_GO request.');
            break;
          }
          let lease: ExportLease;
          try {
            lease = openExport(name);
          } catch (e) {
            replyError(option, P.NBD_REP_ERR_UNKNOWN, `No export named ${JSON.stringify(name)}: ${errorMessage(e)}`);
            break;
          }
          try {
            const ex = lease.export;
            const flags = transmissionFlags(lease, structuredReplies);
            const info = Buffer.allocUnsafe(12);
            info.writeUInt16BE(P.NBD_INFO_EXPORT, 0);
            writeU64(info, 2, ex.size());
            info.writeUInt16BE(flags, 10);
            reply(option, P.NBD_REP_INFO, info);
            if (requests.includes(P.NBD_INFO_NAME)) {
              reply(option, P.NBD_REP_INFO, Buffer.concat([u16(P.NBD_INFO_NAME), Buffer.from(ex.name, 'utf8')]));
            }
            if (requests.includes(P.NBD_INFO_DESCRIPTION) && ex.description) {
              reply(option, P.NBD_REP_INFO, Buffer.concat([u16(P.NBD_INFO_DESCRIPTION), Buffer.from(ex.description, 'utf8')]));
            }
            // Always sent. Minimum 1: unaligned requests are served by read-modify-write
            // (unaligned.ts), so byte-granular clients (nbdfuse + debugfs) work as with qemu-nbd.
            const bs = Buffer.allocUnsafe(14);
            bs.writeUInt16BE(P.NBD_INFO_BLOCK_SIZE, 0);
            bs.writeUInt32BE(1, 2);
            bs.writeUInt32BE(Math.max(ex.preferredBlockSize, ex.sectorSize), 6);
            bs.writeUInt32BE(P.MAX_BLOCK_SIZE, 10);
            reply(option, P.NBD_REP_INFO, bs);
            reply(option, P.NBD_REP_ACK);
            if (option === P.NBD_OPT_INFO) {
              lease.close();
              break;
            }
            return {
              lease,
              exportName: name,
              structuredReplies,
              baseAllocation: baseAllocation && metaExport === name,
              transmissionFlags: flags,
            };
          } catch (e) {
            lease.close();
            throw e;
          }
        }
        case P.NBD_OPT_LIST_META_CONTEXT:
        case P.NBD_OPT_SET_META_CONTEXT: {
          const isSet = option === P.NBD_OPT_SET_META_CONTEXT;
          const name = reader.string32();
          const nq = reader.u32();
          const queries: string[] = [];
          for (let i = 0; nq !== null && i < nq; i++) {
            const q = reader.string32();
            if (q === null) break;
            queries.push(q);
          }
          if (name === null || nq === null || queries.length !== nq || !reader.atEnd()) {
            replyError(option, P.NBD_REP_ERR_INVALID, 'Malformed meta context request.');
            break;
          }
          if (isSet && !structuredReplies) {
            replyError(option, P.NBD_REP_ERR_INVALID, 'Negotiate NBD_OPT_STRUCTURED_REPLY before selecting meta contexts.');
            break;
          }
          try {
            openExport(name).close();
          } catch (e) {
            replyError(option, P.NBD_REP_ERR_UNKNOWN, `No export named ${JSON.stringify(name)}: ${errorMessage(e)}`);
            break;
          }
          const matches = queries.length === 0 ? !isSet : queries.some((q) => q === P.BASE_ALLOCATION || (!isSet && q === 'base:'));
          if (matches) {
            const ctxName = Buffer.from(P.BASE_ALLOCATION, 'utf8');
            const d = Buffer.allocUnsafe(4 + ctxName.length);
            d.writeUInt32BE(isSet ? P.BASE_ALLOCATION_ID : 0, 0);
            ctxName.copy(d, 4);
            reply(option, P.NBD_REP_META_CONTEXT, d);
          }
          if (isSet) {
            metaExport = name;
            baseAllocation = matches;
          }
          reply(option, P.NBD_REP_ACK);
          break;
        }
        default:
          replyError(option, P.NBD_REP_ERR_UNSUP, `Option ${option} is not supported by this server.`);
      }
    }
  } catch (e) {
    if (!(e instanceof Disconnect) && !wire.closed) log(`nbd: handshake failed: ${errorMessage(e)}`);
    wire.destroy();
    return null;
  }
}

/** Reads length-prefixed fields from an option payload; null when the payload is too short. */
class OptionReader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}
  u16(): number | null {
    if (this.pos + 2 > this.buf.length) return null;
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  u32(): number | null {
    if (this.pos + 4 > this.buf.length) return null;
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  string32(): string | null {
    const n = this.u32();
    if (n === null || n > P.MAX_STRING || this.pos + n > this.buf.length) return null;
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
  atEnd(): boolean {
    return this.pos === this.buf.length;
  }
}

function u16(v: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(v, 0);
  return b;
}

export function writeU64(buf: Buffer, at: number, v: number): void {
  buf.writeUInt32BE(Math.floor(v / 0x100000000), at);
  buf.writeUInt32BE(v >>> 0, at + 4);
}
