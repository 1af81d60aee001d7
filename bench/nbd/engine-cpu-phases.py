#!/usr/bin/env python3
"""What a backup costs the engine thread, per phase of a bench/nbd/latency-alternate.sh run made
with SERVER_ENV=HOLDFAST_BENCH_SIGNAL_LOG=FILE: how busy the engine thread was, how long it
waited for a CPU (run-queue wait), how many requests its clients completed, and the engine CPU
per request, during backups and in the quiet spells (windows of 200 ms, sorted by phase).

    engine-cpu-phases.py RUN_DIR SIGNAL_LOG [GUARD_MS]

Steadier than the p99 ratio between builds on a noisy machine: the ratio of identical builds
varies by ±0.3 from run to run on the 2-vCPU bench VM, the run-queue wait and requests per
second much less (bench/results/nbd-latency-session24.txt).
"""
import bisect, sys

import alt_run

d, sig = sys.argv[1], sys.argv[2]
guard = int(sys.argv[3]) if len(sys.argv) > 3 else 500
ph = alt_run.phases(d)
lat, ts = alt_run.completions(d)
windows = []  # (end epoch ms, engine run ms, run-queue wait ms) per 200 ms window
for line in open(sig):
    p = line.split()
    if not p or p[0] in ('R', 'J'):
        continue
    windows.append((int(p[0]), float(p[4]), float(p[5])))


def phase_of(t):
    for i, (t0, t1) in enumerate(ph):
        end = ph[i + 1][0] if i + 1 < len(ph) else t1 + (t1 - t0)
        if t0 <= t - 200 and t <= t1:
            return 'backup'
        if t1 + guard <= t - 200 and t <= end:
            return 'quiet'
    return None


acc = {'backup': [0.0, 0.0, 0, 0], 'quiet': [0.0, 0.0, 0, 0]}
for t, run, rq in windows:
    k = phase_of(t)
    if not k:
        continue
    a = acc[k]
    a[0] += run
    a[1] += rq
    a[2] += bisect.bisect_left(ts, t) - bisect.bisect_left(ts, t - 200)
    a[3] += 1
for k, (run, rq, n, w) in acc.items():
    if w:
        print(f'{k:6s} engine thread {run / w / 2:4.1f} % busy, waiting for a CPU {rq / w * 5:5.1f} ms/s, '
              f'{n / w * 5:6.0f} requests/s, {run * 1000 / max(1, n):5.1f} µs engine CPU per request')
