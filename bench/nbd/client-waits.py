#!/usr/bin/env python3
"""The NBD client's long waits for a CPU, per phase, for a latency-alternate.sh run made with
BPF=bench/nbd/client-waits.bt (see that script for what is counted).

    client-waits.py RUN_DIR...

Prints per run the pooled p99s and, for the backup and quiet phases, fio's waits over 300 µs
(per second, ms of waiting per second, and those over 1 ms per second) and whom they are blamed
on. bench/results/nbd-latency-session34.txt: during range backups 19–25 such waits a second
(26–37 ms/s, 8–12/s over 1 ms; behind the engine's other threads, the engine thread, the VM's
idle vCPUs and its DAMON page-out thread), in the quiet phases 2–5 a second.
"""
import collections
import sys

import alt_run


for d in sys.argv[1:]:
    done = alt_run.completions(d)
    off, ph, last = alt_run.traced_run(d, done)
    waits = []
    secs = {'backup': sum(t1 - t0 for t0, t1 in ph) / 1000}
    first = min(t0 for t0, _ in ph)
    n, ms, over1, who = collections.Counter(), collections.Counter(), collections.Counter(), collections.defaultdict(collections.Counter)
    for line in open(d + '/bpf.out'):
        p = line.split()
        if len(p) != 5 or p[0] != 'L':
            continue
        t = int(p[1]) / 1000 + off
        if t < first:
            continue  # fio's first seconds count for neither phase, as in alternate-phases.py
        phase = alt_run.window_phase(ph, t, t, last)
        if phase is None:
            continue
        wait = int(p[3])
        waits.append((t - wait / 1000, t))
        n[phase] += 1
        ms[phase] += wait / 1000
        over1[phase] += wait > 1000
        who[phase][p[4]] += wait / 1000
    # window_phase leaves the 500 ms after each round to neither phase
    secs['quiet'] = max(1e-9, (last - first) / 1000 - secs['backup'] - 0.5 * len(ph))
    for phase in ('backup', 'quiet'):
        s = secs[phase]
        top = ', '.join(f'{k} {v / s:.1f}' for k, v in who[phase].most_common(6))
        print(f'  {phase:6s} {n[phase] / s:5.1f} waits/s over 300 µs, {ms[phase] / s:5.1f} ms/s, {over1[phase] / s:4.1f}/s over 1 ms; by (ms/s): {top}')
    # The slow requests (over the quiet p99) that were in flight while fio waited (fio logs
    # completions in whole ms, so a request is taken to span [completion - latency, completion + 1 ms]).
    waits = alt_run.Intervals(waits)
    quiet, rounds = alt_run.split(d, done=done)
    q99 = alt_run.p99(quiet)
    slow = [(t, lat) for _, _, r in rounds for t, lat in r if lat > q99]
    hit = sum(waits.meets(t - lat / 1000, t + 1) for t, lat in slow)
    every = [(t, lat) for _, _, r in rounds for t, lat in r]
    # For comparison: the share of all the backup's requests in flight during such a wait.
    base = sum(waits.meets(t - lat / 1000, t + 1) for t, lat in every[::10])
    print(f'  backup requests over the quiet p99: {len(slow)} ({100 * len(slow) / max(1, len(every)):.1f} %), '
          f'{100 * hit / max(1, len(slow)):.0f} % of them in flight during a fio wait over 300 µs '
          f'(of all the backup\'s requests: {100 * base / max(1, len(every[::10])):.0f} %)')
