/**
 * Long scheduler slices for the engine's helper threads (Linux): every thread of the engine
 * process except the engine thread — libuv's pool (a backup's reads, chunk files), V8's helpers
 * (the collector's parallel and concurrent work) and the chunk workers (hashing, compression) —
 * runs with an EEVDF slice of 100 ms instead of the default few milliseconds. A slice is how long
 * a thread may keep its CPU once it has it, and since Linux 6.12 a task woken with a shorter slice
 * than the running one preempts it at once (PREEMPT_SHORT) instead of waiting for the running
 * task's slice to end — which the kernel notices only at its next tick. So an NBD client (qemu,
 * fio) woken by a reply on a CPU where a helper runs gets that CPU at once.
 *
 * Why not nice or SCHED_IDLE, which the chunk workers' nice already tries: with autogroup (on by
 * default in desktop distributions) a client started in another session — a VM's qemu, fio's job
 * processes, which call setsid — is scheduled against the engine process's group as a whole. A
 * thread's nice or SCHED_IDLE only orders threads inside the engine's group; whether a woken
 * client preempts is decided between the two groups, and a group's slice is the shortest of its
 * runnable threads on that CPU. While a backup holds the CPU split (cpu-split.ts), the engine
 * thread is alone on its CPU and the helpers share the other one, where their group then has
 * their long slice. Measured on the 2-vCPU bench VM (bench/results/nbd-latency-session48.txt):
 * during range backups, fio waited over 300 µs for a CPU behind the engine's helpers 5.5–9.0 ms
 * a second instead of 16–19; the write p99 ratio did not move out of that VM's run-to-run noise.
 *
 * The engine thread keeps the default slice: it answers the clients. Kernels before 6.12 accept
 * the call and ignore the slice. HOLDFAST_HELPER_SLICE=0 turns it off.
 *
 * Invariant: after sweep(), every thread the process had then, except the engine thread and any
 * that exited meanwhile, has the long slice and the nice it had before (until a call fails for
 * another reason: then none is changed any more); the engine thread's scheduling never changes.
 */
import fs from 'node:fs';
import os from 'node:os';
import { nativeFs } from '../env/native-fs';
import { ownThreadId } from './cpu-split';

/** The helpers' slice: the kernel's maximum (it clamps custom slices to 0.1–100 ms). */
export const HELPER_SLICE_NS = 100_000_000;

/** sched_setattr on one thread: 0 or the errno. */
export type SetThreadSlice = (tid: number, nanoseconds: number, nice: number) => number;

const ESRCH = 3;

/** Thread ids of this process (Linux), or none where /proc cannot be read. */
export function processThreads(): number[] {
  try {
    return fs.readdirSync('/proc/self/task').map(Number).filter((t) => Number.isSafeInteger(t) && t > 0);
  } catch {
    return [];
  }
}

/** A thread's nice (getpriority on a thread id is per thread on Linux); null if it is gone. */
function niceOf(tid: number): number | null {
  try {
    return os.getPriority(tid);
  } catch {
    return null;
  }
}

export class HelperSlices {
  /** Set once a call failed for a reason other than a thread having exited: no more calls. */
  private failed: number | null = null;

  constructor(
    private readonly engineTid: number,
    private readonly setSlice: SetThreadSlice,
    private readonly threads: () => number[] = processThreads,
    private readonly nice: (tid: number) => number | null = niceOf,
  ) {}

  /**
   * For the calling thread as the engine thread; null off Linux, where the addon lacks the call,
   * or with HOLDFAST_HELPER_SLICE=0.
   */
  static forThisThread(env: NodeJS.ProcessEnv = process.env): HelperSlices | null {
    if (process.platform !== 'linux' || env.HOLDFAST_HELPER_SLICE === '0') return null;
    const set = nativeFs()?.setThreadSlice ?? null;
    const tid = ownThreadId();
    return set && tid !== null ? new HelperSlices(tid, set) : null;
  }

  /** The errno that stopped it (EPERM under a seccomp filter, say), or null. */
  get stoppedBy(): number | null {
    return this.failed;
  }

  /** Gives every thread of the process but the engine thread the long slice; how many took it. */
  sweep(): number {
    let n = 0;
    for (const tid of this.threads()) if (tid !== this.engineTid && this.apply(tid)) n++;
    return n;
  }

  /** One thread (a chunk worker that just started); false if it is gone or the call failed. */
  apply(tid: number): boolean {
    if (this.failed !== null || tid === this.engineTid) return false;
    const nice = this.nice(tid);
    if (nice === null) return false;
    const err = this.setSlice(tid, HELPER_SLICE_NS, nice);
    if (err === 0) return true;
    if (err !== ESRCH) this.failed = err;
    return false;
  }
}
