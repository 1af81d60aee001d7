#!/usr/bin/env python3
"""Where this machine's scheduler puts a task woken through a Unix socket, and what it waits.

A parent pinned to CPU 0 sends a byte to a child (free to run on any CPU, started on CPU 1), then
keeps running for SPIN µs before it reads the child's answer; between rounds it sleeps SLEEP s, which
sets how busy CPU 0 is. The child answers at once with the CPU it woke on and the time it woke (after
WORK iterations of a Python loop, its own share of the CPU). Printed per setting: how busy the parent
kept CPU 0, how often the child woke on the parent's CPU although CPU 1 was idle, and the child's
wake-up latency from the send. With YIELD the parent calls sched_yield() right after the send.

    wakeup-placement.py [SPIN_US=200] [WORK=0] [ROUNDS=3000]

On the bench VM (bench/results/nbd-latency-session48.txt) a woken child went onto the busy parent's
CPU while the parent used under ~60 % of it, and then often waited for the parent to stop running
(p99 ≈ SPIN); a stock kernel with a shared last-level cache picks the idle CPU instead.
"""
import ctypes
import os
import socket
import struct
import sys
import time

libc = ctypes.CDLL(None)
MONO = time.CLOCK_MONOTONIC


def trial(spin_s, sleep_s, work, rounds, yield_after_send):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        a.close()
        os.sched_setaffinity(0, {1})
        time.sleep(0.01)
        os.sched_setaffinity(0, set(range(os.cpu_count())))
        while True:
            if not b.recv(8):
                os._exit(0)
            t = time.clock_gettime(MONO)
            x = 0
            for i in range(work):
                x += i
            b.send(struct.pack('dd', t, libc.sched_getcpu()))
    b.close()
    os.sched_setaffinity(0, {0})
    time.sleep(0.05)
    lat, on_parent = [], 0
    t_start, cpu_start = time.monotonic(), time.process_time()
    for _ in range(rounds):
        t0 = time.clock_gettime(MONO)
        a.send(b'x' * 8)
        if yield_after_send:
            os.sched_yield()
        while time.clock_gettime(MONO) - t0 < spin_s:
            pass
        t, cpu = struct.unpack('dd', a.recv(16))
        lat.append((t - t0) * 1e6)
        on_parent += int(cpu) == 0
        if sleep_s > 0:
            time.sleep(sleep_s)
    busy = (time.process_time() - cpu_start) / (time.monotonic() - t_start)
    a.close()
    os.waitpid(pid, 0)
    lat.sort()
    n = len(lat)
    return busy, on_parent / n, lat[n // 2], lat[int(n * 0.9)], lat[int(n * 0.99)]


def main():
    spin_us = float(sys.argv[1]) if len(sys.argv) > 1 else 200
    work = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3000
    if os.cpu_count() < 2:
        sys.exit('needs two CPUs')
    print('spin %.0f µs, child work %d; latency = child woken − parent sent' % (spin_us, work))
    print('%-8s %8s %14s %8s %8s %8s' % ('after', 'CPU 0', 'child woke', 'p50 µs', 'p90 µs', 'p99 µs'))
    print('%-8s %8s %14s' % ('send', 'busy', 'on CPU 0'))
    for sleep_s in (0.002, 0.0005, 0.0002, 0.0001, 0.00005, 0):
        for y in (False, True):
            busy, share, p50, p90, p99 = trial(spin_us / 1e6, sleep_s, work, rounds, y)
            print('%-8s %7.0f%% %13.0f%% %8.0f %8.0f %8.0f' % ('yield' if y else 'plain', busy * 100, share * 100, p50, p90, p99))


if __name__ == '__main__':
    main()
