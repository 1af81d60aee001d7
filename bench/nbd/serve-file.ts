/**
 * Serves one image file over NBD with Holdfast's server: the process the NBD benchmark
 * measures against qemu-nbd and nbdkit. Two modes:
 *
 * - file mode (`--file IMG`): a FileExport straight on the file (the server alone);
 * - engine mode (`--engine DATA --adopt IMG`): an Engine in DATA adopts IMG 1:1 as volume
 *   `bench` (journaling on, ack mode journal) and serves it through engine.exports —
 *   every write goes through the journaled write path and hold queue, as users get it.
 *
 * In engine mode stdin takes commands so the benchmark can measure writes during a backup:
 *   `backup-on [VOLUME]` — starts full `range`-policy backups of VOLUME (default `bench`) into
 *                  DATA's default vault, one after another until `backup-off`; answers
 *                  `BACKUP-ON` once the first has begun. With `--adopt-other IMG2` the volume
 *                  `bench-other` (IMG2 adopted 1:1) lets the benchmark back up a volume nobody
 *                  writes: the machine load of a backup without any hold on `bench` (after its
 *                  first round every chunk is already in the vault: later rounds read and hash,
 *                  and write nothing);
 *   `hold-on [VOLUME]` — the same loop without a data path: each round begins a `range`-policy
 *                  session on VOLUME and marks its 4 MiB ranges copied at the busy throttle's
 *                  rate (what a throttled backup reads), reading nothing, storing nothing, then
 *                  aborts it (no snapshot). Writes are held and released exactly as during a
 *                  backup, so this measures the hold/release machinery alone;
 *   `backup-off` — stops either loop, waits for the running round, answers
 *                  `BACKUP-OFF {"backups":n,"completed":n,"maxHeld":n,"maxHeldMiB":n,"maxArrayBuffersMiB":n,"maxRssMiB":n,…}` (held data and the
 *                  ArrayBuffer memory holding it, event-loop
 *                  delay and garbage-collector pauses while it ran: the NBD server shares the
 *                  thread with the backup's own work);
 *   `backup2-on [VOLUME]` / `backup2-off` — a second, independent backup loop (default
 *                  `bench-other`), so `hold-on bench` plus `backup2-on` puts the hold machinery
 *                  and another volume's backup on the machine at once;
 *   `gc` — answers `GC {"count":n,"totalMs":n,"maxMs":n,"major":n}`: this thread's collector
 *                  pauses since the previous `gc` (or the start).
 * Prints "READY …" once listening; exits on SIGTERM/SIGINT after closing everything.
 *
 *   node dist/bench/nbd-serve-file.cjs --file IMG --socket SOCK [--tcp PORT] [--name NAME] [--read-only] [--sync-io-max BYTES]
 *   node dist/bench/nbd-serve-file.cjs --engine DATA --adopt IMG [--adopt-other IMG2] --socket SOCK
 */
import fs from 'node:fs';
import { monitorEventLoopDelay, performance as perfHooks, PerformanceObserver, constants as perfConstants } from 'node:perf_hooks';
import readline from 'node:readline';
import type { ExportRegistry } from '../../src-main/engine/block-export';
import { BUSY_BYTES_PER_SEC } from '../../src-main/engine/backup/backup-pacer';
import { Engine } from '../../src-main/engine/engine';
import { DEFAULT_CHUNK_SIZE } from '../../src-main/engine/vault/format';
import { nodeEnv } from '../../src-main/engine/env/node-env';
import { FileExport } from '../../src-main/nbd/file-export';
import { NbdServer } from '../../src-main/nbd/server';
import { StaticExportRegistry } from '../../src-main/nbd/static-registry';
import { tuneGcForServing } from '../../src-main/host/gc-tuning';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const VOLUME = 'bench';
/** NBD_BENCH_THROTTLE=auto|off: the backups' throttle (default: the engine's, auto). */
const THROTTLE = process.env.NBD_BENCH_THROTTLE === 'off' || process.env.NBD_BENCH_THROTTLE === 'auto' ? process.env.NBD_BENCH_THROTTLE : undefined;
const OTHER = 'bench-other';

/** Garbage-collector pauses of this thread (the one that serves NBD) since the last take(). */
class GcPauses {
  private s = GcPauses.zero();
  private static zero() {
    return { count: 0, totalMs: 0, maxMs: 0, major: 0 };
  }
  /** `log`: also every pause as (epoch ms, ms, major 0|1, kind, flags), for HOLDFAST_BENCH_GC_LOG. */
  constructor(log: number[] | null = null) {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const detail = (e as unknown as { detail?: { kind?: number; flags?: number } }).detail;
        const major = detail?.kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR;
        this.s.count++;
        this.s.totalMs += e.duration;
        this.s.maxMs = Math.max(this.s.maxMs, e.duration);
        if (major) this.s.major++;
        log?.push(performance.timeOrigin + e.startTime, e.duration, major ? 1 : 0, detail?.kind ?? 0, detail?.flags ?? 0);
      }
    }).observe({ entryTypes: ['gc'] });
  }
  take(): ReturnType<typeof GcPauses.zero> {
    const s = this.s;
    this.s = GcPauses.zero();
    return { ...s, totalMs: Math.round(s.totalMs * 10) / 10, maxMs: Math.round(s.maxMs * 100) / 100 };
  }
}

/**
 * HOLDFAST_BENCH_GC_LOG=FILE: every collector pause of this thread, written to FILE at exit as
 * lines "start duration major kind flags" (epoch ms, ms, 0|1, and perf_hooks' gc kind and flags:
 * kind 1 minor, 2 major, 4 incremental marking step, 8 weak callbacks; flags 32 =
 * NODE_PERFORMANCE_GC_FLAGS_ALL_EXTERNAL_MEMORY, a collection V8 started because memory held
 * outside its heap — ArrayBuffers such as held-payload slabs — grew past its limit), to line slow
 * requests up with pauses.
 */
const gcLogPath = process.env.HOLDFAST_BENCH_GC_LOG;
const gcLog: number[] = [];

/** For the `gc` command (the backup loop keeps its own), and the pause log. */
const gcPauses = new GcPauses(gcLogPath ? gcLog : null);
/**
 * HOLDFAST_BENCH_SIGNAL_LOG=FILE: what the engine itself sees of its clients' latency, every
 * 200 ms, written to FILE at exit: `epoch-ms eld-p50 eld-p90 eld-p99 (µs, 1 ms timer intervals)
 * engine-thread-run-ms run-queue-wait-ms loop-utilisation timer-samples`, and from backup
 * progress events `R epoch-ms throttle-MiB/s` (the adaptive throttle's rate; `-` at full speed),
 * and from hold events (at most every 200 ms) `J epoch-ms journal-fill held-writes held-bytes÷capacity`
 * of `bench` (the throttle's hold pressure).
 * bench/nbd/signal-phases.py lines these up with a latency-alternate.sh run.
 */
const sigPath = process.env.HOLDFAST_BENCH_SIGNAL_LOG;
const sigLines: string[] = [];
if (sigPath) {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  let last = fs.readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ').map(Number);
  let elu = perfHooks.eventLoopUtilization();
  setInterval(() => {
    const s = fs.readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ').map(Number);
    const e2 = perfHooks.eventLoopUtilization(elu);
    elu = perfHooks.eventLoopUtilization();
    sigLines.push(`${Date.now()} ${(h.percentile(50) / 1e3).toFixed(0)} ${(h.percentile(90) / 1e3).toFixed(0)} ${(h.percentile(99) / 1e3).toFixed(0)} ${((s[0]! - last[0]!) / 1e6).toFixed(1)} ${((s[1]! - last[1]!) / 1e6).toFixed(1)} ${e2.utilization.toFixed(3)} ${h.count}`);
    last = s;
    h.reset();
  }, 200).unref();
  process.on('exit', () => fs.writeFileSync(sigPath, sigLines.join('\n') + '\n'));
}
function writeGcLog(): void {
  if (!gcLogPath) return;
  const lines: string[] = [];
  for (let i = 0; i < gcLog.length; i += 5) lines.push(`${gcLog[i]!.toFixed(3)} ${gcLog[i + 1]!.toFixed(3)} ${gcLog[i + 2]} ${gcLog[i + 3]} ${gcLog[i + 4]}`);
  fs.writeFileSync(gcLogPath, lines.join('\n') + '\n');
}

/** How fast a hold-only round marks ranges copied: HOLDFAST_BENCH_HOLD_MIBS (MiB/s), else the busy throttle's ceiling. */
const HOLD_BYTES_PER_SEC = Number(process.env.HOLDFAST_BENCH_HOLD_MIBS ?? 0) * 2 ** 20 || BUSY_BYTES_PER_SEC;

/**
 * One hold-only round: a range session whose ranges are marked copied at the busy rate, then
 * aborted. It looks at `running` at least every 100 ms, so a slow rate (HOLDFAST_BENCH_HOLD_MIBS
 * of 0.001: nothing released until the end, holding alone) still ends when the round is called off.
 */
async function holdRound(engine: Engine, volume: string, running: () => boolean, began: () => void): Promise<boolean> {
  const session = await engine.beginBackup(volume, 'range', `hold-only-${Date.now()}`);
  began();
  const step = DEFAULT_CHUNK_SIZE; // what a backup reads and marks copied at a time
  const t0 = performance.now();
  try {
    for (let off = 0; off < session.size && running(); ) {
      const due = t0 + (off / HOLD_BYTES_PER_SEC) * 1000;
      if (performance.now() >= due) {
        session.rangeCopied(off, Math.min(step, session.size - off));
        off += step;
        continue;
      }
      await new Promise((r) => setTimeout(r, Math.min(100, due - performance.now())));
    }
  } finally {
    await session.abort('hold-only round over');
  }
  return true;
}

interface LoopStats {
  backups: number;
  completed: number;
  maxHeld: number;
  /** Largest heldBytes of the measured volume, and largest ArrayBuffer memory of the process (sampled every 100 ms), in MiB. */
  maxHeldMiB: number;
  maxArrayBuffersMiB: number;
  /** The process's resident memory at its peak (sampled every 100 ms): held payloads kept in memory show here. */
  maxRssMiB: number;
  backupMs: number;
  wallMs: number;
  /** Event-loop delay while the loop ran (the NBD server shares this thread). */
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
  gc: ReturnType<GcPauses['take']> | null;
}

const LoopStatsZero = (): LoopStats => ({ backups: 0, completed: 0, maxHeld: 0, maxHeldMiB: 0, maxArrayBuffersMiB: 0, maxRssMiB: 0, backupMs: 0, wallMs: 0, loopDelayP99Ms: 0, loopDelayMaxMs: 0, gc: null });

/** Back-to-back range-policy backups (or hold-only rounds) while `running`; counts what happened. */
class BackupLoop {
  private running = false;
  private loop: Promise<void> | null = null;
  private stats: LoopStats = LoopStatsZero();
  private readonly delay = monitorEventLoopDelay({ resolution: 5 });
  private readonly gc = new GcPauses();
  private began: (() => void) | null = null;
  /** From start() until the last round has ended: held data and memory are sampled meanwhile. */
  private collecting = false;
  /** The volume the rounds back up (its holds are the ones counted). */
  private volume = VOLUME;

  constructor(private readonly engine: Engine) {
    engine.events.on('holds.changed', (h) => {
      // `collecting`, not `running`: a one-round caller (latency-alternate.sh) sends backup-off
      // right after BACKUP-ON, and the round it measures runs on after `running` is cleared.
      if (this.collecting && h.volume === this.volume) {
        this.stats.maxHeld = Math.max(this.stats.maxHeld, h.heldCount);
        this.stats.maxHeldMiB = Math.max(this.stats.maxHeldMiB, h.heldBytes / 2 ** 20);
      }
    });
  }

  async start(volume: string, mode: 'backup' | 'hold' = 'backup'): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.collecting = true;
    this.volume = volume;
    this.stats = LoopStatsZero();
    this.delay.reset();
    this.delay.enable();
    this.gc.take();
    const t0 = Date.now();
    this.memTimer = setInterval(() => {
      this.stats.maxArrayBuffersMiB = Math.max(this.stats.maxArrayBuffersMiB, process.memoryUsage().arrayBuffers / 2 ** 20);
      this.stats.maxRssMiB = Math.max(this.stats.maxRssMiB, process.memoryUsage.rss() / 2 ** 20);
    }, 100);
    const first = new Promise<void>((r) => (this.began = r));
    this.loop = (async () => {
      while (this.running) {
        const t = Date.now();
        // Waits for the backup to end (no polling of the backup list: that is a catalog query
        // on the thread that serves NBD, and it would be the bench's load, not the backup's).
        const began = this.began;
        this.began = null;
        const run =
          mode === 'hold'
            ? holdRound(this.engine, volume, () => this.running, () => began?.())
            : this.engine.api['backup.start']({ volume, policy: 'range', full: true, ...(THROTTLE ? { throttle: THROTTLE } : {}) });
        this.stats.backups++;
        let sub: { dispose(): void } | null = null;
        if (began) {
          // Begun once the volume's flag is set (start() sets it before it streams anything);
          // a hold-only round says so itself, right after its session begins.
          if (mode === 'backup')
            sub = this.engine.events.on('backup.progress', (p) => {
              if (p.volume === volume) {
                sub?.dispose();
                began();
              }
            });
          const settled = () => {
            sub?.dispose();
            began(); // a start that failed before beginning still answers BACKUP-ON
          };
          run.then(settled, settled);
        }
        if (await run.then(() => true, () => false)) this.stats.completed++;
        this.stats.backupMs += Date.now() - t;
      }
      this.stats.wallMs = Date.now() - t0;
    })();
    this.loop.catch((e: unknown) => {
      process.stderr.write(`nbd-serve-file: backup loop failed: ${(e as Error).message}\n`);
      this.began?.();
    });
    await first;
  }

  private memTimer: ReturnType<typeof setInterval> | null = null;

  async stop(): Promise<LoopStats> {
    this.running = false;
    await this.loop?.catch(() => undefined);
    this.loop = null;
    this.collecting = false;
    if (this.memTimer) clearInterval(this.memTimer);
    this.memTimer = null;
    this.delay.disable();
    this.stats.loopDelayP99Ms = this.delay.percentile(99) / 1e6;
    this.stats.loopDelayMaxMs = this.delay.max / 1e6;
    this.stats.gc = this.gc.take();
    return this.stats;
  }
}

async function main(): Promise<void> {
  // Under --cpu-prof: the monotonic clock (the profile's timestamps, µs) against wall time, to line
  // a profile's samples up with a latency-alternate.sh run's request log.
  if (process.execArgv.some((a) => a.startsWith('--cpu-prof')))
    process.stderr.write(`CLOCK epochMs=${Date.now()} monoUs=${process.hrtime.bigint() / 1000n}\n`);
  const file = arg('file');
  const dataDir = arg('engine');
  const adopt = arg('adopt');
  const socket = arg('socket');
  const tcp = arg('tcp');
  if ((!file && !(dataDir && adopt)) || (!socket && !tcp)) {
    process.stderr.write(
      'usage: nbd-serve-file (--file IMG | --engine DATA --adopt IMG) (--socket SOCK | --tcp PORT) [--name NAME] [--read-only] [--sync-io-max BYTES]\n',
    );
    process.exit(2);
  }
  const closers: Array<() => Promise<void>> = [];
  let registry: ExportRegistry;
  let loop: BackupLoop | null = null;
  let loop2: BackupLoop | null = null;
  if (dataDir && adopt) {
    tuneGcForServing(); // as the hosts that keep the engine running do
    const engine = await Engine.open({ dataDir });
    if (sigPath) {
      engine.events.on('backup.progress', (p) => {
        if (p.state === 'running') sigLines.push(`R ${Date.now()} ${p.throttledToMiBPerSec ?? '-'}`);
      });
      let lastJ = 0;
      engine.events.on('holds.changed', (h) => {
        const now = Date.now();
        if (h.volume !== VOLUME || now - lastJ < 200) return;
        lastJ = now;
        sigLines.push(`J ${now} ${(h.journalBytes / h.journalCapacity).toFixed(3)} ${h.heldCount} ${(h.heldBytes / h.journalCapacity).toFixed(3)}`);
      });
    }
    closers.push(() => engine.close());
    const have = (n: string) => engine.manager.listVolumes().some((v) => v.name === n);
    if (!have(VOLUME)) await engine.api['volume.adopt']({ path: adopt, name: VOLUME });
    const other = arg('adopt-other');
    if (other && !have(OTHER)) await engine.api['volume.adopt']({ path: other, name: OTHER });
    registry = engine.exports; // disposed by engine.close()
    loop = new BackupLoop(engine);
    loop2 = new BackupLoop(engine);
  } else {
    const syncIoMax = arg('sync-io-max');
    const ex = await FileExport.open(nodeEnv, file!, {
      name: arg('name') ?? '',
      readOnly: process.argv.includes('--read-only'),
      ...(syncIoMax !== undefined ? { syncIoMax: Number(syncIoMax) } : {}),
    });
    closers.push(() => ex.close());
    registry = new StaticExportRegistry([ex]);
  }
  const server = new NbdServer(registry, {
    log: process.argv.includes('--verbose') ? (m) => process.stderr.write(`${m}\n`) : undefined,
  });
  closers.push(() => server.close());
  if (socket) await server.listenUnix(socket);
  let port: number | undefined;
  if (tcp) port = (await server.listenTcp(Number(tcp))).port;
  process.stdout.write(`READY ${JSON.stringify({ socket, port, export: loop ? VOLUME : (arg('name') ?? '') })}\n`);

  if (loop) {
    const l = loop;
    const rl = readline.createInterface({ input: process.stdin });
    rl.on('line', (line) => {
      const [cmd, volume] = line.trim().split(/\s+/);
      if (cmd === 'backup-on' || cmd === 'hold-on') void l.start(volume ?? VOLUME, cmd === 'hold-on' ? 'hold' : 'backup').then(() => process.stdout.write('BACKUP-ON\n'));
      else if (cmd === 'gc') process.stdout.write(`GC ${JSON.stringify(gcPauses.take())}\n`);
      else if (cmd === 'backup-off') void l.stop().then((s) => process.stdout.write(`BACKUP-OFF ${JSON.stringify(s)}\n`));
      else if (cmd === 'backup2-on') void loop2?.start(volume ?? OTHER, 'backup').then(() => process.stdout.write('BACKUP-ON\n'));
      else if (cmd === 'backup2-off') void loop2?.stop().then((s) => process.stdout.write(`BACKUP-OFF ${JSON.stringify(s)}\n`));
    });
  }

  const stop = async () => {
    await loop?.stop();
    await loop2?.stop();
    for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
    writeGcLog();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
}

main().catch((e: unknown) => {
  process.stderr.write(`nbd-serve-file: ${(e as Error).message}\n`);
  process.exit(1);
});
