/** Temp dirs and realistic little images for vault tests: text-like, random and zero regions. */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function tempDir(prefix = 'hf-vault-'): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Deterministic bytes from a seed. */
export function seeded(seed: string, n: number): Buffer {
  const out = Buffer.alloc(n);
  let o = 0;
  let i = 0;
  while (o < n) o += crypto.createHash('sha256').update(`${seed}:${i++}`).digest().copy(out, o);
  return out;
}

/**
 * An image of `size` bytes (multiple of 1 MiB): quarters of compressible text, random data,
 * zeroes, and a mix of text with zero holes — so chunks compress, don't, and are skipped.
 */
export function makeImage(file: string, size: number, seed = 'img'): void {
  const words = 'holdfast vault chunk restore snapshot volume journal block hold queue release backup '.repeat(64);
  const text = Buffer.from(words);
  const fd = fs.openSync(file, 'w');
  const q = size / 4;
  const MiB = 1 << 20;
  for (let off = 0; off < size; off += MiB) {
    let buf: Buffer;
    if (off < q) {
      buf = Buffer.alloc(MiB);
      for (let o = 0; o < MiB; o += text.length) text.copy(buf, o);
      buf.write(`${seed} ${off}`, 0);
    } else if (off < 2 * q) buf = seeded(`${seed}:${off}`, MiB);
    else if (off < 3 * q) buf = Buffer.alloc(MiB);
    else {
      buf = Buffer.alloc(MiB);
      for (let o = 0; o < MiB; o += 8192) seeded(`${seed}:${off}:${o}`, 4096).copy(buf, o);
    }
    fs.writeSync(fd, buf, 0, MiB, off);
  }
  fs.closeSync(fd);
}

/** Rewrites `fraction` of the 4 KiB blocks at random places; returns the block numbers. */
export function scatterChange(file: string, fraction: number, seed: string, blockSize = 4096): number[] {
  const size = fs.statSync(file).size;
  const nBlocks = size / blockSize;
  const want = Math.max(1, Math.round(nBlocks * fraction));
  const rnd = seeded(`pick:${seed}`, want * 8);
  const set = new Set<number>();
  for (let i = 0; set.size < want; i++) set.add(Number((rnd.readBigUInt64LE((i % want) * 8) + BigInt(i)) % BigInt(nBlocks)));
  const fd = fs.openSync(file, 'r+');
  for (const b of set) fs.writeSync(fd, seeded(`${seed}:${b}`, blockSize), 0, blockSize, b * blockSize);
  fs.closeSync(fd);
  return [...set].sort((a, b) => a - b);
}

export function sha256File(file: string, length?: number): string {
  const h = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(1 << 20);
  let pos = 0;
  const end = length ?? fs.fstatSync(fd).size;
  while (pos < end) {
    const n = fs.readSync(fd, buf, 0, Math.min(buf.length, end - pos), pos);
    if (n === 0) break;
    h.update(buf.subarray(0, n));
    pos += n;
  }
  fs.closeSync(fd);
  return h.digest('hex');
}

export function dirBytes(dir: string): number {
  let total = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    total += e.isDirectory() ? dirBytes(p) : fs.statSync(p).size;
  }
  return total;
}

export function countChunkFiles(vaultDir: string): number {
  const root = path.join(vaultDir, 'chunks');
  return fs.readdirSync(root).reduce((n, d) => n + fs.readdirSync(path.join(root, d)).length, 0);
}
