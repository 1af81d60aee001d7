#!/usr/bin/env python3
"""Per-phase write latency of a bench/nbd/latency-alternate.sh run (re-runnable on its directory).

    alternate-phases.py RUN_DIR [GUARD_MS]

RUN_DIR/phases holds one line "t0 t1" (epoch ms) per backup round; RUN_DIR/alt_clat.*.log is fio's
per-request completion latency log (epoch ms, ns). A cycle is a backup [t0, t1] and the quiet
time after it (t1 + GUARD_MS, next t0 or fio's end). Prints `ALT {...}`; besides the p99 it gives
each phase's p90 and p95 and their ratios: whether a backup slows many requests a little (the
lower percentiles move too) or a few a lot (only the tail moves) — bench/results/nbd-latency-session46.txt.
"""
import bisect, json, sys

import alt_run

d, guard = sys.argv[1], int(sys.argv[2])
phases = alt_run.phases(d)
lat, times = alt_run.completions(d)
# A cycle: backup [t0, t1], then quiet (t1 + guard, next t0 or fio's end).
cycles = []
for i, (t0, t1) in enumerate(phases):
    nxt = phases[i + 1][0] if i + 1 < len(phases) else lat[-1][0] if lat else 0
    cycles.append(((t0, t1), (t1 + guard, nxt) if nxt > t1 + guard else None))
def pct(xs, q):
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q / 100 * len(xs)))]) if xs else None
def within(a, b):
    return [l for _, l in lat[bisect.bisect_left(times, a):bisect.bisect_right(times, b)]]
busy, quiet, ratios = [], [], []
for (b0, b1), q in cycles:
    xb = within(b0, b1)
    busy += xb
    if q:
        xq = within(*q)
        quiet += xq
        if len(xb) >= 200 and len(xq) >= 200:
            ratios.append(pct(xb, 99) / pct(xq, 99))
ratios.sort()
out = {'cycles': len(cycles)}
for phase, xs in (('backup', busy), ('quiet', quiet)):
    out[phase] = {'n': len(xs), **{f'p{q:g}': pct(xs, q) for q in (50, 90, 95, 99, 99.9)}}
if busy and quiet:
    for q in ('p90', 'p95', 'p99'):
        out[f'{q}Ratio'] = round(out['backup'][q] / out['quiet'][q], 2)
if ratios:
    out['cycleP99RatioMedian'] = round(ratios[len(ratios) // 2], 2)
    out['cycleP99Ratios'] = [round(r, 2) for r in ratios]
print('ALT ' + json.dumps(out))
