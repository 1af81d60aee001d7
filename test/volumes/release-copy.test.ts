/**
 * A held write's bytes are in the journal once its record is committed; its release copies them
 * from the journal file to the volume's image with copy_file_range (BlockFile.copyFromSync, the
 * holdfast-fs addon) instead of a pread into memory and a pwrite out of it. The copy writes
 * exactly the bytes asked for, from any position in the source; where the files cannot (another
 * file system, no addon) it answers false having written nothing, and the release writes from a
 * buffer as before.
 */
import { describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { BlockFile } from '../../src-main/engine/env/env';
import { nativeFs } from '../../src-main/engine/env/native-fs';
import { NodeEnv } from '../../src-main/engine/env/node-env';
import { UncopiedRangeRule } from '../../src-main/engine/holds/policy';
import { BlockBitmap } from '../../src-main/engine/volumes/block-bitmap';
import { openTestVolume, readImage, tmpfsDir, useTempDirs } from '../engine/helpers';

const mk = useTempDirs();
const KiB = 1024;
const MiB = 1 << 20;

function noCopy(): string | null {
  return nativeFs()?.copyRange ? null : 'the holdfast-fs addon (with copy_file_range) is not built here';
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

/** Opens `src` read-only and `dst` read-write, runs `body` on them, and closes both. */
async function withPair<T>(src: string, dst: string, body: (s: BlockFile, t: BlockFile) => T): Promise<T> {
  const env = new NodeEnv();
  const s = await env.open(src, { readOnly: true });
  const t = await env.open(dst);
  try {
    return body(s, t);
  } finally {
    await s.close();
    await t.close();
  }
}

describe('BlockFile.copyFromSync', () => {
  it('copies bytes from an unaligned source position to any position, and grows the file', async () => {
    const why = noCopy();
    if (why) return console.log(`skipping: ${why}`);
    const d = mk();
    const src = crypto.randomBytes(64 * KiB);
    fs.writeFileSync(path.join(d, 'src'), src);
    fs.writeFileSync(path.join(d, 'dst'), Buffer.alloc(16 * KiB, 0x11));
    await withPair(path.join(d, 'src'), path.join(d, 'dst'), (s, t) => {
      expect(t.copyFromSync!(s.fd!, 4160 + 64, 4 * KiB, 8 * KiB)).toBe(true);
      expect(t.copyFromSync!(s.fd!, 3, 10_000, 20 * KiB)).toBe(true); // past the end: the file grows
      expect(t.size()).toBe(20 * KiB + 10_000);
    });
    const got = fs.readFileSync(path.join(d, 'dst'));
    expect(got.subarray(0, 8 * KiB).equals(Buffer.alloc(8 * KiB, 0x11))).toBe(true);
    expect(got.subarray(8 * KiB, 12 * KiB).equals(src.subarray(4224, 4224 + 4 * KiB))).toBe(true);
    expect(got.subarray(12 * KiB, 16 * KiB).equals(Buffer.alloc(4 * KiB, 0x11))).toBe(true);
    expect(got.subarray(16 * KiB, 20 * KiB).equals(Buffer.alloc(4 * KiB))).toBe(true); // the gap reads zeroes
    expect(got.subarray(20 * KiB).equals(src.subarray(3, 3 + 10_000))).toBe(true);
  });

  it('a source shorter than asked is an I/O error, not a silent short copy', async () => {
    const why = noCopy();
    if (why) return console.log(`skipping: ${why}`);
    const d = mk();
    fs.writeFileSync(path.join(d, 'src'), Buffer.alloc(4 * KiB, 0x22));
    fs.writeFileSync(path.join(d, 'dst'), Buffer.alloc(0));
    await withPair(path.join(d, 'src'), path.join(d, 'dst'), (s, t) => {
      expect(() => t.copyFromSync!(s.fd!, 2 * KiB, 4 * KiB, 0)).toThrow(/EIO: copy_file_range found 2048 bytes fewer/);
    });
  });

  it('between file systems that cannot copy (tmpfs to the test disk): false, nothing written; or a whole copy', async () => {
    const why = noCopy();
    if (why) return console.log(`skipping: ${why}`);
    const shm = tmpfsDir();
    if (!shm) return console.log('skipping: no /dev/shm');
    try {
      const d = mk();
      if (fs.statSync(shm).dev === fs.statSync(d).dev) return console.log('skipping: /dev/shm and the temp dir are one file system');
      const src = crypto.randomBytes(8 * KiB);
      fs.writeFileSync(path.join(shm, 'src'), src);
      fs.writeFileSync(path.join(d, 'dst'), Buffer.alloc(8 * KiB, 0x33));
      const copied = await withPair(path.join(shm, 'src'), path.join(d, 'dst'), (s, t) => {
        const ok = t.copyFromSync!(s.fd!, 0, 8 * KiB, 0);
        // A refusal is remembered: the next copy into this file does not try again.
        if (!ok) expect(t.copyFromSync!(s.fd!, 0, 8 * KiB, 0)).toBe(false);
        return ok;
      });
      expect(fs.readFileSync(path.join(d, 'dst')).equals(copied ? src : Buffer.alloc(8 * KiB, 0x33))).toBe(true);
    } finally {
      fs.rmSync(shm, { recursive: true, force: true });
    }
  });
});

describe('releasing held writes', () => {
  it('copies lone held writes from the journal to the image, and the image holds what was written', async () => {
    const why = noCopy();
    if (why) return console.log(`skipping: ${why}`);
    const d = mk();
    const size = 16 * MiB;
    const tv = await openTestVolume(d, 'vol', size);
    const vol = tv.vol;
    const file = tv.file as BlockFile;
    let copies = 0;
    const copyFromSync = file.copyFromSync!.bind(file);
    file.copyFromSync = (fd, srcPos, len, pos) => {
      const ok = copyFromSync(fd, srcPos, len, pos);
      if (ok) copies++;
      return ok;
    };
    try {
      const copied = new BlockBitmap(size);
      await vol.beginBackup('bk', new UncopiedRangeRule(copied), copied);
      const expected = new Map<number, Buffer>();
      // Lone 4 KiB writes (every third block: none adjacent), a run of adjacent ones, and an
      // overwrite of a held write (arrival order decides).
      for (let b = 0; b < 600; b += 3) {
        const data = crypto.randomBytes(4 * KiB);
        expected.set(b * 4 * KiB, data);
        await vol.write(b * 4 * KiB, data);
      }
      const run = crypto.randomBytes(32 * KiB);
      await vol.write(8 * MiB, run);
      const newer = crypto.randomBytes(4 * KiB);
      await vol.write(30 * 4 * KiB, newer);
      expected.set(30 * 4 * KiB, newer);
      expect(vol.holdState().heldCount).toBe(202);
      await vol.flush();
      vol.rangeCopied(0, size);
      await until(() => vol.holdState().heldCount === 0, 'the release');
      await vol.flush();
      for (const [at, data] of expected) expect(readImage(tv.imagePath, at, data.length).equals(data), `bytes at ${at}`).toBe(true);
      expect(readImage(tv.imagePath, 8 * MiB, run.length).equals(run)).toBe(true);
      expect(copies, 'the lone writes went by copy_file_range').toBeGreaterThanOrEqual(199);
    } finally {
      await vol.close();
    }
  });
});
