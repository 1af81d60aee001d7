/**
 * A bitmap over a volume's blocks (`granularity` bytes each): the changed-block map used for
 * incrementals (claim 9) and a backup's copied-ranges map (claim 11). Byte ranges are mapped
 * to every block they touch, so a partial block counts as changed / not fully copied.
 */
import { invariant } from '../../../src-shared/errors';

const POPCOUNT = Uint8Array.from({ length: 256 }, (_, v) => {
  let n = 0;
  for (let x = v; x; x &= x - 1) n++;
  return n;
});

export class BlockBitmap {
  readonly bits: Uint8Array;
  readonly blocks: number;

  constructor(
    readonly volumeSize: number,
    readonly granularity = 4096,
    bits?: Uint8Array,
  ) {
    this.blocks = Math.ceil(volumeSize / granularity);
    this.bits = bits ?? new Uint8Array(Math.ceil(this.blocks / 8));
    invariant(this.bits.length === Math.ceil(this.blocks / 8), 'bitmap length matches its volume');
  }

  private span(offset: number, length: number): [number, number] {
    return [Math.floor(offset / this.granularity), Math.floor((offset + length - 1) / this.granularity)];
  }

  has(block: number): boolean {
    return (this.bits[block >> 3]! & (1 << (block & 7))) !== 0;
  }

  setBlock(block: number): void {
    this.bits[block >> 3]! |= 1 << (block & 7);
  }

  /** Marks every block touched by [offset, offset+length). */
  mark(offset: number, length: number): void {
    if (length <= 0) return;
    const [a, b] = this.span(offset, length);
    for (let i = a; i <= b; i++) this.bits[i >> 3]! |= 1 << (i & 7);
  }

  /** Marks only blocks wholly inside [offset, offset+length) — for "copied" ranges. */
  markWhole(offset: number, length: number): void {
    const a = Math.ceil(offset / this.granularity);
    const end = Math.min(offset + length, this.volumeSize);
    const b = end === this.volumeSize ? this.blocks - 1 : Math.floor(end / this.granularity) - 1;
    for (let i = a; i <= b; i++) this.bits[i >> 3]! |= 1 << (i & 7);
  }

  /** Whole bytes of the span at once: the hold-state block map asks this of 1024 cells up to 40 times a second. */
  allIn(offset: number, length: number): boolean {
    const [a, b] = this.span(offset, length);
    let i = a;
    for (; i <= b && (i & 7) !== 0; i++) if (!this.has(i)) return false;
    for (; i + 7 <= b; i += 8) if (this.bits[i >> 3] !== 0xff) return false;
    for (; i <= b; i++) if (!this.has(i)) return false;
    return true;
  }

  anyIn(offset: number, length: number): boolean {
    const [a, b] = this.span(offset, length);
    let i = a;
    for (; i <= b && (i & 7) !== 0; i++) if (this.has(i)) return true;
    for (; i + 7 <= b; i += 8) if (this.bits[i >> 3] !== 0) return true;
    for (; i <= b; i++) if (this.has(i)) return true;
    return false;
  }

  /** Calls fn for every set block, in ascending order; skips empty bytes (a sparse map costs ~1 µs per KiB of bitmap). */
  forEachSet(fn: (block: number) => void): void {
    const b = this.bits;
    for (let i = 0; i < b.length; i++) {
      let v = b[i]!;
      while (v !== 0) {
        const low = v & -v;
        fn((i << 3) + 31 - Math.clz32(low));
        v ^= low;
      }
    }
  }

  count(): number {
    let n = 0;
    const b = this.bits;
    for (let i = 0; i < b.length; i++) n += POPCOUNT[b[i]!]!;
    return n;
  }

  or(other: BlockBitmap): void {
    invariant(other.bits.length === this.bits.length && other.granularity === this.granularity, 'bitmap shapes match');
    for (let i = 0; i < this.bits.length; i++) this.bits[i]! |= other.bits[i]!;
  }

  clear(): void {
    this.bits.fill(0);
  }

  clone(): BlockBitmap {
    return new BlockBitmap(this.volumeSize, this.granularity, Uint8Array.from(this.bits));
  }

  /** A bigger volume keeps its marks; the new blocks start clear. */
  resized(volumeSize: number): BlockBitmap {
    const b = new BlockBitmap(volumeSize, this.granularity);
    b.bits.set(this.bits.subarray(0, Math.min(this.bits.length, b.bits.length)));
    return b;
  }
}
