# Sourced by latency-probe.sh and latency-alternate.sh once ROOT, BASE, COND and QD are set: a
# fresh run directory D (a 512 MiB random image, and a copy for the volume nobody writes) and the
# engine-mode bench server as coproc SRV, its stdin on fd 3; `answer` prints its next READY,
# BACKUP-… or GC line; `stop_server` ends it. env: SERVER (another build), NODE_ARGS, SERVER_ENV
# (extra environment), PEER=qsd (qemu-storage-daemon and qemu's backup job instead: backup-on /
# backup-off only), IMG_FILL (below).
D=$BASE/run-${PEER:+$PEER-}$COND-$QD
rm -rf "$D"
mkdir -p "$D"
# IMG_FILL=fio: the image holds what fio writes (its 4 KiB buffer, scrambled per write: ~30×
# compressible) instead of random bytes (incompressible): what a volume's content costs a backup.
if [ "${IMG_FILL:-}" = fio ]; then
  fio --name=fill --filename="$D/img" --rw=write --bs=4k --size=512M --ioengine=psync >/dev/null
else
  dd if=/dev/urandom of="$D/img" bs=1M count=512 status=none
fi
cp "$D/img" "$D/other"
# IMG_COLD=1: the images' pages leave the page cache before the server starts (root), as a volume
# not touched for a while: its first backup then reads from disk, and on a kernel whose ext4 caches
# files in large folios (6.18 here) leaves readahead folios that make later small writes dearer
# (bench/results/nbd-latency-session38.txt §3).
if [ "${IMG_COLD:-}" = 1 ]; then
  sync
  echo 1 > /proc/sys/vm/drop_caches
fi

# The engine-mode bench server on D's data directory (adopting D's images, or opening them again
# after a restart) as coproc SRV; the caller points fd 3 at its stdin.
start_engine_server() {
  # shellcheck disable=SC2086
  coproc SRV { exec env ${SERVER_ENV:-} node ${NODE_ARGS---initial-old-space-size=64} "${SERVER:-$ROOT/dist/bench/nbd-serve-file.cjs}" --engine "$D/data" --adopt "$D/img" --adopt-other "$D/other" --socket "$D/sock" 2>>"$D/server.err"; }
}

if [ "${PEER:-}" = qsd ]; then
  # The peer: qemu-storage-daemon serves the image as export `bench` on the same socket path, and
  # bench/nbd/qsd-backup-driver.py (coproc SRV, the same stdin protocol) runs qemu's own backup
  # job on it at the busy throttle's rate (BUSY_BYTES_PER_SEC, src-main/engine/backup/backup-pacer.ts).
  command -v qemu-storage-daemon >/dev/null || { echo "PEER=qsd needs qemu-storage-daemon (Debian: qemu-system-common)" >&2; exit 2; }
  qemu-storage-daemon --blockdev "driver=file,node-name=file0,filename=$D/img,aio=threads" \
    --blockdev driver=raw,node-name=disk0,file=file0 \
    --nbd-server "addr.type=unix,addr.path=$D/sock" --export type=nbd,id=exp0,node-name=disk0,name=bench,writable=on \
    --chardev "socket,path=$D/qmp,server=on,wait=off,id=qmp0" --monitor chardev=qmp0 2>"$D/server.err" &
  QSD_PID=$!
  for _ in $(seq 100); do [ -S "$D/sock" ] && [ -S "$D/qmp" ] && break; sleep 0.05; done
  coproc SRV { exec python3 "$ROOT/bench/nbd/qsd-backup-driver.py" "$D/qmp" "$D/backup-target.img" $((512 << 20)) $((128 << 20)) 2>>"$D/server.err"; }
else
  start_engine_server
fi
exec 3>&"${SRV[1]}"
# Stops the server (and the peer's daemon).
stop_server() {
  kill -INT "$SRV_PID" 2>/dev/null || true
  wait "$SRV_PID" || true
  if [ -n "${QSD_PID:-}" ]; then kill -TERM "$QSD_PID" 2>/dev/null || true; wait "$QSD_PID" || true; fi
}
answer() { while read -r line <&"${SRV[0]}"; do case "$line" in READY*|BACKUP-*|GC*) echo "$line"; return;; esac; done; }
