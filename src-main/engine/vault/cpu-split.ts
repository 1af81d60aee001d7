/**
 * Backup core split (Linux, 2–4 CPUs): while a backup runs in the engine, the engine's own
 * thread — the one that answers NBD clients and releases held writes — keeps one CPU to itself,
 * and every other thread of the process runs on the others: the chunk workers, libuv's thread
 * pool (which writes the chunk files: on a VM each new page-cache page can cost a host fault,
 * and these copies took 0.8 of a CPU at the busy rate) and V8's helper threads. Without it, on a small machine the engine thread keeps
 * landing on the CPU where a worker compresses and where the storage's interrupts and the block
 * layer's queue runs go; a client's write then waits behind them. The engine gets the CPU with
 * the least interrupt time. Measured on a 2-CPU VM (bench/results/nbd-latency-alternate-session16.txt):
 * a queue-depth-1 writer's p99 during range backups 584–668 µs instead of 732–903 µs; the
 * first form (engine on the interrupt CPU, taskset started from the engine thread) gained
 * nothing. No change at queue depth 16. Moving the thread pool as well (session 20, on a day
 * when its chunk-file copies were slow; bench/results/nbd-latency-session20.txt): the engine
 * thread's wait for a CPU fell from ~10.6 to ~4.1 s in 20 s, QD1 write IOPS during range backups
 * 8.5–9.3k instead of 4.9–7.5k, p99.9 1.8–2.1 ms instead of 22–39 ms; QD16 p99 halved.
 *
 * Only while it helps: a backup holds the split while the throttle sees volumes being written
 * (BackupPacer's busy state), when it reads at the busy rate anyway. A backup of quiet volumes,
 * a backup with the throttle off, a restore and an idle Holdfast use every CPU as before: when
 * the last holder lets go, every thread gets all its CPUs back.
 *
 * Affinity is set with util-linux's `taskset` on thread ids (Node has no affinity call), run by
 * a helper process started with the engine (AffinityHelper: a child process per call would fork
 * the engine mid-backup, which costs more than the split gains); where it is missing or fails,
 * nothing is pinned and the backup runs as before. HOLDFAST_CPU_SPLIT=0 turns the split off.
 *
 * Invariants: once the queued calls ran, the threads are split exactly while `engaged` (at least
 * one holder): the engine thread on `plan.engine`, every other thread the process had when the
 * split engaged and every chunk worker started since on `plan.workers`; disengaged, every thread
 * of the process on `plan.all`. The calls run one after another in call order and each decides
 * from the state when it runs, so a quick release-then-hold never leaves the threads split after
 * the last holder, nor unsplit while one holds. Threads are named by id only while they are
 * known to live (the process's own list, read by taskset at the call; workers until they exit).
 */
import fs from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';

export interface CpuPlan {
  /** The CPUs the engine thread was allowed at startup (its mask outside backups), as a taskset list. */
  readonly all: string;
  /** The engine thread's CPU while a backup runs. */
  readonly engine: number;
  /** The chunk workers' CPUs: `all` without `engine`. */
  readonly workers: string;
}

/** Parses a CPU list such as "0-3,6" (as /proc status and taskset write it). */
export function parseCpuList(list: string): number[] {
  const out: number[] = [];
  for (const part of list.trim().split(',')) {
    if (!part) continue;
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new Error(`not a CPU list: ${list}`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    for (let c = a; c <= b; c++) out.push(c);
  }
  return out;
}

/** The calling thread's id (Linux), or null. */
export function ownThreadId(): number | null {
  try {
    const id = Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
    return Number.isSafeInteger(id) && id > 0 ? id : null;
  } catch {
    return null;
  }
}

/** Past this many CPUs the chunk workers (at most four) leave the engine room anyway: no split. */
export const SPLIT_MAX_CPUS = 4;

/**
 * Time each CPU spent in hardware interrupts and softirqs since boot (/proc/stat, in clock
 * ticks): where the storage's completions and the block layer's work land. Empty if unreadable.
 */
export function interruptTime(stat = '/proc/stat'): Map<number, number> {
  const out = new Map<number, number>();
  try {
    for (const line of fs.readFileSync(stat, 'utf8').split('\n')) {
      const m = /^cpu(\d+)\s+(.*)$/.exec(line);
      if (!m) continue;
      const f = m[2]!.trim().split(/\s+/).map(Number);
      out.set(Number(m[1]), (f[5] ?? 0) + (f[6] ?? 0)); // user nice system idle iowait irq softirq …
    }
  } catch {
    // no /proc: every CPU looks the same
  }
  return out;
}

/**
 * The split for a thread allowed `allowed` CPUs: the engine on the CPU that handles the fewest
 * interrupts (storage completions and the block layer's queue runs take a CPU ahead of any
 * thread — on the VM this was measured on, all of them land on CPU 1, and an engine thread
 * there waited behind them for ~1 ms at a time), the workers on the rest. Ties go to the highest
 * CPU (CPU 0 takes most device interrupts on a typical desktop). null with fewer than two CPUs or
 * more than SPLIT_MAX_CPUS.
 */
export function planCpuSplit(allowed: number[], irq: Map<number, number> = new Map()): CpuPlan | null {
  const cpus = [...new Set(allowed)].sort((a, b) => a - b);
  if (cpus.length < 2 || cpus.length > SPLIT_MAX_CPUS) return null;
  let engine = cpus[cpus.length - 1]!;
  for (const c of cpus) if ((irq.get(c) ?? 0) < (irq.get(engine) ?? 0)) engine = c;
  return { all: cpus.join(','), engine, workers: cpus.filter((c) => c !== engine).join(',') };
}

/** The calling thread's split, from its allowed CPUs; null off Linux, with one CPU, or when turned off. */
export function cpuPlanForThisThread(env: NodeJS.ProcessEnv = process.env): CpuPlan | null {
  if (process.platform !== 'linux' || env.HOLDFAST_CPU_SPLIT === '0') return null;
  try {
    const status = fs.readFileSync('/proc/thread-self/status', 'utf8');
    const m = /^Cpus_allowed_list:\s*(\S+)/m.exec(status);
    return m ? planCpuSplit(parseCpuList(m[1]!), interruptTime()) : null;
  } catch {
    return null;
  }
}

/**
 * Sets thread `id`'s CPUs (a taskset list), or with `allThreads` those of every thread of
 * process `id`; resolves false if that failed.
 */
export type SetAffinity = (id: number, cpus: string, allThreads?: boolean) => Promise<boolean>;

/**
 * The helper process: one `taskset` per line read ("t CPUS TID" for a thread, "a CPUS PID" for
 * every thread of a process), answering 0 (done) or 1 (failed) per line.
 */
const HELPER_SCRIPT =
  'while read -r kind cpus id; do if [ "$kind" = a ]; then o=-apc; else o=-pc; fi; if taskset $o "$cpus" "$id" >/dev/null 2>&1; then echo 0; else echo 1; fi; done';

/**
 * Runs `taskset` from a small helper process started once, not a child process per call.
 * Starting a child process forks this one: every writable page of the engine becomes
 * copy-on-write, and each page the engine or a worker writes afterwards takes a fault that
 * flushes the TLB of every CPU running one of its threads. On a 2-vCPU VM that was ~1,600 TLB
 * shootdowns a second while a range backup ran (five `taskset` runs in 3 s; three flushes
 * without the split), each an inter-processor interrupt, which a VM pays dearly for. The helper is
 * a shell, so the forks for each `taskset` happen in it; `start()` it while the engine is
 * small and idle (CpuSplit.forThisThread does, at startup). Its pipes do not keep the process
 * alive; it exits when its stdin closes (close(), or this process ending).
 */
export class AffinityHelper {
  private child: ChildProcess | null = null;
  /** Resolvers of the lines written, in order: the helper answers each line once. */
  private waiting: Array<(ok: boolean) => void> = [];
  private out = '';
  /** Processes started so far (for tests: one for many calls). */
  starts = 0;

  readonly set: SetAffinity = (id, cpus, allThreads = false) =>
    new Promise((resolve) => {
      if (!Number.isInteger(id) || id <= 0 || !/^[0-9][0-9,-]*$/.test(cpus)) return resolve(false);
      const c = this.start();
      if (!c) return resolve(false);
      this.waiting.push(resolve);
      c.stdin!.write(`${allThreads ? 'a' : 't'} ${cpus} ${id}\n`);
    });

  /** Starts the helper process if it is not running; null if it cannot be started. */
  start(): ChildProcess | null {
    if (this.child) return this.child;
    let c: ChildProcess;
    try {
      c = spawn('/bin/sh', ['-c', HELPER_SCRIPT], { stdio: ['pipe', 'pipe', 'ignore'] });
    } catch {
      return null;
    }
    this.starts++;
    this.child = c;
    c.unref();
    (c.stdin as unknown as { unref?: () => void }).unref?.();
    (c.stdout as unknown as { unref?: () => void }).unref?.();
    c.stdin!.on('error', () => undefined); // the helper died: 'exit' answers the waiting calls
    c.stdout!.setEncoding('latin1');
    c.stdout!.on('data', (chunk: string) => {
      this.out += chunk;
      let nl: number;
      while ((nl = this.out.indexOf('\n')) >= 0) {
        const line = this.out.slice(0, nl);
        this.out = this.out.slice(nl + 1);
        this.waiting.shift()?.(line === '0');
      }
    });
    const gone = () => {
      if (this.child !== c) return;
      this.child = null;
      this.out = '';
      const w = this.waiting;
      this.waiting = [];
      for (const done of w) done(false);
    };
    c.on('error', gone);
    c.on('exit', gone);
    return c;
  }

  /** Ends the helper (it exits when its stdin closes); calls still waiting resolve false. */
  async close(): Promise<void> {
    const c = this.child;
    if (!c) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.stdin!.end();
    const t = setTimeout(() => c.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(t);
  }
}

/** Where the split puts threads: the engine pool's chunk workers report theirs here. */
export interface ThreadPlacement {
  addWorker(tid: number): void;
  removeWorker(tid: number): void;
}

/**
 * The split itself: engaged while at least one backup holds it (a throttled backup while volumes
 * are being written); then the engine thread runs on `plan.engine` only and every other thread
 * of the process on `plan.workers` (a chunk worker started meanwhile inherits the engine
 * thread's CPU, so it is placed when it reports its id). Disengaged, every thread gets
 * `plan.all` back, so a backup of quiet volumes (and an idle Holdfast) uses every CPU as before.
 */
export class CpuSplit implements ThreadPlacement {
  private holders = 0;
  private chain: Promise<unknown> = Promise.resolve();
  /** Whether the threads were last set to the split (after the queued calls ran). */
  private applied = false;
  private readonly workers = new Set<number>();
  private closed = false;

  constructor(
    readonly plan: CpuPlan | null,
    private readonly engineTid: number | null,
    private readonly setAffinity: SetAffinity,
    private readonly onClose: () => Promise<void> = async () => undefined,
    /** The process whose threads are split (this one). */
    private readonly pid: number = process.pid,
  ) {}

  /** The split for the calling (engine) thread, from its allowed CPUs and HOLDFAST_CPU_SPLIT. */
  static forThisThread(): CpuSplit {
    const tid = ownThreadId();
    const helper = new AffinityHelper();
    const plan = tid === null ? null : cpuPlanForThisThread();
    if (plan) helper.start(); // now, while the engine is small and nothing runs: see AffinityHelper
    return new CpuSplit(plan, tid, helper.set, () => helper.close());
  }

  /** Gives every thread all its CPUs back (if split) and stops the helper; later holds do nothing. */
  async close(): Promise<void> {
    this.closed = true;
    this.holders = 0;
    if (this.plan) this.apply();
    await this.settled();
    await this.onClose();
  }

  /** Whether a backup holds the split now. */
  get engaged(): boolean {
    return this.holders > 0;
  }

  /** Chunk worker threads it places. */
  get workerCount(): number {
    return this.workers.size;
  }

  /** Whether the threads are split now (once the queued affinity calls ran). */
  get split(): boolean {
    return this.applied;
  }

  /**
   * One backup's hold: call it with true while the backup needs the engine thread protected
   * (volumes are being written) and false when not; repeated calls with the same value and a
   * false after close() do nothing, so the backup ends with one `false` whatever came before.
   */
  holder(): (on: boolean) => void {
    let held = false;
    return (on) => {
      if (on === held) return;
      held = on;
      if (on) this.hold();
      else this.unhold();
    };
  }

  /** A backup needs the engine thread protected (volumes are being written). */
  hold(): void {
    if (!this.plan || this.closed) return;
    if (this.holders++ === 0) this.apply();
  }

  /** That backup no longer does (the volumes went quiet, or it ended). */
  unhold(): void {
    if (!this.plan || this.closed) return;
    if (this.holders <= 0) throw new Error('the CPU split is released once per hold');
    if (--this.holders === 0) this.apply();
  }

  addWorker(tid: number): void {
    if (!this.plan) return;
    this.workers.add(tid);
    const plan = this.plan;
    this.queue(async () => {
      if (this.applied && this.workers.has(tid)) await this.setAffinity(tid, plan.workers);
    });
  }

  /** A worker exited: its id may be reused by another thread, so it is never touched again. */
  removeWorker(tid: number): void {
    this.workers.delete(tid);
  }

  /** Resolves once every affinity call asked for so far has run. */
  settled(): Promise<void> {
    return this.chain.then(() => undefined);
  }

  private queue(step: () => Promise<void>): void {
    this.chain = this.chain.then(step, step);
  }

  private apply(): void {
    const plan = this.plan!;
    this.queue(async () => {
      // Decided when the call runs, not when it was queued: the state after the last call wins.
      const want = this.holders > 0;
      if (want === this.applied) return;
      this.applied = want;
      // Every thread first (the engine thread too, for the moment of the second call), so no
      // thread the split does not know by id (the thread pool, V8's helpers) stays behind.
      // taskset stops at a thread that exits between its listing and its call: once more then.
      const cpus = want ? plan.workers : plan.all;
      if (!(await this.setAffinity(this.pid, cpus, true))) await this.setAffinity(this.pid, cpus, true);
      if (want && this.engineTid !== null) await this.setAffinity(this.engineTid, String(plan.engine));
    });
  }
}
