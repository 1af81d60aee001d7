#!/usr/bin/env python3
"""Engine part of each NBD write (request parsed -> reply handed to the socket) by how long after
the latest `rangeCopied` it was parsed, in 1 ms bins: does a range's release slow the requests
that follow it, and for how long? Reads a timeline written with engine-timeline.patch applied
(HOLDFAST_TIMELINE=FILE), e.g. of `latency-probe.sh hold 16`.

    python3 bench/nbd/timeline/phase.py FILE [MAX_MS]
"""
import bisect
import collections
import json
import sys

WRITE, REPLY, RANGE_COPIED = 1, 2, 4

d = json.load(open(sys.argv[1]))
max_ms = int(sys.argv[2]) if len(sys.argv) > 2 else 32
ev = collections.defaultdict(list)
for k, a, b in zip(d['kind'], d['t0'], d['t1']):
    ev[k].append((a, b))
for k in ev:
    ev[k].sort()
writes, replies, copied = ev[WRITE], [r[1] for r in ev[REPLY]], [r[0] for r in ev[RANGE_COPIED]]
if not writes or not copied:
    sys.exit('the timeline has no NBD writes or no rangeCopied (run a hold or backup condition)')
lo, hi = writes[0][0] + 1500, writes[-1][0] - 500  # steady state, as analyze.py
bins = collections.defaultdict(list)
for a, b in writes:
    if not lo <= a <= hi:
        continue
    i = bisect.bisect_left(replies, b)
    j = bisect.bisect_right(copied, a) - 1
    if j < 0 or a - copied[j] >= max_ms:
        continue
    bins[int(a - copied[j])].append(((replies[i] if i < len(replies) else b) - a) * 1000)


def pct(xs, p):
    return xs[min(len(xs) - 1, int(len(xs) * p))]


print('%d rangeCopied in the run; engine part of the writes parsed that long after the latest one (µs):' % len(copied))
for ms in range(max_ms):
    xs = sorted(bins.get(ms, []))
    if xs:
        print('%3d ms  n %6d  mean %5.0f  p90 %5.0f  p99 %5.0f' % (ms, len(xs), sum(xs) / len(xs), pct(xs, .9), pct(xs, .99)))
