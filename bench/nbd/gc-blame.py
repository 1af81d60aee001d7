#!/usr/bin/env python3
"""How many of a latency-alternate.sh run's slow requests overlapped a garbage-collector pause.

    gc-blame.py RUN_DIR GC_LOG [THRESH_US]

RUN_DIR is a bench/nbd/latency-alternate.sh run directory (phases, alt_clat.*.log); GC_LOG is the
file the bench server wrote with SERVER_ENV=HOLDFAST_BENCH_GC_LOG=FILE (one pause per line: epoch
ms, ms, major). For each phase (backup, quiet after its guard) it counts the requests at or above
THRESH (default: that phase's p99) whose time in flight (fio's ms timestamps, so ±1 ms) overlapped
a pause, and sums the pauses per phase. The quiet phase starts 500 ms after a backup (the
script's default GUARD_MS).
"""
import bisect, glob, sys
d, gl = sys.argv[1], sys.argv[2]
th = float(sys.argv[3]) if len(sys.argv) > 3 else None
phases = [tuple(map(int, l.split())) for l in open(d + '/phases') if l.strip()]
lat = []
for f in glob.glob(d + '/alt_clat.*.log'):
    for line in open(f):
        p = line.split(','); lat.append((int(p[0]), int(p[1]) / 1000))
lat.sort()
gcs = sorted(tuple(map(float, l.split()))[:3] for l in open(gl) if l.strip())
gst = [g[0] for g in gcs]
def in_backup(t):
    for a, b in phases:
        if a <= t <= b: return True
    return False
def quiet(t):
    for i, (a, b) in enumerate(phases):
        nxt = phases[i+1][0] if i+1 < len(phases) else 1e18
        if b + 500 <= t < nxt: return True
    return False
def overl(t, l):
    # request interval [t - l/1000 - 1, t + 1] (ms, coarse timestamps)
    s, e = t - l / 1000 - 1, t + 1
    i = bisect.bisect_left(gst, s - 50)
    best = 0
    while i < len(gcs) and gcs[i][0] <= e:
        g0, gd, _ = gcs[i]
        if g0 + gd >= s: best = max(best, gd)
        i += 1
    return best
for name, sel in (('backup', in_backup), ('quiet', quiet)):
    xs = [(t, l) for t, l in lat if sel(t)]
    ls = sorted(l for _, l in xs)
    p99 = ls[int(0.99 * len(ls))]
    thr = th or p99
    slow = [(t, l) for t, l in xs if l >= thr]
    hit = [overl(t, l) for t, l in slow]
    n = sum(1 for h in hit if h > 0)
    # GC time share in the phase
    print(f"{name}: n={len(xs)} p99={p99:.0f} thr={thr:.0f} slow={len(slow)} overlapping GC={n} ({100*n/max(1,len(slow)):.0f}%)")
tot_b = sum(b - a for a, b in phases)
gb = [g for g in gcs if in_backup(g[0])]; gq = [g for g in gcs if quiet(g[0])]
print('GC in backup: n=%d total=%.0fms max=%.1f mean=%.2f; per s %.1f' % (len(gb), sum(g[1] for g in gb), max([g[1] for g in gb] or [0]), sum(g[1] for g in gb)/max(1,len(gb)), len(gb)/(tot_b/1000)))
print('GC in quiet: n=%d total=%.0fms max=%.1f mean=%.2f' % (len(gq), sum(g[1] for g in gq), max([g[1] for g in gq] or [0]), sum(g[1] for g in gq)/max(1,len(gq))))
