/**
 * The backup core split: which CPUs each side gets, that the threads are split exactly while a
 * backup holds the split (in call order, also across quick release-then-hold), that workers
 * which exited are never touched, that the pacer tells its busy state, and — on Linux with two
 * or more CPUs — that the engine thread ends up alone on its CPU and every other thread of the
 * process (real chunk workers, libuv's pool, V8's helpers) on the others, and that all of them
 * get every CPU back afterwards.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { BackupPacer, type PacerClock } from '../../src-main/engine/backup/backup-pacer';
import { ChunkWorkers } from '../../src-main/engine/vault/chunk-workers';
import { AffinityHelper, CpuSplit, cpuPlanForThisThread, interruptTime, ownThreadId, parseCpuList, planCpuSplit, type SetAffinity } from '../../src-main/engine/vault/cpu-split';

describe('CPU plan', () => {
  it('parses CPU lists as /proc writes them, and refuses anything else', () => {
    expect(parseCpuList('0-3,6')).toEqual([0, 1, 2, 3, 6]);
    expect(parseCpuList('5\n')).toEqual([5]);
    expect(() => parseCpuList('0-x')).toThrow(/not a CPU list/);
  });

  it('gives the engine the least interrupted allowed CPU (ties: the highest) and the workers the rest; none with one CPU or more than four', () => {
    expect(planCpuSplit([0, 1])).toEqual({ all: '0,1', engine: 1, workers: '0' });
    expect(planCpuSplit([0, 1], new Map([[0, 1309], [1, 14110]]))).toEqual({ all: '0,1', engine: 0, workers: '1' });
    expect(planCpuSplit([6, 2, 3, 2], new Map([[2, 50], [3, 10], [6, 10], [7, 0]]))).toEqual({ all: '2,3,6', engine: 6, workers: '2,3' });
    expect(planCpuSplit([6, 2, 3], new Map([[2, 50], [3, 5], [6, 10]]))).toEqual({ all: '2,3,6', engine: 3, workers: '2,6' });
    expect(planCpuSplit([0, 1, 2, 3, 4])).toBeNull();
    expect(planCpuSplit([4])).toBeNull();
    expect(planCpuSplit([])).toBeNull();
  });

  it('reads each CPU\'s interrupt and softirq time from /proc/stat; nothing from a missing file', () => {
    const f = path.join(os.tmpdir(), `holdfast-stat-${process.pid}`);
    fs.writeFileSync(f, 'cpu  1 2 3 4 5 6 7 8 0 0\ncpu0 369768 30656 382768 979771 17680 0 1309 80101 0 0\ncpu1 397693 48062 402992 871682 42872 100 14110 83413 0 0\nintr 5\n');
    try {
      expect([...interruptTime(f)]).toEqual([[0, 1309], [1, 14210]]);
    } finally {
      fs.rmSync(f);
    }
    expect(interruptTime(f).size).toBe(0);
  });

  it('is off when HOLDFAST_CPU_SPLIT=0', () => {
    expect(cpuPlanForThisThread({ HOLDFAST_CPU_SPLIT: '0' })).toBeNull();
  });
});

/** The process id the CpuSplit tests below split (a made-up one: calls are only recorded). */
const PID = 7;

/** Records affinity calls ("all PID:CPUS" for every thread of a process); `fail` makes calls for those ids fail. */
function recorder(fail = new Set<number>()): { calls: string[]; set: SetAffinity } {
  const calls: string[] = [];
  return {
    calls,
    set: async (id, cpus, allThreads) => {
      await new Promise((r) => setTimeout(r, 1)); // calls take time: later ones must wait
      calls.push(`${allThreads ? 'all ' : ''}${id}:${cpus}`);
      return !fail.has(id);
    },
  };
}

const split = (r: { set: SetAffinity }) => new CpuSplit(planCpuSplit([0, 1, 2, 3])!, 100, r.set, undefined, PID);

describe('CpuSplit', () => {
  it('moves every thread off the engine CPU while held, the engine thread onto it, and gives them all CPUs back after the last holder', async () => {
    const r = recorder();
    const s = split(r);
    s.addWorker(201); // not split yet: left alone
    await s.settled();
    expect(r.calls).toEqual([]);
    s.hold();
    s.hold(); // a second backup: nothing more to do
    await s.settled();
    expect(r.calls).toEqual([`all ${PID}:0,1,2`, '100:3']);
    expect(s.split).toBe(true);
    r.calls.length = 0;
    s.addWorker(202); // boots while split, on the engine's CPU (inherited): placed at once
    await s.settled();
    expect(r.calls).toEqual(['202:0,1,2']);
    r.calls.length = 0;
    s.unhold();
    await s.settled();
    expect(r.calls).toEqual([]);
    s.unhold();
    await s.settled();
    expect(r.calls).toEqual([`all ${PID}:0,1,2,3`]);
    expect(s.split).toBe(false);
    expect(() => s.unhold()).toThrow(/released once per hold/);
  });

  it('decides each step when it runs: release-then-hold leaves the threads split, hold-then-release leaves them alone', async () => {
    const r = recorder();
    const s = split(r);
    s.hold();
    s.unhold();
    s.hold();
    await s.settled();
    expect(s.split).toBe(true);
    expect(r.calls).toEqual([`all ${PID}:0,1,2`, '100:3']);
    const r2 = recorder();
    const s2 = split(r2);
    s2.hold();
    s2.unhold();
    await s2.settled();
    expect(s2.split).toBe(false);
    expect(r2.calls).toEqual([]);
  });

  it('never touches a worker that exited (its thread id may belong to another thread by then)', async () => {
    const r = recorder();
    const s = split(r);
    s.hold();
    await s.settled();
    r.calls.length = 0;
    s.addWorker(201);
    s.addWorker(202);
    s.removeWorker(201); // exited before its placement ran
    await s.settled();
    expect(r.calls).toEqual(['202:0,1,2']);
  });

  it('a holder counts once however often it repeats itself, and nothing holds after close()', async () => {
    const r = recorder();
    const s = split(r);
    const a = s.holder();
    const b = s.holder();
    a(true);
    a(true);
    b(true);
    a(false);
    a(false);
    expect(s.engaged, 'b still holds').toBe(true);
    b(false);
    expect(s.engaged).toBe(false);
    b(true);
    await s.settled();
    expect(s.split).toBe(true);
    await s.close();
    expect(s.split, 'close gives every CPU back').toBe(false);
    expect(r.calls).toEqual([`all ${PID}:0,1,2`, '100:3', `all ${PID}:0,1,2,3`]);
    b(false); // a backup ending after close
    a(true);
    await s.settled();
    expect(s.engaged).toBe(false);
    expect(r.calls.length).toBe(3);
  });

  it('tries the whole process once more after a failed call, keeps going, and does nothing at all without a plan', async () => {
    const r = recorder(new Set([PID, 201]));
    const s = split(r);
    s.hold();
    s.addWorker(201);
    s.addWorker(202);
    await s.settled();
    expect(r.calls).toEqual([`all ${PID}:0,1,2`, `all ${PID}:0,1,2`, '100:3', '201:0,1,2', '202:0,1,2']);
    const none = recorder();
    const off = new CpuSplit(null, 100, none.set);
    off.addWorker(5);
    off.hold();
    off.unhold();
    off.unhold(); // no plan: nothing is counted either
    await off.settled();
    expect(none.calls).toEqual([]);
  });
});

describe('BackupPacer busy reports', () => {
  it('tells each change of the busy state once, starting busy; never with throttle off', async () => {
    const clock: PacerClock & { t: number } = { t: 0, now: () => clock.t, sleep: async (ms) => void (clock.t += ms) };
    let writes = 0;
    const seen: boolean[] = [];
    const p = new BackupPacer({ mode: 'auto', activity: () => writes, clock, quietMs: 250, onBusyChange: (b) => seen.push(b) });
    await p.before(4096);
    await p.before(4096);
    clock.t += 300;
    await p.before(4096);
    await p.before(4096);
    writes++;
    await p.before(4096);
    expect(seen).toEqual([true, false, true]);
    const offSeen: boolean[] = [];
    const off = new BackupPacer({ mode: 'off', activity: () => writes++, clock, onBusyChange: (b) => offSeen.push(b) });
    await off.before(4096);
    expect(offSeen).toEqual([]);
  });
});

/** The CPUs a thread of this process may run on. */
function allowedOf(tid: number): number[] {
  const m = /^Cpus_allowed_list:\s*(\S+)/m.exec(fs.readFileSync(`/proc/${process.pid}/task/${tid}/status`, 'utf8'));
  return parseCpuList(m![1]!);
}

function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const plan = process.platform === 'linux' ? cpuPlanForThisThread({}) : null;
const why = process.platform !== 'linux' ? 'not Linux' : !plan ? `this thread may use only one CPU (${os.availableParallelism()} available)` : !hasTaskset() ? 'taskset (util-linux) is not installed' : '';
if (why) console.log(`skipping the real CPU split test: ${why}`);

describe.skipIf(why !== '')('CpuSplit on real threads', () => {
  it('sets affinity through one helper process for many calls (no fork of the engine per call), refuses malformed input, and ends the helper on close', async () => {
    const engineTid = ownThreadId()!;
    const before = allowedOf(engineTid);
    const helper = new AffinityHelper();
    try {
      expect(helper.start(), 'the helper starts').not.toBeNull();
      for (let i = 0; i < 3; i++) {
        expect(await helper.set(engineTid, String(plan!.engine))).toBe(true);
        expect(allowedOf(engineTid)).toEqual([plan!.engine]);
        expect(await helper.set(engineTid, plan!.all)).toBe(true);
        expect(allowedOf(engineTid)).toEqual(before);
      }
      const [a, b] = await Promise.all([helper.set(engineTid, String(plan!.engine)), helper.set(engineTid, plan!.all)]);
      expect([a, b], 'pipelined calls are answered in order').toEqual([true, true]);
      expect(allowedOf(engineTid)).toEqual(before);
      expect(await helper.set(engineTid, '0; touch /tmp/x'), 'a CPU list that is not one').toBe(false);
      expect(await helper.set(-1, plan!.all), 'not a thread id').toBe(false);
      expect(await helper.set(2 ** 22 + 12345, plan!.all), 'no such thread: taskset fails').toBe(false);
      expect(helper.starts, 'one helper process served every call').toBe(1);
      const pid = helper.start()!.pid!;
      await helper.close();
      expect(fs.existsSync(`/proc/${pid}/status`) && !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8')), 'the helper exited').toBe(false);
    } finally {
      await helper.close();
      expect(allowedOf(engineTid)).toEqual(before);
    }
  });

  it('puts the engine thread alone on its CPU and every other thread (real chunk workers, the thread pool) on the others while held (taskset run by the helper process), and gives them back every CPU', async () => {
    const engineTid = ownThreadId()!;
    const before = allowedOf(engineTid);
    const helper = new AffinityHelper();
    const split = new CpuSplit(plan, engineTid, helper.set, () => helper.close());
    const workers = new ChunkWorkers({ encKey: null, idKey: null, level: 3 }, 2, split);
    try {
      await workers.digest(Buffer.alloc(4096, 1)); // boots the first worker; each reports its thread id
      // Work waiting while the first is busy starts the second.
      await Promise.all(Array.from({ length: 4 }, () => workers.digest(crypto.randomBytes(4 << 20))));
      for (let i = 0; i < 200 && split.workerCount < 2; i++) await new Promise((r) => setTimeout(r, 10));
      expect(split.workerCount, 'both workers reported their thread ids').toBe(2);
      await fs.promises.stat(os.tmpdir()); // the thread pool has started
      const tids = fs.readdirSync(`/proc/${process.pid}/task`).map(Number);
      const others = tids.filter((t) => t !== engineTid);
      expect(others.length, 'two chunk workers, the thread pool, V8 helpers').toBeGreaterThanOrEqual(2 + 4);
      split.hold();
      await split.settled();
      expect(allowedOf(engineTid)).toEqual([plan!.engine]);
      for (const t of others) expect(allowedOf(t).join(','), `thread ${t} is off the engine CPU`).toBe(plan!.workers);
      split.unhold();
      await split.settled();
      expect(allowedOf(engineTid)).toEqual(before);
      for (const t of others) expect(allowedOf(t).join(','), `thread ${t} has every CPU back`).toBe(plan!.all);
      split.hold();
      await split.settled();
      await split.close(); // shutting down while split: every CPU back, helper gone
      expect(allowedOf(engineTid)).toEqual(before);
    } finally {
      await split.close();
      await workers.close();
    }
  });
});
