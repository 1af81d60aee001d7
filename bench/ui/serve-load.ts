/**
 * `holdfast serve` with a write load generator in the same process: the UI benchmark's second
 * writer. fio over NBD tops out near 30k writes/s on a 2-core machine (fio itself costs
 * ~12 µs of CPU per write, and shares the cores with Chromium and the engine); this writer
 * calls the volume's write path directly — journal, hold queue, release, events, exactly as
 * NBD writes do after parsing — so the hold panel is measured at the rate the engine itself
 * sustains (it asks for 50,000 writes/s), without fio's and NBD's share of the CPU.
 *
 *   node dist/bench/ui-serve-load.cjs --data DIR
 *
 * Prints `Holdfast UI: URL` first (as `holdfast serve`), then `NBD: SOCKET` (for filling a
 * volume with nbdcopy). Commands on stdin:
 *   `load VOLUME RATE SPAN` — 4 KiB writes at RATE per second to random 4 KiB blocks of the
 *                             first SPAN bytes of VOLUME, at most 64 in flight; answers `LOAD-ON`;
 *   `load-off`              — stops, waits for the writes in flight, answers
 *                             `LOAD-OFF {"writes":n,"seconds":s,"perSec":r,"errors":n,"maxInFlight":n}`.
 * Every write carries its own bytes (a held write keeps its buffer until released).
 */
import path from 'node:path';
import readline from 'node:readline';
import { Engine } from '../../src-main/engine/engine';
import type { LiveVolume } from '../../src-main/engine/volumes/live-volume';
import { startServeHost } from '../../src-main/host/serve/server';
import { NbdServer } from '../../src-main/nbd/server';

function arg(name: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (!v) throw new Error(`--${name} is required`);
  return v;
}

const BLOCK = 4096;
const MAX_IN_FLIGHT = 64;
const SLAB = 256 * 1024;
const TEMPLATE = Buffer.alloc(BLOCK, 0x5a);

/**
 * Paced random 4 KiB writes: RATE per second on average from the start, at most 64 in flight.
 * Writes that fell due while the window was full go out as soon as completions allow (a stall
 * is caught up, not forgiven), so the rate reported is what the engine sustained up to RATE.
 */
class WriteLoad {
  private running = false;
  private inFlight = 0;
  private issued = 0;
  private done = 0;
  private errors = 0;
  private maxInFlight = 0;
  private t0 = 0;
  private timer: NodeJS.Timeout | null = null;
  private drained: (() => void) | null = null;
  private seq = 0;
  private slab = Buffer.alloc(0);
  private slabAt = 0;
  private topUp = false;

  constructor(
    private readonly vol: LiveVolume,
    private readonly rate: number,
    private readonly span: number,
  ) {}

  start(): void {
    this.running = true;
    this.t0 = performance.now();
    this.timer = setInterval(() => this.issue(), 1);
  }

  private issue(): void {
    if (!this.running) return;
    const due = Math.floor(((performance.now() - this.t0) / 1000) * this.rate);
    const blocks = this.span / BLOCK;
    while (this.issued < due && this.inFlight < MAX_IN_FLIGHT) {
      // Writes share 256 KiB slabs, as NBD writes share the socket's read chunks.
      if (this.slabAt + BLOCK > this.slab.length) {
        this.slab = Buffer.allocUnsafeSlow(SLAB);
        this.slabAt = 0;
      }
      const data = this.slab.subarray(this.slabAt, this.slabAt + BLOCK);
      this.slabAt += BLOCK;
      // The bytes are copied in, as a socket read copies a request's data into the server's buffer.
      TEMPLATE.copy(data);
      data.writeUInt32LE(++this.seq, 0);
      this.issued++;
      this.inFlight++;
      this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
      this.vol.write(Math.floor(Math.random() * blocks) * BLOCK, data, { stable: true }).then(
        () => this.settle(false),
        () => this.settle(true),
      );
    }
    // Behind (the engine stalled, or is slower than asked): the writes not issued yet stay due and
    // go out as completions allow, as fio's rate_iops catches up; the rate reported is what flowed.
  }

  private settle(failed: boolean): void {
    this.inFlight--;
    this.done++;
    if (failed) this.errors++;
    if (this.running) {
      // Completions top up in one batch per loop turn, as an NBD server reads the requests that
      // arrived meanwhile in one go (and the journal writes a turn's records with one write).
      if (!this.topUp) {
        this.topUp = true;
        setImmediate(() => {
          this.topUp = false;
          this.issue();
        });
      }
    } else if (this.inFlight === 0) this.drained?.();
  }

  async stop(): Promise<{ writes: number; seconds: number; perSec: number; errors: number; maxInFlight: number }> {
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    const seconds = (performance.now() - this.t0) / 1000;
    if (this.inFlight > 0) await new Promise<void>((r) => (this.drained = r));
    return { writes: this.done, seconds: +seconds.toFixed(2), perSec: Math.round(this.done / seconds), errors: this.errors, maxInFlight: this.maxInFlight };
  }
}

async function main(): Promise<void> {
  const dataDir = arg('data');
  const engine = await Engine.open({ dataDir });
  const socket = path.join(engine.dataDirPath, 'nbd.sock');
  const nbd = new NbdServer(engine.exports, { log: () => undefined });
  await nbd.listenUnix(socket);
  engine.setNbdAddress({ socket, tcp: null });
  const host = await startServeHost({ api: engine.api, events: engine.events, port: 0, rendererDir: path.join(__dirname, '..', 'renderer') });
  process.stdout.write(`Holdfast UI: ${host.url}\nNBD: ${socket}\n`);

  let load: WriteLoad | null = null;
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const [cmd, volume, rate, span] = line.trim().split(/\s+/);
    void (async () => {
      if (cmd === 'load' && !load) {
        load = new WriteLoad(engine.volume(volume!), Number(rate), Number(span));
        load.start();
        process.stdout.write('LOAD-ON\n');
      } else if (cmd === 'load-off' && load) {
        const r = await load.stop();
        load = null;
        process.stdout.write(`LOAD-OFF ${JSON.stringify(r)}\n`);
      }
    })().catch((e: unknown) => process.stderr.write(`ui-serve-load: ${(e as Error).message}\n`));
  });

  const stop = async () => {
    rl.close();
    await load?.stop();
    await host.close();
    await nbd.close();
    await engine.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}

main().catch((e: unknown) => {
  process.stderr.write(`ui-serve-load: ${(e as Error).message}\n`);
  process.exit(1);
});
