/**
 * A file's allocation map from the filesystem (FIEMAP), read through e2fsprogs' `filefrag -v`:
 * Node has neither lseek(SEEK_DATA/SEEK_HOLE) nor ioctl. Works on ext4, XFS, btrfs and other
 * filesystems with FIEMAP; null where the tool is missing, the filesystem has no FIEMAP (tmpfs),
 * or the output is not what this parser knows — the caller then reads instead.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import type { FileRange } from './env';

/** Where Debian, Fedora and Arch put it (/usr/sbin is not on every user's PATH). */
const CANDIDATES = ['/usr/sbin/filefrag', '/sbin/filefrag', '/usr/bin/filefrag'];
let tool: string | null | undefined;

function filefragPath(): string | null {
  if (tool === undefined) tool = CANDIDATES.find((p) => fs.existsSync(p)) ?? null;
  return tool;
}

const HEADER = /^File size of .* is (\d+) \((\d+) blocks? of (\d+) bytes\)\s*$/m;
const EXTENT = /^\s*\d+:\s*(\d+)\.\.\s*(\d+):\s*\d+\.\.\s*\d+:\s*\d+:\s*(?:\d+:)?\s*([\w,]*)\s*$/;
const FOUND = /: (\d+) extents? found\s*$/m;

/**
 * Parses `filefrag -v` output into allocated byte ranges (offset order, merged where adjacent
 * and alike): `zero` for unwritten extents, which read as zeroes; delayed-allocation extents
 * (dirty pages not yet placed, reported with no physical length) are data. null if any extent
 * line or the summary is missing or malformed.
 */
export function parseFilefrag(out: string): FileRange[] | null {
  const header = HEADER.exec(out);
  const found = FOUND.exec(out);
  if (!header || !found) return null;
  const block = Number(header[3]);
  if (!(block > 0)) return null;
  const lines = out.split('\n');
  const start = lines.findIndex((l) => /^\s*ext:\s+logical_offset:/.test(l));
  const ranges: FileRange[] = [];
  let extents = 0;
  if (start >= 0) {
    for (const l of lines.slice(start + 1)) {
      if (FOUND.test(l) || l.trim() === '') continue;
      const m = EXTENT.exec(l);
      if (!m) return null;
      extents++;
      const first = Number(m[1]);
      const last = Number(m[2]);
      if (last < first) return null;
      const flags = m[3]!.split(',');
      ranges.push({ offset: first * block, length: (last - first + 1) * block, zero: flags.includes('unwritten') });
    }
  }
  // filefrag counts merged extents its own way; a count of 0 with lines listed (or the reverse) is not output we know.
  if ((extents === 0) !== (Number(found[1]) === 0)) return null;
  ranges.sort((a, b) => a.offset - b.offset);
  const merged: FileRange[] = [];
  for (const r of ranges) {
    const prev = merged[merged.length - 1];
    if (prev && prev.offset + prev.length > r.offset) return null; // overlapping extents: not a map we trust
    if (prev && prev.offset + prev.length === r.offset && prev.zero === r.zero) prev.length += r.length;
    else merged.push({ ...r });
  }
  return merged;
}

/** The allocation map of the file at `path` (a regular file), or null (see the module comment). */
export function readAllocation(path: string): Promise<FileRange[] | null> {
  const bin = filefragPath();
  if (!bin) return Promise.resolve(null);
  return new Promise((resolve) => {
    execFile(bin, ['-v', '--', path], { timeout: 30_000, maxBuffer: 256 << 20, env: { ...process.env, LC_ALL: 'C' } }, (err, stdout) => {
      resolve(err ? null : parseFilefrag(String(stdout)));
    });
  });
}
