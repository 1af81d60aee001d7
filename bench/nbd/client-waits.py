#!/usr/bin/env python3
"""The NBD client's long waits for a CPU, per phase, for a latency-alternate.sh run made with
BPF=bench/nbd/client-waits.bt (see that script for what is counted).

    client-waits.py RUN_DIR...

Prints per run the pooled p99s and, for the backup and quiet phases, fio's waits over 300 µs
(per second, ms of waiting per second, and those over 1 ms per second) and whom they are blamed
on. bench/results/nbd-latency-session34.txt: during range backups ~19–23 such waits a second
(26–34 ms/s, ~10/s over 1 ms; the engine thread, the chunk worker, the thread pool and V8's
helpers, the VM's idle vCPUs), in the quiet phases ~2 a second.
"""
import collections
import sys

import alt_run

for d in sys.argv[1:]:
    off, ph, last = alt_run.traced_run(d)
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
