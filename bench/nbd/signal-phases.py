#!/usr/bin/env python3
"""What the engine sees of its clients' latency, lined up with a latency-alternate.sh run.

    signal-phases.py RUN_DIR SIGNAL_LOG [GUARD_MS]

SIGNAL_LOG is the bench server's HOLDFAST_BENCH_SIGNAL_LOG (bench/nbd/serve-file.ts): every 200 ms
the engine thread's event-loop delay percentiles (a 1 ms timer's intervals, µs), its run and
run-queue wait (ms), loop utilisation and timer samples; `R` lines are the adaptive throttle's
rate from backup progress, `J` lines the journal's fill. RUN_DIR holds the run's `phases` and fio's `alt_clat.*.log`.
Prints, per phase (B = backup, Q = quiet), the median of each signal and of the client's p99 in
the same 200 ms windows; how well each signal follows the client's p99 across windows (Pearson
r); the client p99 by bins of the timer's p90 lateness; and the throttle's rates seen.
"""
import bisect, math, statistics as st, sys

import alt_run

d, sig = sys.argv[1], sys.argv[2]
guard = int(sys.argv[3]) if len(sys.argv) > 3 else 500
phases = alt_run.phases(d)
lines = [l.split() for l in open(sig) if l.strip()]
rows = [list(map(float, l)) for l in lines if l[0] not in ('R', 'J')]
fills = [(float(l[2]), int(l[3]), float(l[4]) if len(l) > 4 else 0.0) for l in lines if l[0] == 'J']
rates = [l[2] for l in lines if l[0] == 'R']
lat, times = alt_run.completions(d)


def client_p99(a, b):
    xs = sorted(l for _, l in lat[bisect.bisect_left(times, a):bisect.bisect_right(times, b)])
    return xs[int(0.99 * len(xs))] if len(xs) > 100 else None


def phase(t):
    for i, (t0, t1) in enumerate(phases):
        if t0 <= t <= t1:
            return 'B'
        nxt = phases[i + 1][0] if i + 1 < len(phases) else float('inf')
        if t1 + guard <= t < nxt:
            return 'Q'
    return None


names = ['eld50', 'eld90', 'eld99', 'run_ms', 'wait_ms', 'elu', 'samples', 'client_p99']
out = {'B': [], 'Q': []}
for r in rows:
    ph = phase(r[0] - 100)
    if ph and phase(r[0] - 200) == ph:
        c = client_p99(r[0] - 200, r[0])
        if c:
            out[ph].append(r[1:] + [c])
for ph in 'QB':
    xs = out[ph]
    if xs:
        print(ph, len(xs), 'windows:', ' '.join(f'{n}={st.median([x[i] for x in xs]):.1f}' for i, n in enumerate(names)))
allx = out['B'] + out['Q']
if len(allx) > 2:
    c = [x[-1] for x in allx]
    for i, n in enumerate(names[:-1]):
        v = [x[i] for x in allx]
        mv, mc = st.mean(v), st.mean(c)
        sv = math.sqrt(sum((a - mv) ** 2 for a in v))
        sc = math.sqrt(sum((b - mc) ** 2 for b in c))
        r = sum((a - mv) * (b - mc) for a, b in zip(v, c)) / (sv * sc) if sv and sc else float('nan')
        print(f'{n}: r = {r:.2f} with the client p99')
    print('timer p90 lateness (µs, bins of 15) -> client p99 median (windows)')
    bins = {}
    for x in allx:
        bins.setdefault(int((x[1] - 1000) // 15) * 15, []).append(x[-1])
    for b in sorted(bins):
        print(f'  {b:4d}  {round(st.median(bins[b])):5d}  ({len(bins[b])})')
if fills:
    print(f'journal fill max {max(f[0] for f in fills):.3f}, held writes max {max(f[1] for f in fills)}, held bytes ÷ journal capacity max {max(f[2] for f in fills):.3f}')
if rates:
    num = sorted(float(r) for r in rates if r != '-')
    if num:
        print(f'throttle: {len(num)} progress events throttled, MiB/s min {num[0]} median {num[len(num) // 2]} max {num[-1]}; {len(rates) - len(num)} at full speed')
