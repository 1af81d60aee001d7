#!/usr/bin/env python3
"""Second by second through a bench/nbd/latency-alternate.sh run: fio's p50 and p99 per bin, each
bin marked B (inside a backup round) or . (not), then per round the median of the bins' p99 over
the 7 s before it ("pre"), its first 6 s ("first 6 s") and the rest of it ("rest").

    round-seconds.py RUN_DIR [BIN_MS]      (BIN_MS 1000 by default)

Where a round's excess sits (bench/results/nbd-latency-session31.txt: fresh held-payload memory
made a hold round's first seconds 5× its rest). Run latency-alternate.sh with PRE_SECONDS=12 so
the run's own slow first second does not fall into the first round.
"""
import statistics
import sys

import alt_run

d = sys.argv[1]
bin_ms = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
ph = alt_run.phases(d)
lat, _ = alt_run.completions(d)
if not lat:
    sys.exit('no completions in ' + d)
t0 = lat[0][0]
bins = {}
for t, l in lat:
    bins.setdefault((t - t0) // bin_ms, []).append(l)


def inside(t):
    return any(a <= t < b for a, b in ph)


p99 = {}
for k in sorted(bins):
    x = sorted(bins[k])
    p99[k] = x[int(len(x) * 0.99)]
    mid = t0 + k * bin_ms + bin_ms // 2
    print(f'{k * bin_ms / 1000:7.1f} s {"B" if inside(mid) else "."} n={len(x):6d} p50={x[len(x) // 2]:6.0f} p99={p99[k]:6.0f}')
for i, (a, b) in enumerate(ph):
    first = (a - t0) // bin_ms + 1  # the first whole bin of the round
    last = (b - t0) // bin_ms - 1
    sel = lambda lo, hi: [p99[k] for k in range(lo, hi + 1) if k in p99]  # noqa: E731
    pre = sel(first - 1 - 7000 // bin_ms, first - 2)
    head = sel(first, min(last, first + 6000 // bin_ms - 1))
    rest = sel(first + 6000 // bin_ms, last)
    med = lambda v: f'{statistics.median(v):.0f}' if v else '-'  # noqa: E731
    print(f'round {i + 1} ({(b - a) / 1000:.1f} s): p99 µs, median of {bin_ms} ms bins: pre {med(pre)}, first 6 s {med(head)}, rest {med(rest)}')
