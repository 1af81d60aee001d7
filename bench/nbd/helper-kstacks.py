#!/usr/bin/env python3
"""Sums bench/nbd/helper-kstacks.bt's samples of a latency-alternate.sh run: the share of samples
per thread (with its policy) and per kernel path (the first four frames; "(user mode)" when the
thread ran its own code).

    helper-kstacks.py RUN_DIR [TOP]
"""
import collections
import re
import sys

d = sys.argv[1]
top = int(sys.argv[2]) if len(sys.argv) > 2 else 15
txt = open(d + '/bpf.out').read()
paths, threads = collections.Counter(), collections.Counter()
for m in re.finditer(r'@k\[(\d+), (\d+), \n?(.*?)\]: (\d+)', txt, re.S):
    tid, policy, stack, n = m.group(1), m.group(2), m.group(3), int(m.group(4))
    frames = [f.strip().split('+')[0] for f in stack.strip().split('\n') if f.strip()]
    paths[' < '.join(frames[:4]) or '(user mode)'] += n
    threads[f'{tid} (policy {policy})'] += n
total = max(1, sum(paths.values()))
print(f'{total} samples while fio waited over 300 µs behind the engine\'s other threads')
print('  by thread: ' + ', '.join(f'{t} {100 * n / total:.0f}%' for t, n in threads.most_common(6)))
for p, n in paths.most_common(top):
    print(f'  {100 * n / total:5.1f}% {p}')
