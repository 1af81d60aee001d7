#!/usr/bin/env python3
"""What a small write into the page cache costs this machine's kernel, by how the pages came to be
(bench/results/nbd-latency-session38.txt §2-§3). Two measurements, no Holdfast code:

  folios   random 4 KiB pwrites into a cached 512 MiB file written with 4 KiB ... 4 MiB writes
           (and how fast each fill went in, synced), and into one evicted and read back with
           4 MiB reads (readahead): ext4 caches files in large folios sized by the write or the
           readahead, and a small write into a large folio costs more the larger it is.
  append   sequential 4136-byte appends (a journal record with 4 KiB of data) into a new file,
           into a reused file whose pages are cached, and into one whose pages were evicted
           (each page is read from disk before the write into it).

    page-cache-write-cost.py [DIR]     (default /tmp; needs ~512 MiB free there)
"""
import os
import random
import sys
import time

DIR = sys.argv[1] if len(sys.argv) > 1 else '/tmp'
N = 512 << 20


def report(label, lat):
    lat.sort()
    n = len(lat)
    print(f'{label:48s} p50 {lat[n // 2]:6.1f} µs  p99 {lat[int(n * 0.99)]:6.1f} µs')


def fill(fd, size, ws):
    b = os.urandom(ws)
    for i in range(size // ws):
        os.pwrite(fd, b, i * ws)
    os.fsync(fd)


def random_writes(fd, count=20000):
    buf = os.urandom(4096)
    lat = []
    for _ in range(count):
        o = random.randrange(N >> 12) << 12
        t = time.perf_counter_ns()
        os.pwrite(fd, buf, o)
        lat.append((time.perf_counter_ns() - t) / 1000)
    return lat


def folios():
    p = os.path.join(DIR, 'hf-folio-cost.img')
    try:
        for ws in (4 << 10, 16 << 10, 64 << 10, 128 << 10, 256 << 10, 1 << 20, 4 << 20):
            fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
            t = time.perf_counter()
            fill(fd, N, ws)
            mbs = N / (time.perf_counter() - t) / 1e6
            report(f'random 4 KiB writes, file written in {ws >> 10} KiB writes ({mbs:.0f} MB/s)', random_writes(fd))
            os.close(fd)
        fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
        fill(fd, N, 1 << 20)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        for i in range(N >> 22):
            os.pread(fd, 4 << 20, i << 22)
        report('random 4 KiB writes, evicted, read back in 4 MiB', random_writes(fd))
        os.close(fd)
    finally:
        if os.path.exists(p):
            os.unlink(p)


def append(mode):
    p = os.path.join(DIR, 'hf-append-cost.seg')
    fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    try:
        if mode != 'new file':
            fill(fd, 64 << 20, 1 << 20)
            if mode == 'reused file, pages evicted':
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        rec = b'\7' * 4176  # a 4136-byte record and the next one's first 40 bytes
        lat = []
        pos = 0
        for _ in range(8000):
            t = time.perf_counter_ns()
            os.pwrite(fd, rec, pos)
            lat.append((time.perf_counter_ns() - t) / 1000)
            pos += 4136
        report(f'4136-byte appends, {mode}', lat)
    finally:
        os.close(fd)
        os.unlink(p)


if __name__ == '__main__':
    folios()
    for m in ('new file', 'reused file, pages cached', 'reused file, pages evicted'):
        append(m)
