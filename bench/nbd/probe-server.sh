# Sourced by latency-probe.sh and latency-alternate.sh once ROOT, BASE, COND and QD are set: a
# fresh run directory D (a 512 MiB random image, and a copy for the volume nobody writes) and the
# engine-mode bench server as coproc SRV, its stdin on fd 3; `answer` prints its next READY,
# BACKUP-… or GC line. env: SERVER (another build), NODE_ARGS, SERVER_ENV (extra environment).
D=$BASE/run-$COND-$QD
rm -rf "$D"
mkdir -p "$D"
dd if=/dev/urandom of="$D/img" bs=1M count=512 status=none
cp "$D/img" "$D/other"

# shellcheck disable=SC2086
coproc SRV { exec env ${SERVER_ENV:-} node ${NODE_ARGS---initial-old-space-size=64} "${SERVER:-$ROOT/dist/bench/nbd-serve-file.cjs}" --engine "$D/data" --adopt "$D/img" --adopt-other "$D/other" --socket "$D/sock" 2>"$D/server.err"; }
exec 3>&"${SRV[1]}"
answer() { while read -r line <&"${SRV[0]}"; do case "$line" in READY*|BACKUP-*|GC*) echo "$line"; return;; esac; done; }
