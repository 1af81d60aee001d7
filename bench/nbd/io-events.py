#!/usr/bin/env python3
"""What the disk and the server's file-system calls did in each second of a backup round, next
to that second's excess latency: for a bench/nbd/latency-alternate.sh run made with
BPF=bench/nbd/io-events.bt.

    io-events.py RUN_DIR [MIN_US]

Per second of each round: the share of requests over the quiet p99 (as excess-timeline.py), the
MiB issued to the block devices (the kernel's writeback included), and the server's file-system
calls that took at least MIN_US µs (default 1000): fsyncs of journal segments and directories,
the device's fdatasync, unlinks of dropped segments. Also the same for the quiet phases in
total, so a writeback burst in a round can be told from one the quiet phases had too.
"""
import sys
from collections import defaultdict

import alt_run

d = sys.argv[1]
min_us = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
done = alt_run.completions(d)
off, ph, last = alt_run.traced_run(d, done)
quiet, rounds = alt_run.split_requests(d, done=done)
q99 = alt_run.p99([l for _, l in quiet])

calls, issued = [], []  # (epoch ms, ...)
for line in open(d + '/bpf.out'):
    p = line.split()
    if p and p[0] == 'S':
        calls.append((int(p[1]) / 1000 + off, p[3].split('_', 2)[-1], int(p[4])))
    elif p and p[0] == 'B':
        issued.append((int(p[1]) / 1000 + off, int(p[2])))

print(f'quiet p99 {q99:.0f} µs; per second of each round: % of requests over it | MiB issued | calls ≥ {min_us} µs')
for c, (t0, t1, r) in enumerate(rounds):
    print(f'round {c} ({(t1 - t0) / 1000:.1f} s)')
    share = defaultdict(lambda: [0, 0])
    for t, l in r:
        s = share[(t - t0) // 1000]
        s[0] += 1
        s[1] += l > q99
    mib = defaultdict(float)
    for t, b in issued:
        if t0 <= t < t1 + 1000:
            mib[int((t - t0) // 1000)] += b / 2**20
    slow = defaultdict(list)
    for t, name, us in calls:
        if t0 <= t < t1 + 1000 and us >= min_us:
            slow[int((t - t0) // 1000)].append(f'{name} {us / 1000:.1f} ms')
    for sec in sorted(set(share) | set(slow)):
        n, x = share.get(sec, (0, 0))
        pct = f'{100 * x / n:5.1f}' if n else '    -'
        print(f'  {sec:3d}s {pct} % | {mib.get(sec, 0):6.0f} MiB | ' + ', '.join(slow.get(sec, [])))
# The quiet phases (their 100 ms windows as window_phase sorts them): MiB issued per second on
# average and the slow calls, for comparison.
qs = [b for t, b in issued if alt_run.window_phase(ph, t - 100, t, last) == 'quiet']
secs = len(qs) / 10 or 1
qcalls = [f'{name} {us / 1000:.1f} ms' for t, name, us in calls if us >= min_us and alt_run.window_phase(ph, t, t, last) == 'quiet']
print(f'quiet phases: {sum(qs) / 2**20 / secs:.0f} MiB issued per second on average over {secs:.0f} s; calls ≥ {min_us} µs: {", ".join(qcalls) or "none"}')
