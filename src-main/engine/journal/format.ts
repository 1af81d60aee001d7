/**
 * Journal record layout (the "file system log" of claim 1). Only constants and
 * encode/decode live here; the writer is journal.ts, the reader is scan().
 *
 *   0  u32  magic 'HFJR'
 *   4  u32  crc32 of bytes [8, 40 + payloadLength)
 *   8  u8   type
 *   9  u8   flags (reserved, 0)
 *  10  u16  reserved
 *  12  u32  payloadLength
 *  16  u64  seq        (written as two u32 halves; seq < 2^53)
 *  24  u64  offset     (volume byte offset for write records)
 *  32  u32  length     (bytes the write covers)
 *  36  u32  dataCrc    (crc32 of the write's data; 0 for zero/trim records)
 *  40  payload
 *
 * A record is valid iff its magic matches, the whole record is present and the CRC
 * matches. A crash can only tear the tail: the reader stops at the first invalid record.
 */
import zlib from 'node:zlib';

export const RECORD_MAGIC = 0x524a4648; // 'HFJR' little-endian
export const HEADER_SIZE = 40;

export const RecordType = {
  /** "Being submitted" intent: the write goes to the device now; no data (redo impossible, mark changed). */
  SUBMIT: 1,
  /** "Being submitted" with data: the write is held and was acknowledged early; redo from here. */
  SUBMIT_DATA: 2,
  /** Write zeroes / trim over [offset, offset+length): redoable without data. */
  SUBMIT_ZERO: 3,
  /** A held write reached the device. Payload: seqs (u64 halves) of the applied records. */
  APPLIED: 4,
  /** Payload JSON {backupId, policy}. Sets the volume's backup flag (claims 3–4). */
  BACKUP_BEGIN: 5,
  /** Payload JSON {backupId, snapshotId}. Completion message (claim 6). */
  BACKUP_END: 6,
  /** Payload JSON {backupId, reason}. */
  BACKUP_ABORT: 7,
} as const;
export type RecordTypeValue = (typeof RecordType)[keyof typeof RecordType];

export interface JournalRecord {
  type: RecordTypeValue;
  seq: number;
  offset: number;
  length: number;
  dataCrc: number;
  payload: Buffer;
}

export function crc32(buf: Buffer, initial = 0): number {
  return zlib.crc32(buf, initial) >>> 0;
}

const POLY = 0xedb88320;

/** (a · b) mod p(x) over GF(2), reflected bit order as in zlib's crc32. */
function multModP(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

/** X2N[k] = x^(2^k) mod p(x). */
const X2N: number[] = (() => {
  const t: number[] = [];
  let p = 0x40000000; // x^1
  t.push(p);
  for (let n = 1; n < 32; n++) t.push((p = multModP(p, p)));
  return t;
})();

/** x^(8·len) mod p(x): the operator that appends len zero bytes; cached per length (records come in a few sizes). */
const shiftOps = new Map<number, number>();
function shiftOp(len: number): number {
  let op = shiftOps.get(len);
  if (op === undefined) {
    op = 0x80000000; // x^0
    let k = 3;
    for (let n = len; n > 0; n = Math.floor(n / 2), k++) if (n % 2 === 1) op = multModP(X2N[k & 31]!, op);
    if (shiftOps.size < 64) shiftOps.set(len, op);
  }
  return op;
}

/**
 * Multiplying by a fixed operator is linear over GF(2): the product is the XOR of the products
 * of the four bytes of crcA, each looked up in a 256-entry table (4 lookups instead of up to 32
 * shift-and-XOR rounds, on every held write's record). Tables for a few lengths; others take
 * the loop.
 */
const combineTables = new Map<number, Uint32Array>();
const COMBINE_TABLES_MAX = 8;
let lastLen = -1;
let lastTable: Uint32Array | null = null;

function combineTable(len: number): Uint32Array | null {
  if (len === lastLen) return lastTable;
  let t = combineTables.get(len) ?? null;
  if (!t && combineTables.size < COMBINE_TABLES_MAX) {
    const op = shiftOp(len);
    t = new Uint32Array(1024);
    for (let j = 0; j < 4; j++) for (let b = 0; b < 256; b++) t[j * 256 + b] = multModP(op, (b << (8 * j)) >>> 0);
    combineTables.set(len, t);
  }
  lastLen = len;
  lastTable = t;
  return t;
}

/** crc32(a ‖ b) from crc32(a), crc32(b) and b's length (zlib's crc32_combine), without touching the bytes. */
export function crc32Combine(crcA: number, crcB: number, lenB: number): number {
  const t = combineTable(lenB);
  if (t === null) return (multModP(shiftOp(lenB), crcA >>> 0) ^ (crcB >>> 0)) >>> 0;
  return (t[crcA & 0xff]! ^ t[256 + ((crcA >>> 8) & 0xff)]! ^ t[512 + ((crcA >>> 16) & 0xff)]! ^ t[768 + (crcA >>> 24)]! ^ crcB) >>> 0;
}

function writeU64(b: Buffer, v: number, at: number): void {
  b.writeUInt32LE(v % 0x1_0000_0000, at);
  b.writeUInt32LE(Math.floor(v / 0x1_0000_0000), at + 4);
}

function readU64(b: Buffer, at: number): number {
  return b.readUInt32LE(at) + b.readUInt32LE(at + 4) * 0x1_0000_0000;
}

/** Encodes the header for a record whose payload is written right after it (possibly by writev). */
export function encodeHeader(type: RecordTypeValue, seq: number, offset: number, length: number, dataCrc: number, payload: Buffer): Buffer {
  const h = Buffer.allocUnsafe(HEADER_SIZE);
  encodeHeaderInto(h, type, seq, offset, length, dataCrc, payload);
  return h;
}

/**
 * encodeHeader into h (HEADER_SIZE bytes of the caller's memory). `payloadCrc`, when the caller
 * already has crc32(payload) (held data records carry it as dataCrc), saves a second pass over
 * the payload: the record checksum is combined from it.
 */
export function encodeHeaderInto(
  h: Buffer,
  type: RecordTypeValue,
  seq: number,
  offset: number,
  length: number,
  dataCrc: number,
  payload: Buffer,
  payloadCrc?: number,
): void {
  h.writeUInt32LE(RECORD_MAGIC, 0);
  h.writeUInt8(type, 8);
  h.writeUInt8(0, 9);
  h.writeUInt16LE(0, 10);
  h.writeUInt32LE(payload.length, 12);
  writeU64(h, seq, 16);
  writeU64(h, offset, 24);
  h.writeUInt32LE(length >>> 0, 32);
  h.writeUInt32LE(dataCrc >>> 0, 36);
  const headCrc = crc32(h.subarray(8, HEADER_SIZE));
  const c = payloadCrc !== undefined && payload.length > 0 ? crc32Combine(headCrc, payloadCrc, payload.length) : crc32(payload, headCrc);
  h.writeUInt32LE(c, 4);
}

export function encodeSeqList(seqs: number[]): Buffer {
  const b = Buffer.allocUnsafe(seqs.length * 8);
  seqs.forEach((s, i) => writeU64(b, s, i * 8));
  return b;
}

export function decodeSeqList(b: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i + 8 <= b.length; i += 8) out.push(readU64(b, i));
  return out;
}

export type DecodeResult = { record: JournalRecord; size: number } | { invalid: string };

/** Decodes the record starting at buf[at]; the caller passes everything it has read. */
export function decodeRecord(buf: Buffer, at: number): DecodeResult {
  if (buf.length - at < HEADER_SIZE) return { invalid: 'short header' };
  if (buf.readUInt32LE(at) !== RECORD_MAGIC) return { invalid: 'bad magic' };
  const payloadLength = buf.readUInt32LE(at + 12);
  const end = at + HEADER_SIZE + payloadLength;
  if (end > buf.length) return { invalid: 'short payload' };
  const want = buf.readUInt32LE(at + 4);
  const got = crc32(buf.subarray(at + HEADER_SIZE, end), crc32(buf.subarray(at + 8, at + HEADER_SIZE)));
  if (want !== got) return { invalid: 'crc mismatch' };
  const type = buf.readUInt8(at + 8) as RecordTypeValue;
  if (type < RecordType.SUBMIT || type > RecordType.BACKUP_ABORT) return { invalid: `unknown type ${type}` };
  return {
    record: {
      type,
      seq: readU64(buf, at + 16),
      offset: readU64(buf, at + 24),
      length: buf.readUInt32LE(at + 32),
      dataCrc: buf.readUInt32LE(at + 36),
      payload: buf.subarray(at + HEADER_SIZE, end),
    },
    size: HEADER_SIZE + payloadLength,
  };
}
