#!/usr/bin/env python3
"""CPU time of every thread on the machine, per phase of a bench/nbd/latency-alternate.sh run:
the engine's thread and its helpers, the client (fio), kernel threads, and each CPU's user,
system, softirq and idle time — who uses more CPU while a backup runs, and how much is left idle.

    thread-cpu.py sample OUT SECONDS   (beside the run: every 0.5 s, /proc of every thread)
    thread-cpu.py read RUN_DIR OUT

Threads are named by command (digits as N; `*` marks a process's main thread, for the engine the
thread that serves NBD). The sampler itself costs ~1 % of a CPU in both phases alike.
"""
import json
import os
import re
import sys
import time
from collections import defaultdict

CPU_FIELDS = ('user', 'nice', 'sys', 'idle', 'iowait', 'irq', 'softirq')


def sample(out_path, seconds):
    tick = os.sysconf('SC_CLK_TCK')
    end = time.time() + seconds
    with open(out_path, 'w') as out:
        while time.time() < end:
            snap = {'t': time.time() * 1000}
            for pid in filter(str.isdigit, os.listdir('/proc')):
                try:
                    tids = os.listdir(f'/proc/{pid}/task')
                except OSError:
                    continue
                for tid in tids:
                    try:
                        s = open(f'/proc/{pid}/task/{tid}/stat').read()
                    except OSError:
                        continue
                    f = s[s.rindex(')') + 2:].split()
                    ms = (int(f[11]) + int(f[12])) * 1000 // tick
                    if ms:
                        snap[f'{pid}:{tid}:{s[s.index("(") + 1:s.rindex(")")]}'] = ms
            for line in open('/proc/stat'):
                if line.startswith('cpu'):
                    f = line.split()
                    snap['/' + f[0]] = [int(x) * 1000 // tick for x in f[1:8]]
            out.write(json.dumps(snap) + '\n')
            out.flush()
            time.sleep(0.5)


def read(run_dir, path):
    import alt_run
    ph = alt_run.phases(run_dir)
    last = alt_run.completions(run_dir)[1][-1]
    snaps = [json.loads(l) for l in open(path)]
    use = defaultdict(lambda: defaultdict(float))
    span = defaultdict(float)
    for a, b in zip(snaps, snaps[1:]):
        phase = alt_run.window_phase(ph, a['t'], b['t'], last)
        if not phase:
            continue
        span[phase] += (b['t'] - a['t']) / 1000
        for k, v in b.items():
            if k == 't' or k not in a:
                continue  # a thread born in this interval counts from its next one
            if k.startswith('/'):
                for name, x, y in zip(CPU_FIELDS, a[k], v):
                    use[phase][k[1:] + ' ' + name] += y - x
                continue
            pid, tid, comm = k.split(':', 2)
            use[phase][re.sub(r'\d+', 'N', comm) + ('*' if pid == tid else '')] += v - a[k]
    rate = lambda phase, k: use[phase][k] / span[phase] if span[phase] else 0
    names = sorted(set(use['backup']) | set(use['quiet']), key=lambda k: (' ' in k, -rate('backup', k)))
    print(f'CPU ms per second      backup ({span["backup"]:.0f} s)   quiet ({span["quiet"]:.0f} s)')
    for k in names:
        b, q = rate('backup', k), rate('quiet', k)
        if max(b, q) >= 3:
            print(f'{k:24} {b:14.1f} {q:14.1f}')


if __name__ == '__main__':
    if len(sys.argv) == 4 and sys.argv[1] == 'sample':
        sample(sys.argv[2], float(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == 'read':
        read(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
