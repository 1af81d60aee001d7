#!/usr/bin/env python3
"""Who held the CPU while the engine thread or fio waited for one (bench/nbd/latency-probe.sh SCHED=1).

Reads `perf sched timehist` of a `perf sched record -a` trace. The engine thread is the busiest
`node[PID]` (a process's first thread), fio the busiest `fio[TID]`. For each time either was
switched in after waiting more than 0.2 ms on a run queue, the task that ran on that CPU just
before it is blamed for the wait. Also prints the distribution of waits and on-CPU slices of both.
"""
import collections
import re
import subprocess
import sys

trace = sys.argv[1]
lines = subprocess.run(['perf', 'sched', 'timehist', '-i', trace], capture_output=True, text=True).stdout.splitlines()[3:]
rows = []
for line in lines:
    f = line.split()
    if len(f) < 6:
        continue
    try:
        rows.append((f[1], f[2], float(f[4]), float(f[5])))  # cpu, task, sched delay ms, run ms
    except ValueError:
        continue

busiest = collections.Counter(task for _, task, _, _ in rows)
engine = next((t for t, _ in busiest.most_common() if re.fullmatch(r'node\[\d+\]', t)), None)
fio = next((t for t, _ in busiest.most_common() if t.startswith('fio[')), None)
victims = [t for t in (engine, fio) if t]
print('engine thread', engine, '· fio', fio)

for v in victims:
    for i, what in ((2, 'waited for a CPU'), (3, 'ran without a break')):
        xs = sorted(r[i] for r in rows if r[1] == v)
        if xs:
            n = len(xs)
            print(f'{v} {what} (ms): p50 {xs[n // 2]:.3f} p90 {xs[n * 9 // 10]:.3f} p99 {xs[n * 99 // 100]:.3f} '
                  f'p99.9 {xs[n * 999 // 1000]:.3f} max {xs[-1]:.3f} ({n} slices)')

last = {}
blame = collections.Counter()
count = collections.Counter()
for cpu, task, delay, _ in rows:
    if task in victims and delay > 0.2:
        key = (task, last.get(cpu, '?'))
        blame[key] += delay
        count[key] += 1
    last[cpu] = task
print('waits over 0.2 ms, by who ran before on that CPU:')
for (victim, before), ms in blame.most_common(15):
    print(f'  {ms:8.1f} ms {count[(victim, before)]:5d}x  {victim} waited behind {before}')
