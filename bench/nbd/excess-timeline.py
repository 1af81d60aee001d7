#!/usr/bin/env python3
"""Where in a backup its clients pay: for a bench/nbd/latency-alternate.sh run, the share of
requests slower than the quiet phases' p99, per second of each backup round.

    excess-timeline.py RUN_DIR [GUARD_MS]

With no backup, 1 % of requests are over the quiet p99 by definition; a backup whose p99 is
1.5× the quiet one typically has 3-4 %. The per-second shares say whether that excess is
spread over the round or sits in its first seconds (the backup starting: worker boot, fresh
memory) or its last (the release). The last line is the ratio without each round's first 2 s.
"""
import sys

import alt_run

d = sys.argv[1]
guard = int(sys.argv[2]) if len(sys.argv) > 2 else 500
quiet, rounds = alt_run.split(d, guard)
if not quiet or not rounds:
    sys.exit('no quiet phase or no backup round in ' + d)
p99 = alt_run.p99


q99 = p99(quiet)
during = [l for _, _, r in rounds for _, l in r]
b99 = p99(during)
over = sum(1 for l in during if l > q99) / len(during) * 100
print(f'quiet p99 {q99:.0f} µs, backup p99 {b99:.0f} µs: {b99 / q99:.2f}×; requests over the quiet p99 during backups: {over:.2f} %')
for c, (t0, t1, r) in enumerate(rounds):
    bins = {}
    for t, l in r:
        n, x = bins.get((t - t0) // 1000, (0, 0))
        bins[(t - t0) // 1000] = (n + 1, x + (l > q99))
    shares = ' '.join(f'{100 * x / n:.1f}' for _, (n, x) in sorted(bins.items()))
    print(f'round {c} ({(t1 - t0) / 1000:.1f} s), % over the quiet p99 per second: {shares}')
rest = [l for t0, _, r in rounds for t, l in r if t - t0 >= 2000]
if rest:
    print(f'without each round\'s first 2 s: backup p99 {p99(rest):.0f} µs, {p99(rest) / q99:.2f}×')
