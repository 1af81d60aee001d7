#!/usr/bin/env python3
"""The server's own time per NBD write (parse -> acknowledgement), by phase, for a
latency-alternate.sh run made with the scratch probe of bench/nbd/service-time-probe.patch
(SERVER_ENV XP_SVC_LOG=FILE).

    service-time.py PROBE_DIR SVC_LOG [per-second]

Per phase (the backup or hold rounds; quiet = after each, past a 500 ms guard, until the next)
and by whether the volume held the write: p50 / p90 / p99 of the server's time, the same for
writes parsed first in their parse() call, and the share parsed behind others in the same call
(requests that arrived together: their acknowledgements wait for the whole group). With
`per-second`, the rounds second by second. Session 44: holding alone leaves the server's times as quiet; releases do not.
"""
import collections
import glob
import sys

import alt_run

run, log = sys.argv[1], sys.argv[2]
ph = alt_run.phases(glob.glob(run + '/run-*')[0])
rows = [tuple(map(int, l.split())) for l in open(log) if l.strip()]


def q(v, f):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * f))] if v else -1


def in_round(t):
    return any(a <= t <= b for a, b in ph)


def in_quiet(t):
    # after a round's end and its 500 ms guard, before the next round
    return any(b + 500 < t and (i + 1 == len(ph) or t < ph[i + 1][0]) for i, (a, b) in enumerate(ph))


for name, sel in (('round', in_round), ('quiet', in_quiet)):
    R = [r for r in rows if sel(r[0])]
    for held in (True, False):
        S = [r for r in R if (r[2] >= 1000) == held]
        if not S:
            continue
        svc = [r[1] for r in S]
        pos = [r[2] % 1000 for r in S]
        first = [r[1] for r in S if r[2] % 1000 == 1]
        print(f'{name:5s} held={held!s:5s} n={len(S):6d} µs p50 {q(svc, .5):4d} p90 {q(svc, .9):4d} p99 {q(svc, .99):5d}'
              f' | first of their parse p50 {q(first, .5)} p99 {q(first, .99)}'
              f' | parsed behind others {sum(p > 1 for p in pos) / len(pos):.2f}')
if len(sys.argv) > 3:
    bins = collections.defaultdict(list)
    for t, s, p, _ in rows:
        for i, (a, b) in enumerate(ph):
            if a <= t <= b:
                bins[(i, (t - a) // 1000)].append((s, p))
    for k in sorted(bins):
        v = bins[k]
        h = [s for s, p in v if p >= 1000]
        f = [s for s, p in v if p < 1000]
        print(f'round {k[0]} {k[1]:3d} s  held {len(h):5d} p50 {q(h, .5):4d} p99 {q(h, .99):5d} | forwarded {len(f):5d} p50 {q(f, .5):4d}'
              f' p99 {q(f, .99):5d} | parsed behind others {sum(p % 1000 > 1 for s, p in v) / len(v):.2f}')
