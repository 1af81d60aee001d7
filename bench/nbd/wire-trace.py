#!/usr/bin/env python3
"""How long each write request stays inside the engine, by phase, for a latency-alternate.sh run
made with a build that has bench/nbd/wire-trace.patch applied and
SERVER_ENV=HOLDFAST_WIRE_TRACE=FILE:

    wire-trace.py RUN_DIR FILE

The trace has every chunk the engine read from a client's socket and every flush of its packed
replies, with wall-clock times. Requests are 4 KiB writes (a 28-byte header and the data, as fio
sends them), so a chunk's bytes count its requests; each flush answers the oldest unanswered
ones. Printed per phase: how many requests a chunk carried and how many replies a flush sent
(shares of all requests), and the engine's residence — from the JavaScript callback that
received a request to the socket write of its reply — next to fio's own completion latency of
the same phase. The difference between the two is time outside the engine's handling: in the
kernel, waiting for the engine to reach its socket, or for fio to see the reply
(bench/results/nbd-latency-session47.txt).
"""
import sys

import alt_run

REQUEST = 28 + 4096
GROUPS = (1, 2, 3, 4, 8, 16)


def bucket(n):
    return max(g for g in GROUPS if g <= n)


def main():
    d, trace = sys.argv[1], sys.argv[2]
    ph = alt_run.phases(d)
    done = alt_run.completions(d)
    if not ph or not done[0]:
        sys.exit('no backup round or no completions in ' + d)
    last = done[1][-1]

    def phase(t):
        return alt_run.window_phase(ph, t, t, last)

    residence = {'backup': [], 'quiet': []}
    per_chunk = {'backup': {}, 'quiet': {}}
    per_flush = {'backup': {}, 'quiet': {}}
    pending = []  # [chunk time, requests not yet answered]
    carry = 0
    for line in open(trace):
        kind, t, n = line.split()
        t, n = float(t), int(float(n))
        if kind == '1':
            carry += n
            reqs, carry = divmod(carry, REQUEST)
            if reqs:
                pending.append([t, reqs])
                p = phase(t)
                if p:
                    per_chunk[p][bucket(reqs)] = per_chunk[p].get(bucket(reqs), 0) + reqs
            continue
        p = phase(t)
        if p:
            per_flush[p][bucket(n)] = per_flush[p].get(bucket(n), 0) + n
        while n > 0 and pending:
            first = pending[0]
            take = min(n, first[1])
            if p:
                residence[p].extend([(t - first[0]) * 1000] * take)
            first[1] -= take
            n -= take
            if first[1] == 0:
                pending.pop(0)
    quiet, rounds = alt_run.split(d, done=done)
    fio = {'backup': [l for _, _, r in rounds for _, l in r], 'quiet': quiet}
    qs = (0.5, 0.9, 0.95, 0.99)
    print('µs                          ' + '  '.join(f'{"p" + str(int(q * 100)):>5}' for q in qs))
    for p in ('backup', 'quiet'):
        r = residence[p]
        print(f'{p:6} engine residence     ' + '  '.join(f'{alt_run.percentile(r, q):5.0f}' for q in qs) + f'   ({len(r)} requests)')
        print(f'{p:6} fio completion       ' + '  '.join(f'{alt_run.percentile(fio[p], q):5.0f}' for q in qs))
    for title, tab in (('requests per received chunk', per_chunk), ('replies per flush', per_flush)):
        print(f'share of requests by {title} ({", ".join(f"{g}+" for g in GROUPS)})')
        for p in ('backup', 'quiet'):
            tot = sum(tab[p].values()) or 1
            print(f'  {p:6} ' + '  '.join(f'{tab[p].get(g, 0) / tot * 100:5.1f}%' for g in GROUPS))


if __name__ == '__main__':
    main()
