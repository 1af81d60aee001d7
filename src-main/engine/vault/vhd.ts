/**
 * The 512-byte footer of a fixed VHD (Microsoft "Virtual Hard Disk Image Format Specification"):
 * a fixed VHD is the raw disk followed by this footer, which Windows mounts natively.
 *
 * Creator application is "win " on purpose: readers (Hyper-V, Windows, qemu) then take the disk
 * size from current_size rather than from the CHS geometry, which cannot express most sizes
 * exactly. The geometry is still filled in per the specification for readers that show it.
 */
import crypto from 'node:crypto';
import { HoldfastError } from '../../../src-shared/errors';

export const VHD_FOOTER_BYTES = 512;
const VHD_EPOCH_MS = Date.UTC(2000, 0, 1);

export function chsGeometry(size: number): { cylinders: number; heads: number; sectorsPerTrack: number } {
  let total = Math.floor(size / 512);
  if (total > 65535 * 16 * 255) total = 65535 * 16 * 255;
  let spt: number;
  let heads: number;
  let cth: number;
  if (total >= 65535 * 16 * 63) {
    spt = 255;
    heads = 16;
    cth = Math.floor(total / spt);
  } else {
    spt = 17;
    cth = Math.floor(total / spt);
    heads = Math.max(4, Math.floor((cth + 1023) / 1024));
    if (cth >= heads * 1024 || heads > 16) {
      spt = 31;
      heads = 16;
      cth = Math.floor(total / spt);
    }
    if (cth >= heads * 1024) {
      spt = 63;
      heads = 16;
      cth = Math.floor(total / spt);
    }
  }
  return { cylinders: Math.floor(cth / heads), heads, sectorsPerTrack: spt };
}

export function vhdFixedFooter(size: number, nowMs: number, uuid: Buffer = crypto.randomBytes(16)): Buffer {
  if (size % 512 !== 0 || size <= 0) throw new HoldfastError('INVALID_SIZE', `A VHD needs a size that is a multiple of 512 bytes (got ${size}).`);
  const f = Buffer.alloc(VHD_FOOTER_BYTES);
  f.write('conectix', 0, 'ascii');
  f.writeUInt32BE(0x00000002, 8); // features: reserved bit always set
  f.writeUInt32BE(0x00010000, 12); // format version 1.0
  f.writeBigUInt64BE(0xffffffffffffffffn, 16); // data offset: none for fixed disks
  f.writeUInt32BE(Math.max(0, Math.floor((nowMs - VHD_EPOCH_MS) / 1000)) >>> 0, 24);
  f.write('win ', 28, 'ascii');
  f.writeUInt32BE(0x000a0000, 32); // creator version 10.0
  f.write('Wi2k', 36, 'ascii'); // creator host OS: Windows
  f.writeBigUInt64BE(BigInt(size), 40); // original size
  f.writeBigUInt64BE(BigInt(size), 48); // current size
  const g = chsGeometry(size);
  f.writeUInt16BE(g.cylinders, 56);
  f[58] = g.heads;
  f[59] = g.sectorsPerTrack;
  f.writeUInt32BE(2, 60); // disk type: fixed
  uuid.copy(f, 68, 0, 16);
  f.writeUInt32BE(vhdChecksum(f), 64);
  return f;
}

/** One's complement of the byte sum of the footer with the checksum field taken as zero. */
export function vhdChecksum(footer: Buffer): number {
  let sum = 0;
  for (let i = 0; i < VHD_FOOTER_BYTES; i++) if (i < 64 || i > 67) sum += footer[i]!;
  return ~sum >>> 0;
}
