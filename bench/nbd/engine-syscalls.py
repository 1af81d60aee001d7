#!/usr/bin/env python3
"""The engine thread's system calls per phase, for a latency-alternate.sh run made with
BPF=bench/nbd/engine-syscalls.bt: per call, how many a second, milliseconds a second and µs
each, in the backup rounds and in the quiet phases (windows as sched-waits.py sorts them).

    engine-syscalls.py RUN_DIR...

epoll_pwait is the event loop waiting for work (idle time), every other call is work done in the
kernel on the engine's behalf: a device pwrite64 per forwarded write, a pwritev per journal batch
or released run, the socket's write and read. bench/results/nbd-latency-session30.txt.
"""
import re
import sys

import alt_run

NAMES = {0: 'read', 1: 'write', 3: 'close', 9: 'mmap', 10: 'mprotect', 11: 'munmap', 12: 'brk', 17: 'pread64', 39: 'getpid',
         18: 'pwrite64', 19: 'readv', 20: 'writev', 28: 'madvise', 74: 'fsync', 75: 'fdatasync', 202: 'futex',
         232: 'epoll_wait', 257: 'openat', 281: 'epoll_pwait', 295: 'preadv', 296: 'pwritev'}

for d in sys.argv[1:]:
    off = float(open(d + '/clock-offset-ms').read())
    ph = alt_run.phases(d)
    last = alt_run.completions(d)[1][-1]
    acc = {p: [{}, {}, 0.0] for p in ('backup', 'quiet')}
    for cur, lines in alt_run.trace_windows(d, off, ph, last):
        if not cur:
            continue
        acc[cur][2] += 0.2
        for line in lines:
            m = re.match(r'@(n|us)\[(\d+)\]: (\d+)', line)
            if m:
                table = acc[cur][0 if m.group(1) == 'n' else 1]
                nr = int(m.group(2))
                table[nr] = table.get(nr, 0) + int(m.group(3))
    print(d)
    for p in ('backup', 'quiet'):
        n, us, secs = acc[p]
        if secs == 0:
            continue
        print(f'  {p} {secs:.0f} s')
        for nr in sorted(us, key=lambda k: -us[k])[:8]:
            print(f'    {NAMES.get(nr, nr):12} {n.get(nr, 0) / secs:7.0f}/s {us[nr] / secs / 1000:6.1f} ms/s {us[nr] / max(n.get(nr, 0), 1):6.1f} µs each')
