import crypto from 'node:crypto';

/** Compressible but not trivial: random 4 KiB blocks interleaved with zero blocks. */
export function sampleImage(size: number, seed = 1): Buffer {
  const b = Buffer.alloc(size);
  const rnd = crypto.createHash('sha256').update(String(seed)).digest();
  for (let o = 0; o < size; o += 8192) {
    const block = crypto.createHash('sha256').update(rnd).update(String(o)).digest();
    for (let k = 0; k < 4096 && o + k < size; k += 32) block.copy(b, o + k, 0, Math.min(32, size - o - k));
  }
  return b;
}
