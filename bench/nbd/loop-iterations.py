#!/usr/bin/env python3
"""How the engine's event loop turned in each phase of a bench/nbd/latency-alternate.sh run made
with BPF=bench/nbd/loop-iterations.bt: iterations per second, the time per second spent in them
(the rest the thread slept in epoll_pwait), and how many per second ran at least 50, 100, 200,
500 and 1000 µs — a client's request that arrives during an iteration waits for its end.

    loop-iterations.py RUN_DIR

Fewer, longer iterations with the same busy time mean the engine handles its clients' requests
in larger groups (bench/results/nbd-latency-session46.txt).
"""
import re
import sys
from collections import Counter

import alt_run

KEYS = ('n', 'busy', 'ge50', 'ge100', 'ge200', 'ge500', 'ge1000')
d = sys.argv[1]
off, ph, last = alt_run.traced_run(d)
sums = {'backup': Counter(), 'quiet': Counter()}
windows = Counter()
for phase, lines in alt_run.trace_windows(d, off, ph, last):
    if not phase:
        continue
    windows[phase] += 1
    for line in lines:
        m = re.match(r'@(\w+): (\d+)', line)
        if m:
            sums[phase][m.group(1)] += int(m.group(2))
print('per second      iterations   busy ms   ≥50 µs  ≥100 µs  ≥200 µs  ≥500 µs  ≥1 ms')
for phase in ('backup', 'quiet'):
    s = windows[phase] * 0.2
    if not s:
        continue
    v = [sums[phase][k] / s for k in KEYS]
    v[1] /= 1000
    print(f'{phase:8} ({s:4.0f} s) {v[0]:9.0f} {v[1]:9.0f} ' + ' '.join(f'{x:8.0f}' for x in v[2:]))
