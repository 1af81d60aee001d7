#!/usr/bin/env python3
"""Scheduling waits of the engine thread and of fio per phase, for a latency-alternate.sh run
made with BPF=bench/nbd/sched-waits.bt (see that script for what is counted).

    sched-waits.py RUN_DIR...

Prints per run the pooled p99s (as excess-timeline.py) and, for the backup and quiet phases,
how long per second the engine thread was runnable but not running, and how long fio waited
for a CPU behind the engine thread, the engine's other threads (thread pool, V8's helpers,
chunk workers), other tasks, and an idle CPU (wakeup latency). bench/results/nbd-latency-session29.txt.
"""
import sys

import alt_run

for d in sys.argv[1:]:
    off, ph, last = alt_run.traced_run(d)
    acc = {True: [0] * 7, False: [0] * 7}
    for line in open(d + '/bpf.out'):
        if not line.startswith('T '):
            continue
        f = line.split()
        t1 = int(f[1]) / 1000 + off
        which = alt_run.window_phase(ph, t1 - 200, t1, last)
        if which is None:
            continue
        a = acc[which == 'backup']
        a[0] += 1
        for i in range(6):
            a[i + 1] += int(f[i + 2])
    for inside in (True, False):
        a = acc[inside]
        s = a[0] * 0.2
        if s == 0:
            continue
        print(f'  {"backup" if inside else "quiet":6s} {s:3.0f} s: engine thread runnable-waiting {a[6] / s / 1000:5.1f} ms/s | fio waited behind'
              f' the engine thread {a[1] / s / 1000:4.1f} ms/s ({a[2] / s:.0f}/s), its other threads {a[3] / s / 1000:4.1f},'
              f' other tasks {a[4] / s / 1000:4.1f}, an idle CPU {a[5] / s / 1000:4.1f}')
