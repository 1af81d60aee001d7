#!/usr/bin/env python3
"""Lines an engine timeline (HOLDFAST_TIMELINE) up with a perf record of the engine thread
(latency-probe.sh ITER=1: -k mono, --switch-events, on-CPU stacks) and says, for the slowest 1 %
of the queue-depth-1 writer's windows, where the engine thread was: off its CPU after a
preemption, asleep (waiting in epoll: the request had not arrived), or on its CPU, and then in
which functions.

    correlate.py TIMELINE.json perf.data
"""
import bisect
import collections
import json
import subprocess
import sys

tl = json.load(open(sys.argv[1]))
off = tl['hrOffsetMs']
ev = collections.defaultdict(list)
for k, a, b in zip(tl['kind'], tl['t0'], tl['t1']):
    ev[k].append((a + off, b + off))
for k in ev:
    ev[k].sort()
writes = ev[1]
replies = [r[1] for r in ev[2]]

out = subprocess.run(['perf', 'script', '-i', sys.argv[2], '--show-switch-events', '-F', 'time,event,ip,sym'], capture_output=True, text=True).stdout
samples = []  # (t ms, frames)
switches = []  # (t ms, 'in'|'preempt'|'sleep')
cur = None
for line in out.splitlines():
    if not line.strip():
        cur = None
        continue
    if line.startswith((' ', '\t')):
        if cur is not None:
            p = line.split(None, 1)
            cur.append(p[1].rsplit(' (', 1)[0] if len(p) > 1 else '?')
        continue
    t = float(line.split(':', 1)[0]) * 1000
    if 'PERF_RECORD_SWITCH' in line:
        switches.append((t, 'in' if ' IN' in line else 'preempt' if 'preempt' in line else 'sleep'))
        cur = None
    elif 'cpu-clock' in line:
        cur = []
        samples.append((t, cur))
    else:
        cur = None
samples.sort(key=lambda s: s[0])
switches.sort()
if not samples:
    sys.exit('no samples')
t_lo, t_hi = samples[0][0], samples[-1][0]
st = [s[0] for s in samples]
sw = [s[0] for s in switches]


def state_time(a, b):
    """ms of [a, b) the engine thread spent off-CPU preempted, asleep, and on-CPU."""
    i = bisect.bisect_right(sw, a) - 1
    state = 'on' if i < 0 or switches[i][1] == 'in' else switches[i][1]
    t = a
    acc = collections.Counter()
    i += 1
    while i < len(switches) and switches[i][0] < b:
        acc[state] += switches[i][0] - t
        t = switches[i][0]
        state = 'on' if switches[i][1] == 'in' else switches[i][1]
        i += 1
    acc[state] += b - t
    return acc


def label(frames):
    js = [f for f in frames if f.startswith(('JS:', 'LazyCompile:', 'Function:'))]
    if not js:
        return 'native: ' + (frames[0] if frames else '?')
    return js[-1].split(' ')[0] + ' > ' + (js[-2].split(' ')[0] if len(js) > 1 else '-') + ' … ' + js[0].split(' ')[0]


def report(title, windows):
    windows = [w for w in windows if t_lo <= w[0] and w[1] <= t_hi]
    if not windows:
        return
    slow = sorted(windows, key=lambda w: w[1] - w[0])[-max(1, len(windows) // 100):]
    acc = collections.Counter()
    labels = collections.Counter()
    gc = 0.0
    for a, b in slow:
        acc.update(state_time(a, b))
        for s in samples[bisect.bisect_left(st, a):bisect.bisect_left(st, b)]:
            labels[label(s[1])] += 1
        for g0, g1 in ev.get(9, []):
            if g1 > a and g0 < b:
                gc += min(g1, b) - max(g0, a)
    n = len(slow)
    print('%s: %d windows, the slowest %d average %.0f µs: on CPU %.0f, preempted %.0f, asleep %.0f, of it in GC %.0f µs'
          % (title, len(windows), n, 1000 * sum(b - a for a, b in slow) / n, 1000 * acc['on'] / n, 1000 * acc['preempt'] / n, 1000 * acc['sleep'] / n, 1000 * gc / n))
    tot = sum(labels.values())
    for k, v in labels.most_common(20):
        print('   %5.1f %%  %s' % (100 * v / tot, k[:170]))


rows = []
for a, b in writes:
    i = bisect.bisect_left(replies, b)
    if i < len(replies):
        rows.append((a, replies[i]))
report('engine part (parsed -> reply sent)', rows)
report('outside part (reply sent -> next parsed)', [(rows[i][1], rows[i + 1][0]) for i in range(len(rows) - 1)])
