/**
 * fallocate(2) through the optional `holdfast-fs` Node-API addon (packages/holdfast-fs): Node's
 * fs cannot deallocate part of a file. Built at `npm install` where a C compiler is present; on
 * other platforms, or where the build failed, `nativeFallocate()` is null and callers write
 * zeroes instead. HOLDFAST_NO_NATIVE_FS=1 turns it off (tests of that path).
 */
interface Binding {
  fallocate(fd: number, mode: number, offset: number, length: number, done: (errno: number) => void): void;
  FALLOC_FL_KEEP_SIZE: number;
  FALLOC_FL_PUNCH_HOLE: number;
  FALLOC_FL_ZERO_RANGE: number;
  EOPNOTSUPP: number;
  ENOSYS: number;
}

/** How a range is made to read as zeroes: deallocated (a hole) or zeroed in place, still allocated. */
export type ZeroMode = 'punch' | 'allocate';

export interface Fallocate {
  /** 0 on success, else the errno; `unsupported(errno)` tells whether the file system lacks the mode. */
  zero(fd: number, mode: ZeroMode, offset: number, length: number): Promise<number>;
  unsupported(errno: number): boolean;
}

let loaded: Fallocate | null | undefined;

function load(): Fallocate | null {
  if (process.env.HOLDFAST_NO_NATIVE_FS === '1' || process.platform !== 'linux') return null;
  let b: Binding | null;
  try {
    b = require('holdfast-fs') as Binding | null; // external in the bundles, like better-sqlite3
  } catch {
    b = null;
  }
  if (!b || typeof b.fallocate !== 'function') return null;
  const binding = b;
  const modes: Record<ZeroMode, number> = {
    punch: binding.FALLOC_FL_PUNCH_HOLE | binding.FALLOC_FL_KEEP_SIZE,
    allocate: binding.FALLOC_FL_ZERO_RANGE | binding.FALLOC_FL_KEEP_SIZE,
  };
  return {
    zero: (fd, mode, offset, length) => new Promise<number>((res) => binding.fallocate(fd, modes[mode], offset, length, res)),
    // EINVAL too: file systems without a mode answer it on some kernels (and FALLOC_FL_ZERO_RANGE on old ones).
    unsupported: (errno) => errno === binding.EOPNOTSUPP || errno === binding.ENOSYS || errno === 22,
  };
}

/** The addon's fallocate, or null where it is not available (loaded once). */
export function nativeFallocate(): Fallocate | null {
  if (loaded === undefined) loaded = load();
  return loaded;
}
