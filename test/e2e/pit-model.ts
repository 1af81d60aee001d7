/**
 * Point-in-time checking for a writer whose writes each fill one block with one byte: the
 * volume after the first k writes is `model(k)` = the base image with writes 1..k applied in
 * order. A point-in-time snapshot must equal model(k) for some k. `matchingPrefixes` finds every
 * such k in one pass (O(writes + blocks)), tracking how many blocks differ as k grows.
 */
import { BLOCK, type BlockWrite } from './nbd-writer';

const fills = new Map<number, Buffer>();
const fill = (p: number) => fills.get(p) ?? (fills.set(p, Buffer.alloc(BLOCK, p)), fills.get(p)!);

const blockOf = (img: Buffer, b: number) => img.subarray(b * BLOCK, (b + 1) * BLOCK);

/**
 * Every k in [0, writes.length] with image == model(k) on `blocks` (default: the whole image).
 * `writes` may be a subsequence of the writer's writes (e.g. only those to metadata blocks) as
 * long as `blocks` is limited to the blocks that subsequence touches.
 */
export function matchingPrefixes(image: Buffer, base: Buffer, writes: readonly BlockWrite[], blocks?: readonly number[]): number[] {
  if (image.length !== base.length) throw new Error(`image is ${image.length} bytes, base ${base.length}`);
  const consider = blocks ?? Array.from({ length: base.length / BLOCK }, (_, i) => i);
  const inScope = new Set(consider);
  const current = new Map<number, Buffer>(); // block -> model content where it differs from base
  let differing = 0;
  const equalNow = new Map<number, boolean>();
  for (const b of consider) {
    const eq = blockOf(image, b).equals(blockOf(base, b));
    equalNow.set(b, eq);
    if (!eq) differing++;
  }
  const out: number[] = [];
  if (differing === 0) out.push(0);
  writes.forEach((w, i) => {
    if (!inScope.has(w.block)) return;
    const content = fill(w.pattern);
    current.set(w.block, content);
    const eq = blockOf(image, w.block).equals(content);
    if (eq !== equalNow.get(w.block)) {
      differing += eq ? -1 : 1;
      equalNow.set(w.block, eq);
    }
    if (differing === 0) out.push(i + 1);
  });
  return out;
}

/** The volume after the first k writes. */
export function model(base: Buffer, writes: readonly BlockWrite[], k: number): Buffer {
  const m = Buffer.from(base);
  for (let i = 0; i < k; i++) m.fill(writes[i]!.pattern, writes[i]!.block * BLOCK, (writes[i]!.block + 1) * BLOCK);
  return m;
}
