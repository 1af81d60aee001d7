/**
 * File-system calls Node's fs lacks, through the optional `holdfast-fs` Node-API addon
 * (packages/holdfast-fs): fallocate (deallocate or zero part of a file), lseek(SEEK_DATA /
 * SEEK_HOLE) (where a file has data) and copy_file_range (copy between files in the kernel), and
 * one scheduler call the addon carries as well: sched_setattr (a thread's EEVDF slice,
 * vault/helper-slices.ts).
 * Built at `npm install` where a C compiler is present; on other platforms, or where the build
 * failed, `nativeFs()` is null and callers write zeroes, read `filefrag` and copy through memory
 * instead. HOLDFAST_NO_NATIVE_FS=1 turns it off (tests of that path).
 */
interface Binding {
  fallocate(fd: number, mode: number, offset: number, length: number, done: (errno: number) => void): void;
  dataRanges(fd: number, start: number, end: number, done: (errno: number, ranges: number[] | null) => void): void;
  /** Absent in builds before it was added (and with it EXDEV, EINVAL, EBADF). */
  copyRangeSync?(fdIn: number, posIn: number, fdOut: number, posOut: number, length: number): number;
  /** Absent in builds before it was added. */
  setThreadSlice?(tid: number, nanoseconds: number, nice: number): number;
  FALLOC_FL_KEEP_SIZE: number;
  FALLOC_FL_PUNCH_HOLE: number;
  FALLOC_FL_ZERO_RANGE: number;
  EOPNOTSUPP: number;
  ENOSYS: number;
  EXDEV?: number;
  EINVAL?: number;
  EBADF?: number;
}

/** How a range is made to read as zeroes: deallocated (a hole) or zeroed in place, still allocated. */
export type ZeroMode = 'punch' | 'allocate';

export interface NativeFs {
  /** What was loaded: the `holdfast-fs` package or the file the host named (useNativeFsAddon). */
  readonly from: string;
  /** fallocate: 0 on success, else the errno; `unsupported(errno)` tells whether the file system lacks the mode. */
  zero(fd: number, mode: ZeroMode, offset: number, length: number): Promise<number>;
  unsupported(errno: number): boolean;
  /**
   * The ranges of [start, end) holding data, in offset order, as [offset, length] pairs (holes
   * and unwritten extents read as zeroes and are left out); null where the file system or the
   * call failed. A file system without SEEK_DATA reports all of it as data.
   */
  dataRanges(fd: number, start: number, end: number): Promise<Array<[number, number]> | null>;
  /**
   * copy_file_range, synchronously: copies up to `length` bytes from fdIn at posIn to fdOut at
   * posOut inside the kernel; the count copied (short counts happen; 0 at the source's end) or
   * -errno. Null where the addon's build lacks it.
   */
  copyRange: ((fdIn: number, posIn: number, fdOut: number, posOut: number, length: number) => number) | null;
  /**
   * sched_setattr: thread `tid` of this process (0: the caller) keeps the normal policy at `nice`
   * with an EEVDF slice of `nanoseconds`; 0 or the errno. Null where the addon's build lacks it.
   */
  setThreadSlice: ((tid: number, nanoseconds: number, nice: number) => number) | null;
  /** copy_file_range's errno says the files cannot be copied between (another file system, a block device, no support): copy through memory. */
  copyUnsupported(errno: number): boolean;
}

let loaded: NativeFs | null | undefined;
let addonFile: string | undefined;

/**
 * Where the compiled addon is when the host ships it as a file of its own (the packaged desktop
 * app: resources/electron-native/holdfast_fs.node); otherwise the `holdfast-fs` package is
 * required. Takes effect only before the first nativeFs() call.
 */
export function useNativeFsAddon(file: string | undefined): void {
  if (file && loaded === undefined) addonFile = file;
}

function requireBinding(): { b: Binding; from: string } | null {
  for (const id of addonFile ? [addonFile, 'holdfast-fs'] : ['holdfast-fs']) {
    try {
      const b = require(id) as Binding | null; // 'holdfast-fs' is external in the bundles, like better-sqlite3
      if (b) return { b, from: id };
    } catch {
      // next
    }
  }
  return null;
}

function load(): NativeFs | null {
  if (process.env.HOLDFAST_NO_NATIVE_FS === '1' || process.platform !== 'linux') return null;
  const found = requireBinding();
  if (!found || typeof found.b.fallocate !== 'function' || typeof found.b.dataRanges !== 'function') return null;
  const binding = found.b;
  const modes: Record<ZeroMode, number> = {
    punch: binding.FALLOC_FL_PUNCH_HOLE | binding.FALLOC_FL_KEEP_SIZE,
    allocate: binding.FALLOC_FL_ZERO_RANGE | binding.FALLOC_FL_KEEP_SIZE,
  };
  return {
    from: found.from,
    zero: (fd, mode, offset, length) => new Promise<number>((res) => binding.fallocate(fd, modes[mode], offset, length, res)),
    // EINVAL too: file systems without a mode answer it on some kernels (and FALLOC_FL_ZERO_RANGE on old ones).
    unsupported: (errno) => errno === binding.EOPNOTSUPP || errno === binding.ENOSYS || errno === 22,
    copyRange: typeof binding.copyRangeSync === 'function' ? binding.copyRangeSync.bind(binding) : null,
    setThreadSlice: typeof binding.setThreadSlice === 'function' ? binding.setThreadSlice.bind(binding) : null,
    // EBADF: an O_APPEND target. Asked only where copyRangeSync (and these constants) exist.
    copyUnsupported: (errno) => errno === binding.EXDEV || errno === binding.EINVAL || errno === binding.EOPNOTSUPP || errno === binding.ENOSYS || errno === binding.EBADF,
    dataRanges: (fd, start, end) =>
      new Promise((res) =>
        binding.dataRanges(fd, start, end, (errno, flat) => {
          if (errno !== 0 || !flat) return res(null);
          const out: Array<[number, number]> = [];
          for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
          res(out);
        }),
      ),
  };
}

/** The addon's calls, or null where it is not available (loaded once). */
export function nativeFs(): NativeFs | null {
  if (loaded === undefined) loaded = load();
  return loaded;
}
