#!/usr/bin/env python3
"""Reads an engine timeline (HOLDFAST_TIMELINE=FILE with engine-timeline.patch applied) of a
queue-depth-1 NBD writer and splits each request's round trip into the engine's part (request
parsed -> reply handed to the socket) and the rest (reply -> next request parsed: the client,
wakeups, and engine work that ran in between). For the slowest 1 % of each it lists what the
engine thread was doing meanwhile.

    python3 bench/nbd/timeline/analyze.py FILE
"""
import bisect
import collections
import json
import sys

# Kinds as numbered by Timeline in engine-timeline.patch; times are performance.now() ms.
WRITE, REPLY = 1, 2
NAMES = {3: 'release slice', 4: 'rangeCopied', 5: 'journal commit', 6: 'device write', 7: 'space wait', 9: 'GC', 10: 'cpu wait (write)', 11: 'held write', 12: 'forwarded write', 13: 'hold event'}
LOOKBACK_MS = 20  # work that began this long before a window may still reach into it (GC pauses)

d = json.load(open(sys.argv[1]))
ev = collections.defaultdict(list)
for k, a, b in zip(d['kind'], d['t0'], d['t1']):
    ev[k].append((a, b))
for k in ev:
    ev[k].sort()
writes, replies = ev[WRITE], [r[1] for r in ev[REPLY]]
if not writes:
    sys.exit('no NBD writes in the timeline')
lo, hi = writes[0][0] + 1500, writes[-1][0] - 500  # steady state: skip fio's ramp and the end
rows = []
for a, b in writes:
    if lo <= a <= hi:
        i = bisect.bisect_left(replies, b)
        rows.append((a, replies[i] if i < len(replies) else b))
span = hi - lo


def pct(xs, p):
    return xs[min(len(xs) - 1, int(len(xs) * p))] * 1000


def line(title, xs):
    xs = sorted(xs)
    print('%-44s p50 %5.0f  p90 %5.0f  p99 %5.0f  p99.9 %6.0f µs' % (title, *(pct(xs, p) for p in (.5, .9, .99, .999))))


def work_in(windows, title):
    """What the engine thread did inside the slowest 1 % of the windows [a, b)."""
    slow = sorted(windows, key=lambda w: w[1] - w[0])[-max(1, len(windows) // 100):]
    hit, busy = collections.Counter(), collections.Counter()
    for a, b in slow:
        for k in NAMES:
            e = ev.get(k, [])
            i = bisect.bisect_left(e, (a - LOOKBACK_MS, 0))
            t = 0.0
            while i < len(e) and e[i][0] < b:
                if e[i][1] > a:
                    t += min(e[i][1], b) - max(e[i][0], a)
                i += 1
            if t > 0:
                hit[k] += 1
                busy[k] += t
    mean = 1000 * sum(b - a for a, b in slow) / len(slow)
    print('%s: the slowest 1 %% (%d) average %.0f µs; engine work inside them:' % (title, len(slow), mean))
    for k, n in hit.most_common():
        print('    %-15s in %5.1f %% of them, %4.0f µs on average' % (NAMES[k], 100 * n / len(slow), 1000 * busy[k] / len(slow)))


print('%d writes in %.1f s of steady state' % (len(rows), span / 1000))
line('engine: request parsed -> settled', [b - a for a, b in writes if lo <= a <= hi])
line('engine: request parsed -> reply sent', [b - a for a, b in rows])
gaps = [(rows[i][1], rows[i + 1][0]) for i in range(len(rows) - 1)]
line('outside: reply sent -> next request parsed', [b - a for a, b in gaps])
line('round trip (request -> next request)', [rows[i + 1][0] - rows[i][0] for i in range(len(rows) - 1)])
for k, name in NAMES.items():
    e = [x for x in ev.get(k, []) if lo <= x[0] <= hi]
    if e:
        du = sorted(b - a for a, b in e)
        print('%-15s %6.0f/s, %4.1f %% of the time, p50 %5.0f p99 %5.0f max %6.0f µs' % (name, len(e) / span * 1000, 100 * sum(du) / span, pct(du, .5), pct(du, .99), du[-1] * 1000))
work_in(rows, 'engine part')
work_in(gaps, 'outside part')
