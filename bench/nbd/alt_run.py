"""A latency-alternate.sh run directory, read by its analysis scripts (alternate-phases.py,
signal-phases.py): the backup rounds' (t0, t1) epoch-ms pairs from `phases`, and fio's
per-request completion latencies (epoch ms, µs) from `alt_clat.*.log`, sorted by time."""
import glob


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
