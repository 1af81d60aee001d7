#!/bin/bash
# Random-write speed of a volume right after a bulk copy into it, for two builds and qemu-nbd,
# interleaved (bench/results/nbd-latency-session40.txt §3). Each pass and server: a fresh copy of
# a 512 MiB fio-written image, served (Holdfast: dist/bench/nbd-serve-file.cjs of the build,
# volume adopted 1:1, journal on); the image leaves the page cache; nbdcopy writes the source into
# it in 1 MiB requests (the "import", timed); then fio 4 KiB randwrite at QD1 and QD16, 8 s each.
#   A_SERVER=dist/bench/exp-old.cjs B_SERVER=dist/bench/nbd-serve-file.cjs bench/nbd/after-import-ab.sh
#   env: PASSES (3), WHO ("A B qemu"), DIR (/tmp/holdfast-after-import)
set -u
W=${DIR:-/tmp/holdfast-after-import}; rm -rf "$W"; mkdir -p "$W"
fio --name=fill --filename="$W/src.img" --rw=write --bs=4k --size=512M --ioengine=psync --output-format=terse >/dev/null
evict() { python3 -c "import os,sys;fd=os.open(sys.argv[1],os.O_RDWR);os.fsync(fd);os.posix_fadvise(fd,0,0,os.POSIX_FADV_DONTNEED);os.close(fd)" "$1"; }
randwrite() {
  fio --name=b --ioengine=nbd --uri="$1" --rw=randwrite --bs=4k --iodepth="$2" --time_based --runtime=8 --ramp_time=1 --size=512M \
    --norandommap --randrepeat=0 --output-format=json |
    python3 -c "import json,sys;t=sys.stdin.read();j=json.loads(t[t.index('{'):])['jobs'][0]['write'];print('%.0f IOPS p99 %.0f µs'%(j['iops'],j['clat_ns']['percentile']['99.000000']/1000))"
}
for pass in $(seq "${PASSES:-3}"); do
  for who in ${WHO:-A B qemu}; do
    rm -rf "$W/data" "$W/s.sock"; cp "$W/src.img" "$W/img"; sync
    case $who in
      qemu) qemu-nbd -f raw -k "$W/s.sock" -t -e 16 --cache=writeback --aio=threads "$W/img" & P=$!; EXP="";;
      A|B) S=A_SERVER; [ "$who" = B ] && S=B_SERVER
        node --initial-old-space-size=64 "${!S:?set $S}" --engine "$W/data" --adopt "$W/img" --socket "$W/s.sock" >/dev/null & P=$!; EXP=bench;;
      *) echo "unknown server $who" >&2; exit 2;;
    esac
    for _ in $(seq 100); do [ -S "$W/s.sock" ] && break; sleep 0.1; done; sleep 0.5
    evict "$W/img"
    U="nbd+unix:///$EXP?socket=$W/s.sock"
    t0=$(date +%s.%N); nbdcopy --request-size=1048576 "$W/src.img" "$U"; t1=$(date +%s.%N)
    echo "$pass $who import $(python3 -c "print('%.0f MiB/s'%(512/($t1-$t0)))") | then QD1 $(randwrite "$U" 1) | QD16 $(randwrite "$U" 16)"
    kill $P; wait $P 2>/dev/null
  done
done
rm -rf "$W"
