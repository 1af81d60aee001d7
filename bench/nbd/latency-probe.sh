#!/bin/bash
# Where does a writer's latency go during a backup? One fio run against the engine-mode bench
# server (dist/bench/nbd-serve-file.cjs) with per-thread CPU, the engine thread's run-queue
# wait, and optionally a scheduler trace. For diagnosis, not a benchmark (npm run bench -- nbd).
#
#   bench/nbd/latency-probe.sh COND QD        COND: none | backup (range backups of the written
#                                             volume, back to back) | other (of another volume)
#   env: PROBE_DIR (default /tmp/holdfast-latency-probe), PROBE_SECONDS (10),
#        SCHED=1  record 3 s of `perf sched` and print who ran while the engine thread or fio
#                 waited for a CPU (bench/nbd/sched-blame.py),
#        PERF=1   record 3 s of on-CPU stacks of the engine process (run with NODE_ARGS=--perf-basic-prof
#                 for JavaScript names; `perf report -i $PROBE_DIR/run-*/perf.data`),
#        NODE_ARGS extra node flags for the server (e.g. --cpu-prof --cpu-prof-dir=DIR).
# Needs fio, and perf for SCHED/PERF. Run `node scripts/build.mjs` first.
set -euo pipefail
COND=${1:?COND: none|backup|other}
QD=${2:?QD}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BASE=${PROBE_DIR:-/tmp/holdfast-latency-probe}
D=$BASE/run-$COND-$QD
SECONDS_RUN=${PROBE_SECONDS:-10}
rm -rf "$D"
mkdir -p "$D"
dd if=/dev/urandom of="$D/img" bs=1M count=512 status=none
cp "$D/img" "$D/other"

# shellcheck disable=SC2086
coproc SRV { exec node ${NODE_ARGS:-} "$ROOT/dist/bench/nbd-serve-file.cjs" --engine "$D/data" --adopt "$D/img" --adopt-other "$D/other" --socket "$D/sock" 2>"$D/server.err"; }
exec 3>&"${SRV[1]}"
answer() { while read -r line <&"${SRV[0]}"; do case "$line" in READY*|BACKUP-*) echo "$line"; return;; esac; done; }
answer
case "$COND" in
  backup) echo "backup-on bench" >&3; answer;;
  other) echo "backup-on bench-other" >&3; answer;;
esac
if [ -n "${SCHED:-}" ]; then (sleep 3; cd "$D" && timeout -s INT 3 perf sched record -a -o "$D/sched.data" >/dev/null 2>&1) & fi
if [ -n "${PERF:-}" ]; then (sleep 3; timeout -s INT 3 perf record -g -p "$SRV_PID" -o "$D/perf.data" >/dev/null 2>&1) & fi
fio --name=probe --ioengine=nbd --uri="nbd+unix:///bench?socket=$D/sock" --rw=randwrite --bs=4k --iodepth="$QD" \
  --time_based --runtime="$SECONDS_RUN" --ramp_time=1 --size=512M --norandommap --randrepeat=0 \
  --output-format=json --output="$D/fio.json" --percentile_list=50:90:99:99.9
# CPU seconds per thread of the server (the engine thread is the process's first), and how long
# the engine thread waited on a run queue (schedstat: on-CPU ns, waiting ns, timeslices).
for t in /proc/"$SRV_PID"/task/*; do
  tid=$(basename "$t")
  name=$(tr ' ' _ < "$t/comm")-$tid
  [ "$tid" = "$SRV_PID" ] && name=ENGINE-$tid && read -r oncpu wait slices < "$t/schedstat" && echo "engine thread: on CPU $((oncpu / 1000000)) ms, waiting for a CPU $((wait / 1000000)) ms, $slices slices"
  echo "cpu $name $(awk '{print ($14 + $15) / 100}' "$t/stat") s"
done | sort
[ "$COND" != none ] && { echo "backup-off" >&3; answer; }
kill -INT "$SRV_PID"
wait "$SRV_PID" || true
python3 - "$D/fio.json" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))['jobs'][0]
w = j['write']
print('fio: %d IOPS, CPU usr/sys %.0f%%/%.0f%%, latency µs' % (w['iops'], j['usr_cpu'], j['sys_cpu']),
      {'p' + k.rstrip('0').rstrip('.'): round(v / 1000) for k, v in w['clat_ns']['percentile'].items()})
EOF
if [ -n "${SCHED:-}" ]; then python3 "$ROOT/bench/nbd/sched-blame.py" "$D/sched.data"; fi
