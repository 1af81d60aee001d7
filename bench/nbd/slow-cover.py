#!/usr/bin/env python3
"""What was going on while a latency-alternate.sh run's slow requests were in flight, for a run
made with BPF=bench/nbd/slow-cover.bt (see that script for the interval kinds L, E, R, B, F, S).

    slow-cover.py RUN_DIR [GC_LOG]

GC_LOG: the file the bench server wrote with SERVER_ENV=HOLDFAST_BENCH_GC_LOG=FILE; its pauses
become intervals of kind G. Prints per phase each kind's rate and ms per second (and whom the L
and E waits are blamed on), then for the backup's requests over the quiet p99, for a tenth of all
the backup's requests, and the same two for the quiet phase: the share in flight while an
interval of each kind ran, while any did, and while only that kind did. A kind that covers far
more of the slow requests than of all requests is where the slow ones come from
(bench/results/nbd-latency-session35.txt).
"""
import collections
import sys

import alt_run

KINDS = 'LSEBFR'


def main(d, gc_log=None):
    done = alt_run.completions(d)
    off, ph, last = alt_run.traced_run(d, done)
    first = min(t0 for t0, _ in ph)
    secs = {'backup': sum(t1 - t0 for t0, t1 in ph) / 1000}
    # window_phase leaves the 500 ms after each round to neither phase
    secs['quiet'] = max(1e-9, (last - first) / 1000 - secs['backup'] - 0.5 * len(ph))
    spans = collections.defaultdict(list)
    rate = {p: collections.Counter() for p in secs}
    blame = {p: collections.Counter() for p in secs}

    def add(kind, a, b, who=None):
        spans[kind].append((a, b))
        phase = alt_run.window_phase(ph, b, b, last) if b >= first else None
        if phase:
            rate[phase][kind] += 1
            rate[phase][kind + 'ms'] += b - a
            if who:
                blame[phase][f'{kind} {who}'] += b - a

    for line in open(d + '/bpf.out'):
        p = line.split()
        if len(p) < 5 or p[0] not in KINDS:
            continue
        t = int(p[1]) / 1000 + off
        add(p[0], t - int(p[3]) / 1000, t, ' '.join(p[4:]) if p[0] in 'LE' else None)
    if gc_log:
        for line in open(gc_log):
            x = line.split()
            if len(x) >= 2:
                add('G', float(x[0]), float(x[0]) + float(x[1]))
    kinds = sorted(spans)
    idx = {k: alt_run.Intervals(v) for k, v in spans.items()}
    for phase, s in secs.items():
        print(f'  {phase:6s} ' + '  '.join(f'{k} {rate[phase][k] / s:.1f}/s {rate[phase][k + "ms"] / s:.1f} ms/s' for k in kinds))
        print('         L/E blamed on (ms/s): ' + ', '.join(f'{k} {v / s:.1f}' for k, v in blame[phase].most_common(8)))

    quiet_reqs, rounds = alt_run.split_requests(d, done=done)
    q99 = alt_run.p99([us for _, us in quiet_reqs])
    backup = [r for _, _, rr in rounds for r in rr]

    def shares(reqs):
        c = collections.Counter()
        for t, us in reqs:
            # fio logs completions in whole ms: a request spans [completion - latency, completion + 1 ms]
            hits = [k for k in kinds if idx[k].meets(t - us / 1000, t + 1)]
            for k in hits:
                c[k] += 1
            c['any'] += bool(hits)
            if len(hits) == 1:
                c['only ' + hits[0]] += 1
        n = max(1, len(reqs))
        return ' '.join(f'{k} {100 * c[k] / n:.0f}%' for k in kinds + ['any'] + ['only ' + k for k in kinds])

    for name, reqs in (('backup slow', [r for r in backup if r[1] > q99]), ('backup all/10', backup[::10]),
                       ('quiet slow', [r for r in quiet_reqs if r[1] > q99]), ('quiet all/10', quiet_reqs[::10])):
        print(f'  {name:13s} {len(reqs):7d}  {shares(reqs)}')


if __name__ == '__main__':
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    main(*sys.argv[1:])
