/**
 * The on-device label format (format only: constants, layout, encode/decode — after
 * LevelDB's log_format.h). The reader/writer that touches a BlockFile is devices/label.ts.
 *
 * A Holdfast-formatted device starts with a label area of DATA_START (1 MiB) bytes; volume
 * data lives from DATA_START on. The label area holds two slots (A at 0, B at SLOT_SIZE) so
 * a torn label write never loses the label: a writer always overwrites the slot with the
 * lower generation, so the other slot stays valid. Each slot:
 *
 *   off  size  field
 *   0    16    magic "HOLDFAST-LVM\0" padded with zeroes
 *   16   4     format version (u32 LE)
 *   20   4     crc32 (zlib) of the slot header with this field zeroed + the JSON body
 *   24   4     JSON body length in bytes (u32 LE)
 *   28   4     reserved (0)
 *   32   8     generation (u64 LE, increases on every write)
 *   40   16    device uuid (binary)
 *   56   8     data start (u64 LE)
 *   64   …     JSON body (UTF-8): the volumes/extents that use this device
 *
 * So for a device with few volumes everything fits in the first 4096 bytes; a long mapping
 * may use the rest of the slot. Invariant: a slot either has no magic (blank) or decodes
 * with a matching crc; anything else is corruption and is reported, never guessed at.
 */
import { crc32 } from 'node:zlib';
import { HoldfastError } from '../../../src-shared/errors';

export const MAGIC = Buffer.from('HOLDFAST-LVM\0', 'latin1');
export const FORMAT_VERSION = 1;
export const DATA_START = 1024 * 1024;
export const SLOT_SIZE = DATA_START / 2;
export const SLOT_OFFSETS = [0, SLOT_SIZE] as const;
export const HEADER_SIZE = 64;
export const MAX_BODY = SLOT_SIZE - HEADER_SIZE;
/** Smallest device Holdfast formats: the label area plus one 4 KiB block. */
export const MIN_DEVICE_SIZE = DATA_START + 4096;

export interface LabelExtent {
  volumeOffset: number;
  /** uuid of the device holding this extent (this one or another labelled device). */
  deviceUuid: string;
  deviceOffset: number;
  length: number;
}

export interface LabelVolume {
  name: string;
  size: number;
  ackMode: 'journal' | 'device';
  extents: LabelExtent[];
}

export interface DeviceLabel {
  uuid: string;
  dataStart: number;
  volumes: LabelVolume[];
}

export type DecodedSlot = { kind: 'blank' } | { kind: 'corrupt'; reason: string } | { kind: 'label'; generation: number; label: DeviceLabel };

export function uuidToBytes(uuid: string): Buffer {
  const hex = uuid.replace(/-/g, '');
  if (!/^[0-9a-f]{32}$/i.test(hex)) throw new HoldfastError('INTERNAL', `Not a uuid: ${uuid}`);
  return Buffer.from(hex, 'hex');
}

export function bytesToUuid(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function slotCrc(header: Buffer, body: Buffer): number {
  const h = Buffer.from(header);
  h.writeUInt32LE(0, 20);
  return crc32(body, crc32(h));
}

/** Encodes one slot (header + body, padded to a multiple of 4096 bytes). */
export function encodeLabelSlot(label: DeviceLabel, generation: number): Buffer {
  const body = Buffer.from(JSON.stringify({ volumes: label.volumes }), 'utf8');
  if (body.length > MAX_BODY)
    throw new HoldfastError('NO_SPACE', `The device label is full (${label.volumes.length} volumes); remove or merge some volumes on this device.`);
  const total = Math.ceil((HEADER_SIZE + body.length) / 4096) * 4096;
  const buf = Buffer.alloc(total);
  MAGIC.copy(buf, 0);
  buf.writeUInt32LE(FORMAT_VERSION, 16);
  buf.writeUInt32LE(body.length, 24);
  buf.writeBigUInt64LE(BigInt(generation), 32);
  uuidToBytes(label.uuid).copy(buf, 40);
  buf.writeBigUInt64LE(BigInt(label.dataStart), 56);
  body.copy(buf, HEADER_SIZE);
  buf.writeUInt32LE(slotCrc(buf.subarray(0, HEADER_SIZE), body), 20);
  return buf;
}

/** True when buf starts with the label magic. */
export function hasMagic(buf: Buffer): boolean {
  return buf.length >= MAGIC.length && buf.subarray(0, MAGIC.length).equals(MAGIC);
}

/** Header fields needed to know how much more to read. null when the slot is blank. */
export function slotBodyLength(header: Buffer): number | null {
  if (!hasMagic(header)) return null;
  return header.readUInt32LE(24);
}

/** Decodes a slot given its header and (when the header announces one) its body. */
export function decodeLabelSlot(header: Buffer, body: Buffer): DecodedSlot {
  if (!hasMagic(header)) return { kind: 'blank' };
  const version = header.readUInt32LE(16);
  if (version > FORMAT_VERSION)
    throw new HoldfastError('CATALOG_TOO_NEW', `This device was labelled by a newer Holdfast (label format ${version}); update Holdfast to use it.`);
  const len = header.readUInt32LE(24);
  if (len > MAX_BODY || body.length !== len) return { kind: 'corrupt', reason: `body length ${len} out of range` };
  if (slotCrc(header, body) !== header.readUInt32LE(20)) return { kind: 'corrupt', reason: 'checksum mismatch' };
  let parsed: { volumes?: unknown };
  try {
    parsed = JSON.parse(body.toString('utf8')) as { volumes?: unknown };
  } catch {
    return { kind: 'corrupt', reason: 'mapping is not valid JSON' };
  }
  if (!Array.isArray(parsed.volumes)) return { kind: 'corrupt', reason: 'mapping has no volume list' };
  return {
    kind: 'label',
    generation: Number(header.readBigUInt64LE(32)),
    label: {
      uuid: bytesToUuid(header.subarray(40, 56)),
      dataStart: Number(header.readBigUInt64LE(56)),
      volumes: parsed.volumes as LabelVolume[],
    },
  };
}
