#!/bin/bash
# Where does a writer's latency go during a backup? One fio run against the engine-mode bench
# server (dist/bench/nbd-serve-file.cjs) with per-thread CPU, the engine thread's run-queue
# wait, and optionally a scheduler trace. For diagnosis, not a benchmark (npm run bench -- nbd).
#
#   bench/nbd/latency-probe.sh COND QD        COND: none | backup (range backups of the written
#                                             volume, back to back) | other (of another volume) |
#                                             hold (range sessions on the written volume that read
#                                             and store nothing: the hold/release machinery alone)
#                                             | holdother (hold, and at the same time
#                                             backups of another volume: the two parts of a
#                                             range backup side by side, without their coupling)
#   env: PROBE_DIR (default /tmp/holdfast-latency-probe), PROBE_SECONDS (10),
#        SCHED=1  record 3 s (from ITER_DELAY s in, as ITER) of `perf sched` and print who ran while the engine thread or fio
#                 waited for a CPU (bench/nbd/sched-blame.py),
#        ITER=1   record 3 s (from ITER_DELAY s into the fio run, default 3) of the engine thread's event-loop iterations (epoll_wait returns to the
#                 next call) with on-CPU stacks, and print what the long ones ran
#                 (bench/nbd/iter-blame.py; run with NODE_ARGS=--perf-basic-prof for JavaScript names),
#        PERF=1   record 3 s of on-CPU stacks of the engine process (run with NODE_ARGS=--perf-basic-prof
#                 for JavaScript names; `perf report -i $PROBE_DIR/run-*/perf.data`),
#        NODE_ARGS node flags for the server (default: the engine's, as `npm run serve` passes them;
#                 add e.g. --cpu-prof --cpu-prof-dir=DIR, or set '' to measure without),
#        IDLE=1   put every thread of the server but the engine thread (chunk workers, libuv pool,
#                 V8 helpers) in SCHED_IDLE once the backup runs (chrt), so a woken engine thread or
#                 fio preempts them at once,
#        PIN=1    the engine thread alone on CPU 0; the server's other threads and fio on CPU 1,
#        ENGINE_CPU=N the engine thread (the server's first) on CPU N only (taskset), to try placement;
#                 threads it starts later (a later backup's chunk workers) inherit that mask,
#        SERVER_ENV extra environment for the server (e.g. 'HOLDFAST_X=1'),
#        FIO_ARGS extra fio options (e.g. --rate_iops=12000 to compare servers at the same load),
#        SERVER   the bench server to run (default dist/bench/nbd-serve-file.cjs; for A/B runs copy an
#                 older build next to it, under dist/bench/, so it finds node_modules the same way).
# Prints the engine thread's garbage-collector pauses during the fio run (GC {…}), and how long
# the engine thread ran and waited for a CPU during it (from /proc/PID/schedstat).
# For a timeline of the engine thread's work see bench/nbd/timeline/README.md (HOLDFAST_TIMELINE).
# Needs fio, and perf for SCHED/PERF. Run `node scripts/build.mjs` first.
set -euo pipefail
COND=${1:?COND: none|backup|other|hold}
QD=${2:?QD}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BASE=${PROBE_DIR:-/tmp/holdfast-latency-probe}
SECONDS_RUN=${PROBE_SECONDS:-10}
if [ -n "${PEER:-}" ]; then echo "PEER is for latency-alternate.sh" >&2; exit 2; fi
# shellcheck source=bench/nbd/probe-server.sh
. "$ROOT/bench/nbd/probe-server.sh"
answer
case "$COND" in
  backup) echo "backup-on bench" >&3; answer;;
  other) echo "backup-on bench-other" >&3; answer;;
  hold) echo "hold-on bench" >&3; answer;;
  holdother) echo "hold-on bench" >&3; answer; echo "backup2-on bench-other" >&3; answer;;
  none) ;;
  *) echo "unknown COND $COND" >&2; exit 2;;
esac
# Threads other than the engine's (workers start with the first backup): SCHED_IDLE, or pinned.
others() { for t in /proc/"$SRV_PID"/task/*; do [ "$(basename "$t")" != "$SRV_PID" ] && basename "$t"; done; }
if [ -n "${IDLE:-}" ]; then (sleep 0.5; for tid in $(others); do chrt -i -p 0 "$tid"; done) & fi
FIO_PIN=()
if [ -n "${PIN:-}" ]; then
  (sleep 0.5; taskset -pc 0 "$SRV_PID" >/dev/null; for tid in $(others); do taskset -pc 1 "$tid" >/dev/null; done) &
  FIO_PIN=(taskset -c 1)
fi
if [ -n "${ENGINE_CPU:-}" ]; then taskset -pc "$ENGINE_CPU" "$SRV_PID" >/dev/null; fi
echo gc >&3; answer >/dev/null
if [ -n "${SCHED:-}" ]; then (sleep "${ITER_DELAY:-3}"; cd "$D" && timeout -s INT 3 perf sched record -a -o "$D/sched.data" >/dev/null 2>&1) & fi
if [ -n "${ITER:-}" ]; then
  (sleep "${ITER_DELAY:-3}"; timeout -s INT 3 perf record -k mono --switch-events -g -t "$SRV_PID" -e cpu-clock/period=${ITER_PERIOD_NS:-200000}/ \
    -e syscalls:sys_enter_epoll_pwait/call-graph=no/,syscalls:sys_exit_epoll_pwait/call-graph=no/ \
    -o "$D/iter.data" >/dev/null 2>&1) &
fi
if [ -n "${PERF:-}" ]; then (sleep 3; timeout -s INT 3 perf record -g -p "$SRV_PID" -o "$D/perf.data" >/dev/null 2>&1) & fi
read -r ENG_ON0 ENG_WAIT0 _ < /proc/"$SRV_PID"/schedstat
FIO_T0=$(date +%s%N)
# shellcheck disable=SC2086 # FIO_ARGS is a list of options
"${FIO_PIN[@]}" fio --name=probe --ioengine=nbd --uri="nbd+unix:///bench?socket=$D/sock" --rw=randwrite --bs=4k --iodepth="$QD" \
  --time_based --runtime="$SECONDS_RUN" --ramp_time=1 --size=512M --norandommap --randrepeat=0 \
  --output-format=json --output="$D/fio.json" --percentile_list=50:90:99:99.9 ${FIO_ARGS:-}
read -r ENG_ON1 ENG_WAIT1 _ < /proc/"$SRV_PID"/schedstat
echo "engine thread during the fio run: on CPU $(( (ENG_ON1 - ENG_ON0) / 1000000 )) ms, waiting for a CPU $(( (ENG_WAIT1 - ENG_WAIT0) / 1000000 )) ms, of $(( ($(date +%s%N) - FIO_T0) / 1000000 )) ms"
# CPU seconds per thread of the server (the engine thread is the process's first), and how long
# the engine thread waited on a run queue (schedstat: on-CPU ns, waiting ns, timeslices).
for t in /proc/"$SRV_PID"/task/*; do
  tid=$(basename "$t")
  name=$(tr ' ' _ < "$t/comm")-$tid
  [ "$tid" = "$SRV_PID" ] && name=ENGINE-$tid && read -r oncpu wait slices < "$t/schedstat" && echo "engine thread: on CPU $((oncpu / 1000000)) ms, waiting for a CPU $((wait / 1000000)) ms, $slices slices"
  echo "cpu $name $(awk '{print ($14 + $15) / 100}' "$t/stat") s"
done | sort
echo gc >&3; answer
if [ "$COND" != none ]; then echo "backup-off" >&3; answer; fi
if [ "$COND" = holdother ]; then echo "backup2-off" >&3; answer; fi
stop_server
python3 - "$D/fio.json" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))['jobs'][0]
w = j['write']
print('fio: %d IOPS, CPU usr/sys %.0f%%/%.0f%%, latency µs' % (w['iops'], j['usr_cpu'], j['sys_cpu']),
      {'p' + k.rstrip('0').rstrip('.'): round(v / 1000) for k, v in w['clat_ns']['percentile'].items()})
EOF
if [ -n "${SCHED:-}" ]; then python3 "$ROOT/bench/nbd/sched-blame.py" "$D/sched.data"; fi
if [ -n "${ITER:-}" ]; then python3 "$ROOT/bench/nbd/iter-blame.py" "$D/iter.data"; fi
