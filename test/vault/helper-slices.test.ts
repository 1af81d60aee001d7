/**
 * Long scheduler slices for the engine's helper threads (helper-slices.ts): every thread but the
 * engine thread gets the long slice with the nice it had; a thread that exited meanwhile is
 * skipped, any other failure stops further calls; HOLDFAST_HELPER_SLICE=0 turns it off. On Linux
 * with the addon, through a real engine: the threads the process has once the engine is open
 * (libuv's pool, V8's helpers) and the chunk workers of a backup (nice 10) run with a 100 ms
 * slice as the kernel reports it, and the engine thread keeps its own.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Engine } from '../../src-main/engine/engine';
import { HELPER_SLICE_NS, HelperSlices, processThreads } from '../../src-main/engine/vault/helper-slices';
import { ownThreadId } from '../../src-main/engine/vault/cpu-split';
import { nativeFs } from '../../src-main/engine/env/native-fs';
import { useTempDirs } from '../engine/helpers';

const mk = useTempDirs();

describe('HelperSlices', () => {
  it('gives every thread but the engine thread the long slice, each with its own nice', () => {
    const calls: Array<[number, number, number]> = [];
    const nice = new Map([[10, 0], [11, 0], [12, 10], [13, -2]]);
    const s = new HelperSlices(11, (tid, ns, n) => (calls.push([tid, ns, n]), 0), () => [10, 11, 12, 13], (tid) => nice.get(tid) ?? null);
    expect(s.sweep()).toBe(3);
    expect(calls).toEqual([
      [10, HELPER_SLICE_NS, 0],
      [12, HELPER_SLICE_NS, 10],
      [13, HELPER_SLICE_NS, -2],
    ]);
    expect(s.apply(11)).toBe(false);
    expect(calls).toHaveLength(3);
  });

  it('skips a thread that exited (ESRCH, or its nice unreadable) and goes on; stops after any other failure', () => {
    const calls: number[] = [];
    const errno = new Map([[2, 3], [4, 1]]); // ESRCH, then EPERM
    const s = new HelperSlices(1, (tid) => (calls.push(tid), errno.get(tid) ?? 0), () => [1, 2, 3, 4, 5, 6], (tid) => (tid === 3 ? null : 0));
    expect(s.sweep()).toBe(0); // 2 exited, 3 gone before its nice was read, 4 refused: 5 and 6 not tried
    expect(calls).toEqual([2, 4]);
    expect(s.stoppedBy).toBe(1);
    expect(s.apply(5)).toBe(false);
    expect(calls).toEqual([2, 4]);
  });

  it('is off with HOLDFAST_HELPER_SLICE=0', () => {
    expect(HelperSlices.forThisThread({ HOLDFAST_HELPER_SLICE: '0' })).toBeNull();
  });
});

/** A thread's EEVDF slice in ns as the kernel reports it, or null where it does not (no such line, or gone). */
function sliceOf(tid: number): number | null {
  try {
    const m = /^se\.slice\s*:\s*(\d+)/m.exec(fs.readFileSync(`/proc/self/task/${tid}/sched`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

const kernelReports = process.platform === 'linux' && nativeFs()?.setThreadSlice != null && sliceOf(ownThreadId() ?? 0) !== null;
if (!kernelReports) console.log('helper-slices: skipping the engine test (needs Linux, the holdfast-fs addon with setThreadSlice, and se.slice in /proc/<tid>/sched)');

describe.skipIf(!kernelReports)('through a real engine', () => {
  it('the threads the process has once the engine is open and a backup\'s chunk workers run with the long slice; the engine thread keeps its own', async () => {
    const me = ownThreadId()!;
    const mine = sliceOf(me);
    expect(mine).not.toBe(HELPER_SLICE_NS);
    const d = mk();
    const e = await Engine.open({ dataDir: path.join(d, 'data') });
    try {
      const others = processThreads().filter((t) => t !== me);
      expect(others.length).toBeGreaterThanOrEqual(4); // libuv's pool and V8's helpers at least
      for (const t of others) expect({ tid: t, slice: sliceOf(t) }).toEqual({ tid: t, slice: HELPER_SLICE_NS });
      expect(sliceOf(me)).toBe(mine);

      await e.api['device.add']({ path: path.join(d, 'disk.img'), create: true, size: 64 << 20 });
      await e.api['volume.create']({ name: 'v', size: 16 << 20 });
      await e.volume('v').write(0, Buffer.alloc(1 << 20, 7));
      const b = await e.api['backup.start']({ volume: 'v', policy: 'range', full: true });
      expect(b.state).toBe('completed');
      // The chunk workers stay in the vault's pool; they are the threads at nice 10.
      const workers = processThreads().filter((t) => t !== me && os.getPriority(t) === 10);
      expect(workers.length).toBeGreaterThanOrEqual(1);
      for (const t of workers) expect({ tid: t, slice: sliceOf(t), nice: os.getPriority(t) }).toEqual({ tid: t, slice: HELPER_SLICE_NS, nice: 10 });
      expect(sliceOf(me)).toBe(mine);
    } finally {
      await e.close();
    }
  }, 60_000);
});
