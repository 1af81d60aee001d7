/** The production Env: Node's fs with positional I/O on raw file descriptors. */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import util, { promisify } from 'node:util';
import { invariant } from '../../../src-shared/errors';
import { DIRECT_IO_ALIGN, type BlockFile, type Env, type FileRange, type FileStat, type OpenOptions } from './env';
import { readAllocation } from './filefrag';
import { nativeFs, type ZeroMode } from './native-fs';

// fs.read/fs.write have custom promisified forms that resolve to objects; wrap the callbacks directly.
const pread = (fd: number, buf: Buffer, off: number, len: number, pos: number) =>
  new Promise<number>((res, rej) => fs.read(fd, buf, off, len, pos, (err, n) => (err ? rej(err) : res(n))));
const pwrite = (fd: number, buf: Buffer, off: number, len: number, pos: number) =>
  new Promise<number>((res, rej) => fs.write(fd, buf, off, len, pos, (err, n) => (err ? rej(err) : res(n))));
const pwritev = (fd: number, bufs: Buffer[], pos: number) =>
  new Promise<number>((res, rej) => fs.writev(fd, bufs, pos, (err, n) => (err ? rej(err) : res(n))));
const fdatasync = promisify(fs.fdatasync);
const ftruncate = promisify(fs.ftruncate);
const fclose = promisify(fs.close);
const fopen = promisify(fs.open);
const ffstat = promisify(fs.fstat);

/** Size of a block device: fstat reports 0, so seek to the end via a read of the sysfs size. */
function blockDeviceSize(p: string, fd: number): number {
  try {
    const real = fs.realpathSync(p);
    const name = path.basename(real);
    const candidates = [`/sys/class/block/${name}/size`];
    for (const c of candidates) {
      if (fs.existsSync(c)) return Number(fs.readFileSync(c, 'utf8').trim()) * 512;
    }
  } catch {
    /* fall through */
  }
  // Last resort: binary search the readable end.
  let lo = 0;
  let hi = 2 ** 50;
  const b = Buffer.alloc(1);
  while (lo < hi) {
    const mid = Math.floor((lo + hi + 1) / 2);
    let n = 0;
    try {
      n = fs.readSync(fd, b, 0, 1, mid - 1);
    } catch {
      n = 0;
    }
    if (n === 1) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** O_DIRECT where the platform has it (Linux); 0 elsewhere (no uncached reads). */
const O_DIRECT = fs.constants.O_DIRECT ?? 0;

/**
 * A second, read-only O_DIRECT descriptor of the file open as `fd`: through /proc/self/fd, so it
 * is the same file even if its path was renamed or replaced since (checked: same device and
 * inode). null where refused (a filesystem without O_DIRECT answers EINVAL; no /proc).
 */
function reopenUncached(fd: number): number | null {
  let direct: number;
  try {
    direct = fs.openSync(`/proc/self/fd/${fd}`, fs.constants.O_RDONLY | O_DIRECT);
  } catch {
    return null;
  }
  const a = fs.fstatSync(fd);
  const b = fs.fstatSync(direct);
  if (a.dev === b.dev && a.ino === b.ino && a.rdev === b.rdev) return direct;
  fs.closeSync(direct);
  return null;
}

class NodeBlockFile implements BlockFile {
  private closed = false;
  /** The O_DIRECT descriptor: undefined until first asked for, null where refused. */
  private direct: number | null | undefined;
  /** fallocate modes this file's file system refused (EOPNOTSUPP): zeroes are written there instead. */
  private readonly cannot = new Set<ZeroMode>();
  /** copy_file_range into this file was refused once (EXDEV, EINVAL, ...): copies go through memory. */
  private cannotCopy: boolean;
  constructor(
    readonly path: string,
    readonly fd: number,
    private cachedSize: number,
    private readonly isBlock: boolean,
  ) {
    this.cannotCopy = isBlock;
  }

  size(): number {
    return this.cachedSize;
  }

  async read(buf: Buffer, pos: number): Promise<number> {
    let done = 0;
    while (done < buf.length) {
      const n = await pread(this.fd, buf, done, buf.length - done, pos + done);
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  readSync(buf: Buffer, pos: number): number {
    let done = 0;
    while (done < buf.length) {
      const n = fs.readSync(this.fd, buf, done, buf.length - done, pos + done);
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  uncachedFd(): number | null {
    if (this.direct === undefined) {
      invariant(!this.closed, 'a closed file has no descriptors');
      this.direct = O_DIRECT ? reopenUncached(this.fd) : null;
    }
    return this.direct;
  }

  allocatedBytes(): number | null {
    if (this.isBlock) return null;
    const blocks = fs.fstatSync(this.fd).blocks;
    return Number.isFinite(blocks) ? blocks * 512 : null;
  }

  /** lseek(SEEK_DATA / SEEK_HOLE) through the addon where it is built, else `filefrag` (a process). */
  async allocation(): Promise<FileRange[] | null> {
    if (this.isBlock) return null;
    const native = nativeFs();
    if (native) {
      const ranges = await native.dataRanges(this.fd, 0, (await ffstat(this.fd)).size);
      if (ranges) return ranges.map(([offset, length]) => ({ offset, length, zero: false }));
    }
    return readAllocation(this.path);
  }

  async readUncached(buf: Buffer, pos: number): Promise<number> {
    const dfd = pos % DIRECT_IO_ALIGN === 0 && buf.length % DIRECT_IO_ALIGN === 0 ? this.uncachedFd() : null;
    if (dfd === null) return this.read(buf, pos);
    let done = 0;
    while (done < buf.length) {
      let n: number;
      try {
        n = await pread(dfd, buf, done, buf.length - done, pos + done);
      } catch (e) {
        // EINVAL: unaligned memory, or a short read left an unaligned rest. Buffered reads see the same bytes.
        if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw e;
        return done + (await this.read(buf.subarray(done), pos + done));
      }
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  async write(buf: Buffer, pos: number): Promise<void> {
    let done = 0;
    while (done < buf.length) done += await pwrite(this.fd, buf, done, buf.length - done, pos + done);
    if (!this.isBlock && pos + buf.length > this.cachedSize) this.cachedSize = pos + buf.length;
  }

  writeSync(buf: Buffer, pos: number): void {
    let done = 0;
    while (done < buf.length) done += fs.writeSync(this.fd, buf, done, buf.length - done, pos + done);
    if (!this.isBlock && pos + buf.length > this.cachedSize) this.cachedSize = pos + buf.length;
  }

  copyFromSync(srcFd: number, srcPos: number, len: number, pos: number): boolean {
    const native = this.cannotCopy ? null : nativeFs();
    if (!native?.copyRange || len <= 0) return false;
    let done = 0;
    while (done < len) {
      const n = native.copyRange(srcFd, srcPos + done, this.fd, pos + done, len - done);
      if (n > 0) {
        done += n;
        continue;
      }
      if (n === 0) throw Object.assign(new Error(`EIO: copy_file_range found ${len - done} bytes fewer than asked in its source for '${this.path}'`), { code: 'EIO' });
      if (native.copyUnsupported(-n)) {
        this.cannotCopy = true; // the file systems' answer does not change while the file is open
        if (done === 0) return false;
        // Refused part way (not seen in practice): the rest through memory.
        const rest = Buffer.allocUnsafe(len - done);
        invariant(fs.readSync(srcFd, rest, 0, rest.length, srcPos + done) === rest.length, 'a copy source has the bytes it was asked for');
        this.writeSync(rest, pos + done);
        return true;
      }
      const code = util.getSystemErrorName(n);
      throw Object.assign(new Error(`${code}: copy_file_range of ${len - done} bytes to ${pos + done} in '${this.path}'`), { code, errno: n, syscall: 'copy_file_range', path: this.path });
    }
    if (pos + len > this.cachedSize) this.cachedSize = pos + len;
    return true;
  }

  async writev(bufs: Buffer[], pos: number): Promise<void> {
    const total = bufs.reduce((s, b) => s + b.length, 0);
    let done = await pwritev(this.fd, bufs, pos);
    if (done < total) {
      // Rare short vectored write: finish the rest with plain writes.
      const all = Buffer.concat(bufs);
      while (done < total) done += await pwrite(this.fd, all, done, total - done, pos + done);
    }
    if (!this.isBlock && pos + total > this.cachedSize) this.cachedSize = pos + total;
  }

  writevSync(bufs: Buffer[], pos: number): void {
    let total = 0;
    for (const b of bufs) total += b.length;
    const done = fs.writevSync(this.fd, bufs, pos);
    if (done < total) {
      // Short vectored write (or more buffers than IOV_MAX): finish with plain writes.
      const all = Buffer.concat(bufs);
      for (let at = done; at < total; ) at += fs.writeSync(this.fd, all, at, total - at, pos + at);
    }
    if (!this.isBlock && pos + total > this.cachedSize) this.cachedSize = pos + total;
  }

  datasync(): Promise<void> {
    return fdatasync(this.fd);
  }

  datasyncSync(): void {
    fs.fdatasyncSync(this.fd);
  }

  async truncate(len: number): Promise<void> {
    await ftruncate(this.fd, len);
    this.cachedSize = len;
  }

  async zeroRange(pos: number, len: number, mode: ZeroMode): Promise<boolean> {
    const fa = nativeFs();
    if (this.isBlock || !fa || this.cannot.has(mode) || len <= 0) return false;
    const err = await fa.zero(this.fd, mode, pos, len);
    if (err === 0) return true; // KEEP_SIZE: the file's size is unchanged (reads past the end are zeroes)
    if (fa.unsupported(err)) {
      this.cannot.add(mode); // the file system's answer does not change while the file is open
      return false;
    }
    const code = util.getSystemErrorName(-err);
    throw Object.assign(new Error(`${code}: fallocate ${mode} of ${len} bytes at ${pos} in '${this.path}'`), { code, errno: -err, syscall: 'fallocate', path: this.path });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const direct = this.direct;
    this.direct = null;
    if (typeof direct === 'number') await fclose(direct);
    await fclose(this.fd);
  }
}

export class NodeEnv implements Env {
  async open(p: string, opts: OpenOptions = {}): Promise<BlockFile> {
    let flags: number;
    if (opts.readOnly) flags = fs.constants.O_RDONLY;
    else {
      flags = fs.constants.O_RDWR;
      if (opts.create) flags |= fs.constants.O_CREAT;
      if (opts.exclusive) flags |= fs.constants.O_EXCL;
    }
    const fd = await fopen(p, flags, 0o644);
    // A file this call created is empty and regular: no fstat round trip (chunk files are created by the hundred).
    if (opts.create && opts.exclusive && !opts.readOnly) return new NodeBlockFile(p, fd, 0, false);
    const st = await ffstat(fd);
    const isBlock = st.isBlockDevice();
    const size = isBlock ? blockDeviceSize(p, fd) : st.size;
    return new NodeBlockFile(p, fd, size, isBlock);
  }

  async stat(p: string): Promise<FileStat | null> {
    try {
      const st = await fsp.stat(p);
      let size = st.size;
      if (st.isBlockDevice()) {
        const fd = fs.openSync(p, 'r');
        try {
          size = blockDeviceSize(p, fd);
        } finally {
          fs.closeSync(fd);
        }
      }
      return { size, isFile: st.isFile(), isBlockDevice: st.isBlockDevice(), isDirectory: st.isDirectory(), mtimeMs: st.mtimeMs };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async mkdir(p: string): Promise<void> {
    await fsp.mkdir(p, { recursive: true });
  }

  readdir(p: string): Promise<string[]> {
    return fsp.readdir(p);
  }

  readFile(p: string): Promise<Buffer> {
    return fsp.readFile(p);
  }

  async writeFileAtomic(p: string, data: Buffer | string, opts: { durable?: boolean } = {}): Promise<void> {
    const durable = opts.durable !== false;
    const tmp = `${p}.tmp-${process.pid}-${Date.now()}`;
    const fh = await fsp.open(tmp, 'w', 0o644);
    try {
      await fh.writeFile(data);
      if (durable) await fh.datasync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, p);
    if (durable) await this.fsyncDir(path.dirname(p));
  }

  rename(from: string, to: string): Promise<void> {
    return fsp.rename(from, to);
  }

  async unlink(p: string): Promise<void> {
    await fsp.rm(p, { force: true });
  }

  async rmdir(p: string): Promise<void> {
    await fsp.rm(p, { recursive: true, force: true });
  }

  async fsyncDir(p: string): Promise<void> {
    const fh = await fsp.open(p, 'r');
    try {
      await fh.sync();
    } catch {
      /* some filesystems refuse fsync on directories; nothing more to do */
    } finally {
      await fh.close();
    }
  }

  async freeSpace(p: string): Promise<number> {
    const st = await fsp.statfs(p);
    return Number(st.bavail) * Number(st.bsize);
  }

  now(): number {
    return Date.now();
  }

  monotonic(): number {
    return performance.now();
  }
}

export const nodeEnv = new NodeEnv();
