/**
 * Shared by the crash child and the checker: how a write's bytes identify it, and how the
 * child's model log (issued / acknowledged / flushed) is written and read.
 * Every 512-byte sector a write covers starts with 'HFWT', the write id and the sector's
 * index inside the write, and is filled with a byte derived from the id, so a recovered
 * sector names exactly one issued write (or is zero) and a torn sector is detectable.
 */
export const SECTOR = 512;
const MAGIC = 0x54574648;

export function writeData(id: number, length: number): Buffer {
  const b = Buffer.alloc(length, fillByte(id));
  for (let s = 0; s < length / SECTOR; s++) {
    b.writeUInt32LE(MAGIC, s * SECTOR);
    b.writeUInt32LE(id, s * SECTOR + 4);
    b.writeUInt32LE(s, s * SECTOR + 8);
  }
  return b;
}

function fillByte(id: number): number {
  return (id * 131 + 7) & 0xff || 1;
}

/** The id of the write whose bytes a sector holds: 0 for never written, -1 for garbage/torn. */
export function sectorOwner(sector: Buffer): number {
  if (sector.every((x) => x === 0)) return 0;
  if (sector.readUInt32LE(0) !== MAGIC) return -1;
  const id = sector.readUInt32LE(4);
  const fill = fillByte(id);
  for (let i = 12; i < SECTOR; i++) if (sector[i] !== fill) return -1;
  return id;
}

export interface ModelWrite {
  id: number;
  volume: string;
  offset: number;
  length: number;
  acked: boolean;
}

/** Lines: `I id volume offset length` (issued), `A id` (acknowledged), `F n` (flush covering the first n acks done). */
export function parseModel(text: string): { writes: Map<number, ModelWrite>; flushedAcks: number; acksInOrder: number[] } {
  const writes = new Map<number, ModelWrite>();
  const acksInOrder: number[] = [];
  let flushedAcks = 0;
  for (const line of text.split('\n')) {
    const p = line.split(' ');
    if (p[0] === 'I' && p.length === 5) writes.set(Number(p[1]), { id: Number(p[1]), volume: p[2]!, offset: Number(p[3]), length: Number(p[4]), acked: false });
    else if (p[0] === 'A' && p.length === 2) {
      const w = writes.get(Number(p[1]));
      if (w) {
        w.acked = true;
        acksInOrder.push(w.id);
      }
    } else if (p[0] === 'F' && p.length === 2) flushedAcks = Math.max(flushedAcks, Number(p[1]));
  }
  return { writes, flushedAcks, acksInOrder };
}
