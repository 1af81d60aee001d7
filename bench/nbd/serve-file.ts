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
 *                  writes: the machine load of a backup without any hold on `bench`;
 *   `backup-off` — stops the loop, waits for the running backup, answers
 *                  `BACKUP-OFF {"backups":n,"completed":n,"maxHeld":n,…,"loopDelayP99Ms":n}` (event-loop delay
 *                  while it ran: the NBD server shares the thread with the backup's own work).
 * Prints "READY …" once listening; exits on SIGTERM/SIGINT after closing everything.
 *
 *   node dist/bench/nbd-serve-file.cjs --file IMG --socket SOCK [--tcp PORT] [--name NAME] [--read-only] [--sync-io-max BYTES]
 *   node dist/bench/nbd-serve-file.cjs --engine DATA --adopt IMG [--adopt-other IMG2] --socket SOCK
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import readline from 'node:readline';
import type { ExportRegistry } from '../../src-main/engine/block-export';
import { Engine } from '../../src-main/engine/engine';
import { nodeEnv } from '../../src-main/engine/env/node-env';
import { FileExport } from '../../src-main/nbd/file-export';
import { NbdServer } from '../../src-main/nbd/server';
import { StaticExportRegistry } from '../../src-main/nbd/static-registry';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const VOLUME = 'bench';
/** NBD_BENCH_THROTTLE=auto|off: the backups' throttle (default: the engine's, auto). */
const THROTTLE = process.env.NBD_BENCH_THROTTLE === 'off' || process.env.NBD_BENCH_THROTTLE === 'auto' ? process.env.NBD_BENCH_THROTTLE : undefined;
const OTHER = 'bench-other';

interface LoopStats {
  backups: number;
  completed: number;
  maxHeld: number;
  backupMs: number;
  wallMs: number;
  /** Event-loop delay while the loop ran (the NBD server shares this thread). */
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
}

const LoopStatsZero = (): LoopStats => ({ backups: 0, completed: 0, maxHeld: 0, backupMs: 0, wallMs: 0, loopDelayP99Ms: 0, loopDelayMaxMs: 0 });

/** Back-to-back range-policy backups while `running`; counts what happened. */
class BackupLoop {
  private running = false;
  private loop: Promise<void> | null = null;
  private stats: LoopStats = LoopStatsZero();
  private readonly delay = monitorEventLoopDelay({ resolution: 5 });
  private began: (() => void) | null = null;

  constructor(private readonly engine: Engine) {
    engine.events.on('holds.changed', (h) => {
      if (this.running && h.volume === VOLUME) this.stats.maxHeld = Math.max(this.stats.maxHeld, h.heldCount);
    });
  }

  async start(volume: string): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.stats = LoopStatsZero();
    this.delay.reset();
    this.delay.enable();
    const t0 = Date.now();
    const first = new Promise<void>((r) => (this.began = r));
    this.loop = (async () => {
      while (this.running) {
        const t = Date.now();
        // Waits for the backup to end (no polling of the backup list: that is a catalog query
        // on the thread that serves NBD, and it would be the bench's load, not the backup's).
        const run = this.engine.api['backup.start']({ volume, policy: 'range', full: true, ...(THROTTLE ? { throttle: THROTTLE } : {}) });
        this.stats.backups++;
        let sub: { dispose(): void } | null = null;
        if (this.began) {
          // Begun once the volume's flag is set (start() sets it before it streams anything).
          const began = this.began;
          this.began = null;
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

  async stop(): Promise<LoopStats> {
    this.running = false;
    await this.loop?.catch(() => undefined);
    this.loop = null;
    this.delay.disable();
    this.stats.loopDelayP99Ms = this.delay.percentile(99) / 1e6;
    this.stats.loopDelayMaxMs = this.delay.max / 1e6;
    return this.stats;
  }
}

async function main(): Promise<void> {
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
  if (dataDir && adopt) {
    const engine = await Engine.open({ dataDir });
    closers.push(() => engine.close());
    const have = (n: string) => engine.manager.listVolumes().some((v) => v.name === n);
    if (!have(VOLUME)) await engine.api['volume.adopt']({ path: adopt, name: VOLUME });
    const other = arg('adopt-other');
    if (other && !have(OTHER)) await engine.api['volume.adopt']({ path: other, name: OTHER });
    registry = engine.exports; // disposed by engine.close()
    loop = new BackupLoop(engine);
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
      if (cmd === 'backup-on') void l.start(volume ?? VOLUME).then(() => process.stdout.write('BACKUP-ON\n'));
      else if (cmd === 'backup-off') void l.stop().then((s) => process.stdout.write(`BACKUP-OFF ${JSON.stringify(s)}\n`));
    });
  }

  const stop = async () => {
    await loop?.stop();
    for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
}

main().catch((e: unknown) => {
  process.stderr.write(`nbd-serve-file: ${(e as Error).message}\n`);
  process.exit(1);
});
