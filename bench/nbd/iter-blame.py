#!/usr/bin/env python3
"""What keeps the engine's event loop from polling (bench/nbd/latency-probe.sh ITER=1).

A client's request is noticed only when the engine thread's event loop polls its sockets
(epoll_wait). A queue-depth-1 writer's request that arrives while the loop runs callbacks waits
for the rest of that loop iteration, so long iterations are the writer's tail. This reads a
`perf record` of the engine thread (epoll enter/exit tracepoints plus on-CPU samples with call
stacks, JavaScript names from --perf-basic-prof), cuts the time into iterations (from one
epoll_wait's return to the next call) and prints how long they run and, for the long ones,
which functions their samples were in.

    iter-blame.py perf.data [LONG_MS=0.3]
"""
import collections
import re
import subprocess
import sys

data = sys.argv[1]
long_ms = float(sys.argv[2]) if len(sys.argv) > 2 else 0.3
out = subprocess.run(['perf', 'script', '-i', data, '-F', 'time,event,ip,sym'], capture_output=True, text=True).stdout

# Events in time order: ('enter'|'exit'|'sample', t seconds, [frames, leaf first]).
HEAD = re.compile(r'^\s*\d+\.\d+: ')
events = []
cur = None
for line in out.splitlines():
    if not line.strip():
        cur = None
        continue
    # A record's first line is its timestamp (perf may pad it with spaces); frames follow, indented.
    if HEAD.match(line):
        head = line.split()
        t = float(head[0].rstrip(':'))
        ev = head[1].rstrip(':')
        kind = 'enter' if 'sys_enter_epoll' in ev else 'exit' if 'sys_exit_epoll' in ev else 'sample'
        cur = [kind, t, []]
        events.append(cur)
    elif cur is not None:
        parts = line.split(None, 1)
        sym = parts[1].rsplit(' (', 1)[0] if len(parts) > 1 else '?'
        cur[2].append(sym)
events.sort(key=lambda e: e[1])


def label(frames):
    """The innermost named JavaScript frame and the outermost one below the loop (V8's names look like 'JS:*name file:line')."""
    js = [f for f in frames if f.startswith(('JS:', 'LazyCompile:', 'Function:', 'Builtin:'))]
    named = [f for f in js if not f.startswith('Builtin:')]
    inner = named[0] if named else (js[0] if js else (frames[0] if frames else '?'))
    outer = named[-1] if named else '-'
    nxt = named[-2] if len(named) > 1 else '-'
    return inner, outer + '  >  ' + nxt


iters = []  # (duration ms, samples)
start = None
samples = []
for kind, t, frames in events:
    if kind == 'exit':
        start, samples = t, []
    elif kind == 'enter':
        if start is not None:
            iters.append(((t - start) * 1000, samples))
        start = None
    elif start is not None:
        samples.append(frames)

if not iters:
    sys.exit('no epoll iterations in ' + data)
ds = sorted(d for d, _ in iters)
pct = lambda p: ds[min(len(ds) - 1, int(p * len(ds)))]
total = sum(ds)
print('loop iterations: %d, busy %.0f ms; p50 %.3f p90 %.3f p99 %.3f p99.9 %.3f max %.3f ms'
      % (len(ds), total, pct(0.5), pct(0.9), pct(0.99), pct(0.999), ds[-1]))
long = [(d, s) for d, s in iters if d >= long_ms]
print('iterations >= %.2f ms: %d (%.1f %% of them, %.0f ms)' % (long_ms, len(long), 100 * len(long) / len(ds), sum(d for d, _ in long)))
inner_c, outer_c = collections.Counter(), collections.Counter()
n = 0
for _, s in long:
    for frames in s:
        i, o = label(frames)
        inner_c[i] += 1
        outer_c[o] += 1
        n += 1
if n:
    print('samples in them by innermost JavaScript function (%d samples):' % n)
    for k, v in inner_c.most_common(25):
        print('  %5.1f %%  %s' % (100 * v / n, k[:150]))
    print('by the two outermost JavaScript functions:')
    for k, v in outer_c.most_common(25):
        print('  %5.1f %%  %s' % (100 * v / n, k[:150]))
