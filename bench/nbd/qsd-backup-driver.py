#!/usr/bin/env python3
"""qemu's own backup job, driven line by line like the engine-mode bench server's backup loop.

    qsd-backup-driver.py QMP_SOCKET TARGET SIZE_BYTES BYTES_PER_SEC

Talks QMP to a running qemu-storage-daemon whose export's node is `disk0`. Reads commands on
stdin and answers on stdout, in the protocol bench/nbd/latency-alternate.sh speaks to the Holdfast
server, so the same loop measures both (`READY qsd` once connected):

    backup-on   creates TARGET (a sparse raw file of SIZE_BYTES), starts `blockdev-backup
                sync=full` of disk0 into it at BYTES_PER_SEC (copy-before-write: a guest write to a
                block not yet copied first copies the old block, as Proxmox VE backs up); answers
                `BACKUP-ON` once the job runs
    backup-off  waits for that job to complete, removes the target node and file, answers
                `BACKUP-OFF {"completed":1,"ms":…}` (one whole backup, as the Holdfast loop's round)
"""
import json
import os
import signal
import socket
import sys
import time

signal.signal(signal.SIGINT, lambda *_: sys.exit(0))  # the bench's way to say "stop"
qmp_path, target, size, speed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sock = socket.socket(socket.AF_UNIX)
for _ in range(100):
    try:
        sock.connect(qmp_path)
        break
    except OSError:
        time.sleep(0.05)
else:
    sys.exit(f'qsd-backup-driver: cannot connect to {qmp_path}')
reader = sock.makefile('r')
events = []


def message():
    line = reader.readline()
    if not line:
        sys.exit('qsd-backup-driver: qemu-storage-daemon closed QMP')
    return json.loads(line)


def cmd(execute, **args):
    sock.sendall((json.dumps({'execute': execute, 'arguments': args}) + '\n').encode())
    while True:
        m = message()
        if 'return' in m:
            return m['return']
        if 'error' in m:
            sys.exit(f"qsd-backup-driver: QMP {execute}: {m['error']['desc']}")
        events.append(m)


def event(names):
    while True:
        for i, e in enumerate(events):
            if e.get('event') in names:
                return events.pop(i)
        events.append(message())


message()  # the greeting
cmd('qmp_capabilities')
print('READY qsd', flush=True)
started = None
for line in sys.stdin:
    c = (line.split() or [''])[0]  # `backup-on VOLUME`: the daemon serves one volume
    if c == 'backup-on':
        with open(target, 'wb') as f:
            f.truncate(size)
        cmd('blockdev-add', driver='file', **{'node-name': 'tgt'}, filename=target)
        cmd('blockdev-backup', **{'job-id': 'bk', 'auto-dismiss': True}, device='disk0', target='tgt', sync='full', speed=speed)
        started = time.monotonic()
        print('BACKUP-ON', flush=True)
    elif c == 'backup-off':
        e = event(['BLOCK_JOB_COMPLETED', 'BLOCK_JOB_CANCELLED'])
        if e['event'] != 'BLOCK_JOB_COMPLETED' or e['data'].get('error'):
            sys.exit(f"qsd-backup-driver: the backup job did not complete: {e}")
        ms = round((time.monotonic() - started) * 1000)
        cmd('blockdev-del', **{'node-name': 'tgt'})
        os.remove(target)
        print('BACKUP-OFF ' + json.dumps({'completed': 1, 'ms': ms}), flush=True)
