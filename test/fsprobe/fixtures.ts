/**
 * Test fixtures for the filesystem probe: temp dirs, a reader over an image file, a source
 * tree shaped to exercise every metadata path (nested and multi-block directories, a
 * fragmented sparse file, files large enough to need indirect blocks, slow and fast
 * symlinks), and oracles that ask the real tools (dumpe2fs, debugfs, minfo/mdir) where
 * the metadata lives.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MetadataMap } from '../../src-main/engine/fsprobe/index';
import { probeFilesystem } from '../../src-main/engine/fsprobe/index';

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `holdfast-fsprobe-${prefix}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export function sparseFile(path: string, size: number): void {
  const fd = openSync(path, 'w');
  closeSync(fd);
  execFileSync('truncate', ['-s', String(size), path]);
}

export async function probeImage(path: string, options?: { maxReadBytes?: number }): Promise<MetadataMap> {
  const fd = openSync(path, 'r');
  try {
    const size = statSync(path).size;
    return await probeFilesystem(
      async (offset, length) => {
        const buf = Buffer.alloc(length);
        let done = 0;
        while (done < length) {
          const n = readSync(fd, buf, done, length - done, offset + done);
          if (n === 0) break;
          done += n;
        }
        return buf;
      },
      size,
      options,
    );
  } finally {
    closeSync(fd);
  }
}

/** Deterministic bytes so images are reproducible. */
function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

export interface SourceTree {
  root: string;
  /** Paths relative to root, with a leading slash, as debugfs names them. */
  dirs: string[];
  files: string[];
  symlinks: string[];
}

/** A tree for mkfs.ext4 -d: every kind of object whose blocks the probe must classify. */
export function buildExtSourceTree(root: string): SourceTree {
  const t: SourceTree = { root, dirs: [], files: [], symlinks: [] };
  const dir = (rel: string) => {
    mkdirSync(join(root, rel), { recursive: true });
    t.dirs.push(rel);
  };
  const file = (rel: string, data: Buffer) => {
    writeFileSync(join(root, rel), data);
    t.files.push(rel);
  };
  dir('/docs');
  dir('/docs/deep');
  dir('/docs/deep/deeper');
  dir('/many');
  for (let i = 0; i < 12; i++) file(`/docs/note-${i}.txt`, pattern(1500 + i * 700, i));
  file('/docs/deep/deeper/leaf.bin', pattern(9000, 99));
  // 400 long names: a directory spanning many blocks, indexed (htree) under dir_index.
  for (let i = 0; i < 400; i++) file(`/many/a-rather-long-file-name-to-fill-directory-blocks-${String(i).padStart(4, '0')}`, Buffer.alloc(0));
  // Big enough for indirect and double-indirect blocks on 1 KiB block maps (> 12 + 256 blocks).
  file('/big.bin', pattern(1_500_000, 7));
  // Many data runs separated by holes: more than 4 extents, so the extent tree has a leaf block.
  const sparse = join(root, 'fragmented.bin');
  const fd = openSync(sparse, 'w');
  for (let i = 0; i < 14; i++) writeSync(fd, pattern(5000, 200 + i), 0, 5000, i * 300_000);
  closeSync(fd);
  t.files.push('/fragmented.bin');
  symlinkSync('x'.repeat(200), join(root, 'slow-link'));
  symlinkSync('short', join(root, 'fast-link'));
  t.symlinks.push('/slow-link', '/fast-link');
  return t;
}

export function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
}

/** Every block the map touches, at `blockSize` granularity. */
export function mappedBlocks(map: MetadataMap, blockSize: number): Set<number> {
  const s = new Set<number>();
  for (const r of map.ranges) {
    const first = Math.floor(r.offset / blockSize);
    const last = Math.floor((r.offset + r.length - 1) / blockSize);
    for (let b = first; b <= last; b++) s.add(b);
  }
  return s;
}

/** Elements of `a` missing from `b`, sorted, at most `limit` of them (for readable failures). */
export function missing(a: Iterable<number>, b: Set<number>, limit = 20): number[] {
  const out: number[] = [];
  for (const x of a) if (!b.has(x)) out.push(x);
  return out.sort((x, y) => x - y).slice(0, limit);
}
