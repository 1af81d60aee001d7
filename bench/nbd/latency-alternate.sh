#!/bin/bash
# The write-latency ratio "during a range backup / with no backup" from ONE fio run, for a
# machine whose speed drifts (this VM's identical runs differ by 2–6× in p99 within minutes, so
# separate runs per condition, even interleaved, need many rounds to say anything).
#
# One fio 4 KiB randwrite run against the engine-mode bench server (dist/bench/nbd-serve-file.cjs)
# logs every request's completion latency with a wall-clock timestamp. Meanwhile the script runs
# whole backups of the written volume one at a time (`backup-on` + `backup-off`: the loop's one
# round, from begin to the end of its release) with a pause of the same length after each.
# Requests are sorted into the two phases by completion time (a guard after each backup keeps
# its tail out of the quiet phase) and each phase gets its own percentiles: neighbouring seconds
# are compared, so the machine's drift hits both phases alike.
#
#   bench/nbd/latency-alternate.sh COND QD    COND: backup (range backups of the written volume) |
#                                             hold (hold-only rounds: the hold machinery alone) |
#                                             other (backups of another volume) |
#                                             stream (no backup: a separate process,
#                                             data-path-streamer.js at nice 19, does a backup's
#                                             reads, hashing, writes and fdatasyncs at
#                                             STREAM_MIBS for STREAM_SECONDS per round — the
#                                             data path's cost on this machine, without Holdfast)
#   env: PROBE_DIR (default /tmp/holdfast-latency-alternate), PROBE_SECONDS (60),
#        HOLD_SECONDS (4: how long each hold-only round lasts; a hold-only round marks ranges
#                 copied at the busy ceiling unless SERVER_ENV has HOLDFAST_BENCH_HOLD_MIBS, e.g.
#                 16, the rate a QD16 range backup runs at, so it holds as much: ~90k writes),
#        HOLD_WITH (COND hold only: `other` runs a backup of the other volume during each hold
#                 round, `stream` data-path-streamer.js at STREAM_MIBS (16 here) in STREAM_MODE:
#                 the hold machinery and a data path together, without a range backup),
#        ENGINE_FIFO=1 the engine thread in SCHED_FIFO (root; a diagnosis, not a setting: it
#                 never waits for a CPU then, and fio waits instead),
#        STREAM_MIBS (128: the busy throttle's rate), STREAM_SECONDS (4: about one backup round of
#                 the 512 MiB bench volume at that rate), STREAM_MODE (rhws: any of read, hash,
#                 write, sync; `burn`: a user-space CPU spinner instead, CPU load alone),
#        STREAM_SRC (`written`: the streamer reads the image fio writes to, as a range backup
#                 does, instead of a file of its own),
#        GUARD_MS (500: requests completing this long after a backup ended count for neither),
#        FIO_ARGS extra fio options (e.g. --rate_iops=12000), SERVER (another build, for A/B),
#        NODE_ARGS node flags for the server (default the engine's),
#        ENGINE_CPU (the engine thread on this CPU only; threads it starts later, such as a
#                 backup's chunk workers, inherit that mask unless they set their own),
#        BPF a bpftrace script run on the engine thread during the fio run (below; root; where
#                 bpftrace finds no tracepoints, `mount -t tracefs nodev /sys/kernel/tracing`),
#        SERVER_ENV extra environment for the server (e.g. 'HOLDFAST_CPU_SPLIT=0'; with
#                 'HOLDFAST_BENCH_GC_LOG=FILE' the server logs its collector pauses, which
#                 bench/nbd/gc-blame.py lines up with the slow requests).
#        WARMUP=1 one backup round before fio starts (a warm engine; see below); WARMUP=writer
#                 the same with a writer on the measured volume during it, writer-other the
#                 round and the writer on the other volume, writer-nohold the writer on the
#                 measured volume and the round on the other (bench/results/nbd-latency-session27.txt),
#        WARMUP_GAP seconds of nothing after the warm-up round (0), WARMUP_RESTART=1 a new
#                 server process on the same data directory after it,
#        IMG_FILL=fio the image holds fio-written data instead of random bytes (probe-server.sh;
#                 bench/results/nbd-latency-session31.txt: a random image pollutes the quiet phase),
#        IMG_COLD=1 the images leave the page cache before the server starts (probe-server.sh;
#                 root): the warm-up round then reads the volume from disk, as a first backup of a
#                 volume nobody touched for a while does (bench/results/nbd-latency-session38.txt §7),
#        PRE_SECONDS how long fio writes before the first backup round (2; these requests count
#                 for neither phase),
#        PEER=qsd  the same measurement of the peer: qemu-storage-daemon serves the image and
#                 qemu's own backup job (blockdev-backup sync=full, copy-before-write, as Proxmox
#                 VE backs up) copies it at the busy throttle's 128 MiB/s, one job per backup
#                 round (bench/nbd/qsd-backup-driver.py; needs qemu-storage-daemon, Debian's
#                 qemu-system-common). COND backup only.
# Prints one line `ALT {...}` (JSON): per phase p50/p99/p99.9 and requests, the p99 ratio, and
# the median of the per-cycle p99 ratios; the run directory's `rounds` keeps the server's
# BACKUP-OFF line of every round (its length, held data, collector pauses). Needs fio
# (write_lat_log with log_unix_epoch). The analysis is bench/nbd/alternate-phases.py, which can be
# re-run on a run directory (e.g. with another guard).
set -euo pipefail
COND=${1:?COND: backup|hold|other}
QD=${2:?QD}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BASE=${PROBE_DIR:-/tmp/holdfast-latency-alternate}
SECONDS_RUN=${PROBE_SECONDS:-60}
case "$COND" in
  backup) ON="backup-on bench";;
  hold) ON="hold-on bench";;
  other) ON="backup-on bench-other";;
  stream) ON=;;
  *) echo "unknown COND $COND" >&2; exit 2;;
esac
if [ -n "${HOLD_WITH:-}" ] && { [ "$COND" != hold ] || ! [[ "$HOLD_WITH" =~ ^(other|stream)$ ]]; }; then
  echo "HOLD_WITH=other|stream goes with COND hold" >&2; exit 2
fi
if [ -n "${PEER:-}" ] && { [ "$PEER" != qsd ] || [ "$COND" != backup ] || [ -n "${ENGINE_CPU:-}" ]; }; then
  echo "PEER=qsd (the only peer) measures COND backup, without ENGINE_CPU" >&2; exit 2
fi
# shellcheck source=bench/nbd/probe-server.sh
. "$ROOT/bench/nbd/probe-server.sh"
answer >/dev/null
# ENGINE_CPU=N: the engine thread (the server's first) on CPU N only, to try thread placement.
if [ -n "${ENGINE_CPU:-}" ]; then taskset -pc "$ENGINE_CPU" "$SRV_PID" >/dev/null; fi
if [ -n "${ENGINE_FIFO:-}" ]; then chrt -f -p 1 "$SRV_PID"; fi
# WARMUP=1: one backup round before fio starts (nobody writes: it runs at full speed), so the
# measured backups find a warm engine — compiled code, booted chunk workers — as a long-running
# engine's later backups may; without it the first round also pays those.
if [ -n "${WARMUP:-}" ] && [ "$COND" != stream ] && [ -z "${PEER:-}" ]; then
  # WARMUP=writer: a writer writes the measured volume during that round too (what that leaves
  # behind lowers the next backups' p99; which state it is is open: nbd-latency-session27.txt).
  # WARMUP=writer-other: round and writer on the other volume (warm code, the measured volume's
  # own state untouched).
  case "$WARMUP" in 1|writer|writer-other|writer-nohold) ;; *) echo "unknown WARMUP $WARMUP" >&2; exit 2;; esac
  WARM_ON=$ON; WARM_EXPORT=bench
  if [ "$WARMUP" = writer-other ]; then WARM_ON="${ON% *} bench-other"; WARM_EXPORT=bench-other; fi
  # WARMUP=writer-nohold: the writer on the measured volume, the round on the other one.
  if [ "$WARMUP" = writer-nohold ]; then WARM_ON="${ON% *} bench-other"; fi
  if [ "$WARMUP" != 1 ]; then
    # shellcheck disable=SC2086
    fio --name=warm --ioengine=nbd --uri="nbd+unix:///$WARM_EXPORT?socket=$D/sock" --rw=randwrite --bs=4k --iodepth="$QD" \
      --time_based --runtime=600 --size=512M --norandommap --randrepeat=0 ${FIO_ARGS:-} >/dev/null 2>&1 &
    WFIO=$!
    sleep 1
  fi
  echo "$WARM_ON" >&3; answer >/dev/null; echo "backup-off" >&3; answer >/dev/null
  if [ "$WARMUP" != 1 ]; then kill "$WFIO"; wait "$WFIO" 2>/dev/null || true; sleep 1; fi
  sleep "${WARMUP_GAP:-0}"
  # WARMUP_RESTART=1: a new server process on the same data directory after the warm-up (what
  # the warm-up leaves on disk and in the kernel stays; what it left in the process goes).
  if [ -n "${WARMUP_RESTART:-}" ]; then
    stop_server
    start_engine_server
    exec 3>&"${SRV[1]}"
    answer >/dev/null
    if [ -n "${ENGINE_CPU:-}" ]; then taskset -pc "$ENGINE_CPU" "$SRV_PID" >/dev/null; fi
  fi
fi
now_ms() { date +%s%3N; }
# What the streamer reads: a file of its own, or (STREAM_SRC=written) the image fio writes to.
STREAM_FILE="$BASE/stream-src.img"
if [ "${STREAM_SRC:-}" = written ]; then STREAM_FILE="$D/img"; fi
if [ "$COND" = stream ] && [ ! -f "$STREAM_FILE" ]; then
  dd if=/dev/urandom of="$STREAM_FILE" bs=1M count=512 status=none
fi

# shellcheck disable=SC2086 # FIO_ARGS is a list of options
fio --name=alt --ioengine=nbd --uri="nbd+unix:///bench?socket=$D/sock" --rw=randwrite --bs=4k --iodepth="$QD" \
  --time_based --runtime="$SECONDS_RUN" --size=512M --norandommap --randrepeat=0 \
  --write_lat_log="$D/alt" --log_unix_epoch=1 --log_avg_msec=0 \
  --output-format=json --output="$D/fio.json" ${FIO_ARGS:-} &
FIO=$!
# BPF=SCRIPT.bt: a bpftrace script traces the run with the engine thread's id as $1 (for example
# bench/nbd/sched-waits.bt; bench/nbd/engine-preempt.bt: who takes the engine thread's CPU;
# bench/nbd/client-waits.bt: how long the client waits for a CPU, and behind whom;
# bench/nbd/slow-cover.bt: what was going on while the slow requests were in flight;
# bench/nbd/helper-kstacks.bt: what the engine's other threads run while the client waits;
# bench/nbd/loop-iterations.bt: how long the engine's event-loop iterations run) — its output
# goes to $D/bpf.out, and $D/clock-offset-ms holds the offset from the monotonic clock
# (bpftrace's nsecs) to epoch ms for lining it up with fio's log.
BPF_PID=
if [ -n "${BPF:-}" ]; then
  python3 -c 'import time; print(time.time() * 1000 - time.monotonic() * 1000)' > "$D/clock-offset-ms"
  timeout -s INT $((SECONDS_RUN + 5)) bpftrace "$BPF" "$SRV_PID" > "$D/bpf.out" 2> "$D/bpf.err" &
  BPF_PID=$!
fi
sleep "${PRE_SECONDS:-2}" # fio connects and warms up; these requests count for neither phase
: > "$D/phases"
while kill -0 "$FIO" 2>/dev/null; do
  t0=$(now_ms)
  if [ "$COND" = stream ]; then
    nice -n 19 node "$ROOT/bench/nbd/data-path-streamer.js" "${STREAM_MIBS:-128}" "$STREAM_FILE" \
      "$D/stream-out" "${STREAM_MODE:-rhws}" &
    S=$!
    sleep "${STREAM_SECONDS:-4}"
    kill "$S"; wait "$S" 2>/dev/null || true
  else
    echo "$ON" >&3; answer >/dev/null
    case "${HOLD_WITH:-}" in
      other) echo "backup2-on" >&3; answer >/dev/null;;
      stream) node "$ROOT/bench/nbd/data-path-streamer.js" "${STREAM_MIBS:-16}" "$D/other" "$D/stream-out" "${STREAM_MODE:-rhws}" &
        HS=$!;;
    esac
    # A hold-only loop stops at once when told; give its round the length of a backup.
    if [ "$COND" = hold ]; then sleep "${HOLD_SECONDS:-4}"; fi
    echo "backup-off" >&3; answer > "$D/last-round"; cat "$D/last-round" >> "$D/rounds"
    case "${HOLD_WITH:-}" in
      other) echo "backup2-off" >&3; answer >> "$D/rounds-other";;
      stream) kill "$HS"; wait "$HS" 2>/dev/null || true;;
    esac
  fi
  t1=$(now_ms)
  echo "$t0 $t1" >> "$D/phases"
  sleep "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1000 }')"
done
wait "$FIO" || true
if [ -n "$BPF_PID" ]; then kill -INT "$BPF_PID" 2>/dev/null || true; wait "$BPF_PID" 2>/dev/null || true; fi
stop_server
python3 "$ROOT/bench/nbd/alternate-phases.py" "$D" "${GUARD_MS:-500}"
