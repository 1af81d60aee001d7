#!/bin/bash
# What does a backup's data path alone cost a writer on this machine, with no hold queue and in
# another process? Runs latency-probe.sh `none` (Holdfast serving, nothing held) while a separate
# node process (data-path-streamer.js), at nice 19, does what a backup does to memory and disk at
# RATE MiB/s: reads 4 MiB of a 512 MiB random file, SHA-256es it, writes it to a file in DIR and
# fdatasyncs it.
# Alternates rounds with and without the streamer and prints fio's p50/p90/p99 for each.
#
#   bench/nbd/data-path-floor.sh [RATE_MIB_S=128] [ROUNDS=2] [DIR=/tmp/holdfast-floor]
#   env: FIO_ARGS as latency-probe.sh (default --rate_iops=12000), QD (16)
#
# Measured (session 11, 2 cores, QD16 capped at 12k IOPS): p99 ~500 µs alone; with the streamer
# at 128 MiB/s 790 µs into tmpfs and 990–1060 µs to disk with fdatasync; at 32 MiB/s to disk
# 600–680 µs. nice 0 or 19 made no difference: the cost is not CPU share.
set -euo pipefail
RATE=${1:-128}
ROUNDS=${2:-2}
DIR=${3:-/tmp/holdfast-floor}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export FIO_ARGS=${FIO_ARGS---rate_iops=12000}
mkdir -p "$DIR"
[ -f "$DIR/src.img" ] || dd if=/dev/urandom of="$DIR/src.img" bs=1M count=512 status=none
probe() {
  flock /tmp/bench.lock "$ROOT/bench/nbd/latency-probe.sh" none "${QD:-16}" 2>&1 | grep '^fio' |
    sed -E "s/.*'p50': ([0-9]+).*'p90': ([0-9]+).*'p99': ([0-9]+).*/p50 \1  p90 \2  p99 \3 µs/"
}
for _ in $(seq 1 "$ROUNDS"); do
  echo "alone:                 $(probe)"
  nice -n 19 node "$ROOT/bench/nbd/data-path-streamer.js" "$RATE" "$DIR/src.img" "$DIR/stream.out" &
  S=$!
  echo "streamer ${RATE} MiB/s:   $(probe)"
  kill "$S"
  wait "$S" 2>/dev/null || true
done
