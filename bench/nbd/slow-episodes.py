#!/usr/bin/env python3
"""(Needs python3-numpy.) Are a writer's slow requests scattered or bunched, and do the bunches recur at a period
(a backup's range sweep copies one 4 MiB range every ~31 ms at 128 MiB/s; GC pauses do not
recur that regularly)? Reads fio's per-request completion-latency log:

    FIO_ARGS="--rate_iops=12000 --write_lat_log=/tmp/w --log_avg_msec=0" bench/nbd/latency-probe.sh hold 16
    python3 bench/nbd/slow-episodes.py /tmp/w_clat.1.log [SLOW_US]

A 1 ms window is slow when a request completing in it took more than SLOW_US (500); an episode is
a run of slow windows. Prints the episodes per second and their lengths, and the lags (ms) at
which the slow-window series correlates with itself most.
"""
import sys

import numpy as np

slow_us = float(sys.argv[2]) if len(sys.argv) > 2 else 500
d = np.loadtxt(sys.argv[1], delimiter=',', usecols=(0, 1))
t, lat = d[:, 0], d[:, 1] / 1000  # completion time (ms), latency (µs)
keep = t > 1000  # fio's first second (ramp)
t, lat = t[keep], lat[keep]
print('%d requests, latency p50 %.0f p90 %.0f p99 %.0f µs' % (len(t), *np.percentile(lat, [50, 90, 99])))
n = int(t.max()) + 1
worst = np.zeros(n)
np.maximum.at(worst, t.astype(int), lat)
slow = worst[int(t.min()):] > slow_us
runs, r = [], 0
for s in slow:
    if s:
        r += 1
    elif r:
        runs.append(r)
        r = 0
runs = np.array(runs or [0])
secs = len(slow) / 1000
print('windows with a request over %.0f µs: %.1f %%; episodes %.1f/s, length p50 %d p90 %d max %d ms'
      % (slow_us, 100 * slow.mean(), len(runs) / secs, np.median(runs), np.percentile(runs, 90), runs.max()))
x = slow.astype(float) - slow.mean()
den = float(np.dot(x, x)) or 1.0
ac = [(k, float(np.dot(x[:-k], x[k:])) / den) for k in range(6, min(400, len(x) // 2))]  # lags under 6 ms are the episodes themselves
print('strongest self-correlation at lags (ms):', ', '.join('%d (%.2f)' % kv for kv in sorted(ac, key=lambda kv: -kv[1])[:6]))
