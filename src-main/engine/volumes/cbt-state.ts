/**
 * Persisted changed-block state of one volume, written at each checkpoint:
 *
 *   u32 magic 'HFCB' · u32 version · u32 jsonLength · JSON header · current bits · [taken bits] · u32 crc32
 *
 * The header says through which journal seq the bits are complete (`throughSeq`), which
 * snapshot they are relative to (`parentSnapshotId`, null = unknown ⇒ next backup is full),
 * and the backup running at checkpoint time, whose frozen "changed since parent" map is
 * `taken`. Records after throughSeq are replayed over it on open.
 */
import { crc32 } from '../journal/format';
import { BlockBitmap } from './block-bitmap';
import { HoldfastError } from '../../../src-shared/errors';

const MAGIC = 0x42434648; // 'HFCB'
const VERSION = 1;

export interface CbtState {
  throughSeq: number;
  parentSnapshotId: string | null;
  activeBackupId: string | null;
  current: BlockBitmap;
  taken: BlockBitmap | null;
}

interface Header {
  throughSeq: number;
  parentSnapshotId: string | null;
  activeBackupId: string | null;
  volumeSize: number;
  granularity: number;
  hasTaken: boolean;
}

export function encodeCbtState(s: CbtState): Buffer {
  const header: Header = {
    throughSeq: s.throughSeq,
    parentSnapshotId: s.parentSnapshotId,
    activeBackupId: s.activeBackupId,
    volumeSize: s.current.volumeSize,
    granularity: s.current.granularity,
    hasTaken: s.taken !== null,
  };
  const json = Buffer.from(JSON.stringify(header));
  const pre = Buffer.alloc(12);
  pre.writeUInt32LE(MAGIC, 0);
  pre.writeUInt32LE(VERSION, 4);
  pre.writeUInt32LE(json.length, 8);
  const parts = [pre, json, Buffer.from(s.current.bits.buffer, s.current.bits.byteOffset, s.current.bits.length)];
  if (s.taken) parts.push(Buffer.from(s.taken.bits.buffer, s.taken.bits.byteOffset, s.taken.bits.length));
  const body = Buffer.concat(parts);
  const tail = Buffer.alloc(4);
  tail.writeUInt32LE(crc32(body), 0);
  return Buffer.concat([body, tail]);
}

export function decodeCbtState(buf: Buffer): CbtState {
  const bad = (why: string) => new HoldfastError('JOURNAL_CORRUPT', `The changed-block map is damaged (${why}); the next backup will be full.`);
  if (buf.length < 16 || buf.readUInt32LE(0) !== MAGIC) throw bad('bad magic');
  if (buf.readUInt32LE(4) > VERSION) throw new HoldfastError('CATALOG_TOO_NEW', 'The changed-block map was written by a newer Holdfast; update Holdfast.');
  if (crc32(buf.subarray(0, buf.length - 4)) !== buf.readUInt32LE(buf.length - 4)) throw bad('checksum mismatch');
  const jl = buf.readUInt32LE(8);
  const h = JSON.parse(buf.subarray(12, 12 + jl).toString()) as Header;
  const n = Math.ceil(Math.ceil(h.volumeSize / h.granularity) / 8);
  let at = 12 + jl;
  const current = new BlockBitmap(h.volumeSize, h.granularity, Uint8Array.from(buf.subarray(at, at + n)));
  at += n;
  const taken = h.hasTaken ? new BlockBitmap(h.volumeSize, h.granularity, Uint8Array.from(buf.subarray(at, at + n))) : null;
  return { throughSeq: h.throughSeq, parentSnapshotId: h.parentSnapshotId, activeBackupId: h.activeBackupId, current, taken };
}
