/**
 * Faults a buffer's pages in on the libuv thread pool, so the thread that later writes into it
 * (the engine's, answering NBD clients) does not pay a page fault per 4 KiB of fresh memory.
 * Reads /dev/zero into it (the kernel zeroes each page as it faults it in); where there is no
 * /dev/zero, fills it with random bytes instead (also on the thread pool). The buffer's bytes
 * afterwards are unspecified, and the caller must not touch it until the promise settles.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';

/** /dev/zero, opened on first use and kept open; null where it cannot be opened. */
let zeroFd: number | null | undefined;

export function prefaultPages(buf: Buffer): Promise<void> {
  if (zeroFd === undefined) {
    try {
      zeroFd = fs.openSync('/dev/zero', 'r');
    } catch {
      zeroFd = null;
    }
  }
  const fd = zeroFd;
  if (fd === null) return new Promise((resolve, reject) => crypto.randomFill(buf, (e) => (e ? reject(e) : resolve())));
  return new Promise((resolve, reject) => {
    // A read of /dev/zero may stop short (a signal): go on from where it stopped.
    const from = (at: number): void =>
      fs.read(fd, buf, at, buf.length - at, null, (e, n) => {
        if (e) reject(e);
        else if (n === 0) reject(new Error('/dev/zero returned no bytes'));
        else if (at + n < buf.length) from(at + n);
        else resolve();
      });
    from(0);
  });
}
