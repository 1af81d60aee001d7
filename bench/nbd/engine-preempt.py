#!/usr/bin/env python3
"""Who preempts the engine thread, per phase, for a latency-alternate.sh run made with
BPF=bench/nbd/engine-preempt.bt (see that script for what is counted).

    engine-preempt.py RUN_DIR...

Prints per run the pooled p99s and, for the backup and quiet phases, the engine thread's wait
after each preemption by the task that took its CPU (ms/s, preemptions/s, mean µs), that wait
per CPU, and its wakeup latency. bench/results/nbd-latency-session33.txt: during range backups
fio takes the engine's CPU ~440–1030 times a second (~45–80 ms/s of waiting), ~10/s quiet.
"""
import collections
import re
import sys

import alt_run

for d in sys.argv[1:]:
    off, ph, last = alt_run.traced_run(d)
    wait, count, cpu = collections.Counter(), collections.Counter(), collections.Counter()
    secs, wake_us, wakes = collections.Counter(), collections.Counter(), collections.Counter()
    for cur, lines in alt_run.trace_windows(d, off, ph, last):
        if cur is None:
            continue
        secs[cur] += 0.2
        for line in lines:
            m = re.match(r'@(w|n|cpuw)\[(.*)\]: (\d+)', line)
            if m:
                kind, key, v = m.group(1), m.group(2), int(m.group(3))
                {'w': wait, 'n': count, 'cpuw': cpu}[kind][(cur, key)] += v
            elif line.startswith('WL '):
                _, us, n = line.split()
                wake_us[cur] += int(us)
                wakes[cur] += int(n)
    for p in ('backup', 'quiet'):
        s = secs[p]
        if s == 0:
            continue
        top = sorted(((v, k) for (pp, k), v in wait.items() if pp == p), reverse=True)
        who = ', '.join(f'{k} {v / 1e6 / s:.1f} ms/s ({count[(p, k)] / s:.0f}/s, {v / 1e3 / max(1, count[(p, k)]):.0f} µs)'
                        for v, k in top if v / 1e6 / s >= 0.3) or 'none'
        per_cpu = ', '.join(f'CPU {k} {v / 1e6 / s:.1f}' for (pp, k), v in sorted(cpu.items()) if pp == p)
        print(f'  {p:6s} {s:3.0f} s: preempted by {who}; per CPU ms/s: {per_cpu or "-"};'
              f' wakeup latency {wake_us[p] / 1000 / s:.1f} ms/s over {wakes[p] / s:.0f} wakeups/s')
