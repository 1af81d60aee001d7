"""A latency-alternate.sh run directory, read by its analysis scripts (alternate-phases.py,
signal-phases.py, excess-timeline.py, sched-waits.py, engine-syscalls.py, engine-preempt.py,
client-waits.py, slow-cover.py, service-time.py, io-events.py, loop-iterations.py, thread-cpu.py, wire-trace.py): the backup rounds' (t0, t1) epoch-ms pairs from
`phases`, and fio's per-request completion latencies (epoch ms, µs) from `alt_clat.*.log`, sorted
by time."""
import bisect
import glob
import itertools


def phases(d):
    return [tuple(map(int, l.split())) for l in open(d + '/phases') if l.strip()]


def completions(d):
    """(lat, times): [(epoch ms, latency µs)] sorted, and the epoch ms alone (for bisect)."""
    lat = []
    for f in glob.glob(d + '/alt_clat.*.log'):
        for line in open(f):
            p = line.split(',')
            lat.append((int(p[0]), int(p[1]) / 1000))
    lat.sort()
    return lat, [t for t, _ in lat]


def split_requests(d, guard=500, done=None):
    """(quiet, rounds): the quiet phases' requests as (epoch ms, µs) — those completing within
    `guard` ms after a round count for neither phase — and each round as (t0, t1, [(epoch ms, µs)]).
    `done`: completions(d), if the caller has read them already."""
    ph = phases(d)
    lat, ts = done or completions(d)
    quiet, rounds = [], []
    for i, (t0, t1) in enumerate(ph):
        rounds.append((t0, t1, lat[bisect.bisect_left(ts, t0):bisect.bisect_left(ts, t1)]))
        end = ph[i + 1][0] if i + 1 < len(ph) else (lat[-1][0] if lat else t1)
        quiet += lat[bisect.bisect_left(ts, t1 + guard):bisect.bisect_left(ts, end)]
    return quiet, rounds


def split(d, guard=500, done=None):
    """As split_requests, with the quiet phases' latencies (µs) alone."""
    quiet, rounds = split_requests(d, guard, done)
    return [l for _, l in quiet], rounds


class Intervals:
    """Intervals [a, b] (epoch ms) that answer "does any of them meet [x, y]" by bisection."""

    def __init__(self, spans):
        spans = sorted(spans)
        self.starts = [a for a, _ in spans]
        # the latest end among the first i + 1 intervals
        self.ends_max = list(itertools.accumulate((b for _, b in spans), max))

    def meets(self, x, y):
        i = bisect.bisect_right(self.starts, y)
        return i > 0 and self.ends_max[i - 1] >= x


def window_phase(ph, a, b, last, guard=500):
    """For a trace window [a, b) (epoch ms) of a run with rounds `ph` and fio's last completion at
    `last`: 'backup' when it lies inside a round, 'quiet' when it lies clear of every round and
    the `guard` ms after it (as split() sorts requests), else None (also after fio ended and before
    the first round)."""
    if b > last or not ph or a < ph[0][0]:
        return None  # after fio's end, or before the first round (fio's lead-in: split() counts neither)
    if any(t0 <= a and b <= t1 for t0, t1 in ph):
        return 'backup'
    if any(t0 < b and a < t1 + guard for t0, t1 in ph):
        return None
    return 'quiet'


def trace_windows(d, off, ph, last):
    """The 200 ms windows of a BPF=SCRIPT.bt run's bpf.out whose scripts print a line
    `T <monotonic µs>` as each window closes and then that window's maps: (phase, lines) per
    window, phase as window_phase sorts it ('backup', 'quiet' or None) and lines the ones after
    its T line. `off`, `ph`, `last` as traced_run returns them."""
    out, lines = [], None
    for line in open(d + '/bpf.out'):
        if line.startswith('T '):
            t1 = int(line.split()[1]) / 1000 + off
            lines = []
            out.append((window_phase(ph, t1 - 200, t1, last), lines))
        elif lines is not None:
            lines.append(line)
    return out


def percentile(v, f):
    """The value at rank f (0..1) of v, as these scripts read percentiles; None when v is empty."""
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * f))] if v else None


def p99(v):
    return percentile(v, 0.99)


def traced_run(d, done=None):
    """A run made with BPF=SCRIPT.bt, for scripts that sort its 200 ms trace windows by phase:
    prints its pooled p99s and returns (off, ph, last) for window_phase — the offset from the
    trace's monotonic µs/1000 to epoch ms, the rounds as (t0, t1), and fio's last completion.
    `done`: completions(d), if the caller has read them already."""
    off = float(open(d + '/clock-offset-ms').read())
    done = done or completions(d)
    quiet, rounds = split(d, done=done)
    during = [l for _, _, r in rounds for _, l in r]
    if not quiet or not during:
        raise SystemExit('no quiet phase or no backup round in ' + d)
    q99, b99 = p99(quiet), p99(during)
    print(f'{d}: quiet p99 {q99:.0f} µs, backup p99 {b99:.0f} µs ({b99 / q99:.2f}×)')
    return off, [(t0, t1) for t0, t1, _ in rounds], done[1][-1]
