/**
 * A real engine in a temp data directory, served by the real NbdServer on `<data>/nbd.sock`
 * through the engine's own registry `engine.exports` (live volumes + `<volume>@<snapshot>`
 * read-only snapshots, exactly what `holdfast nbd` serves),
 * plus a qemu-io writer driven over stdin whose every acknowledged write is known in order.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Engine } from '../../src-main/engine/engine';
import type { EngineExportRegistry } from '../../src-main/engine/nbd-exports';
import { NbdServer } from '../../src-main/nbd/server';

export { mustRun, run } from '../nbd/fixture';

export interface EngineServed {
  dir: string;
  dataDir: string;
  socket: string;
  engine: Engine;
  registry: EngineExportRegistry;
  server: NbdServer;
  logs: string[];
  uri(name: string): string;
  cleanup(): Promise<void>;
}

/** Opens an engine with one sparse device file and serves it over NBD. */
export async function serveEngine(opts: { deviceBytes?: number } = {}): Promise<EngineServed> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hf-nbde-'));
  const dataDir = path.join(dir, 'data');
  const engine = await Engine.open({ dataDir });
  await engine.api['device.add']({ path: path.join(dir, 'disk.img'), create: true, size: opts.deviceBytes ?? 512 << 20 });
  const registry = engine.exports;
  const logs: string[] = [];
  const server = new NbdServer(registry, { log: (m) => logs.push(m) });
  const socket = path.join(dataDir, 'nbd.sock');
  await server.listenUnix(socket);
  engine.setNbdAddress({ socket, tcp: null });
  const served: EngineServed = {
    dir,
    dataDir,
    socket,
    engine,
    registry,
    server,
    logs,
    uri: (name) => `nbd+unix:///${name}?socket=${socket}`,
    // Reads the fields at cleanup time: a test may replace them (engine restart).
    cleanup: async () => {
      await served.server.close();
      await served.engine.close(); // disposes engine.exports
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return served;
}

export interface PlannedWrite {
  /** 1-based position in the write sequence. */
  seq: number;
  offset: number;
  length: number;
  byte: number;
}

/**
 * qemu-io fed one `write -P` command at a time over stdin (qemu-io runs them sequentially,
 * one NBD request in flight), a few commands ahead. `acked` counts "wrote" lines (writes
 * the server acknowledged), `sent` counts commands handed to qemu-io: at any moment every
 * write ≤ acked reached the server's ack and no write > sent had been issued.
 */
export class QemuIoWriter {
  readonly writes: PlannedWrite[] = [];
  sent = 0;
  acked = 0;
  readonly failures: string[] = [];
  private readonly proc: ChildProcessWithoutNullStreams;
  private stopping = false;
  private pending = '';
  private readonly exited: Promise<number>;
  private readonly ackWaiters: Array<{ n: number; resolve: () => void }> = [];
  private rng: number;

  constructor(
    uri: string,
    private readonly span: number,
    opts: { seed?: number; maxBlocks?: number; window?: number } = {},
  ) {
    this.rng = opts.seed ?? 7;
    const maxBlocks = opts.maxBlocks ?? 4;
    const window = opts.window ?? 4;
    this.proc = spawn('stdbuf', ['-oL', 'qemu-io', '-f', 'raw', uri], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => this.proc.on('close', (code) => resolve(code ?? -1)));
    this.proc.stderr.on('data', (d: Buffer) => this.failures.push(d.toString()));
    this.proc.stdin.on('error', () => undefined);
    const next = () => {
      if (this.stopping) return;
      const seq = this.writes.length + 1;
      const n = 1 + Math.floor(this.random() * maxBlocks);
      const block = Math.floor(this.random() * (this.span / 4096 - n));
      const w = { seq, offset: block * 4096, length: n * 4096, byte: 1 + (seq % 251) };
      this.writes.push(w);
      this.sent = seq;
      this.proc.stdin.write(`write -P ${w.byte} ${w.offset} ${w.length}\n`);
    };
    this.proc.stdout.on('data', (d: Buffer) => {
      this.pending += d.toString();
      const lines = this.pending.split('\n');
      this.pending = lines.pop()!;
      for (const line of lines) {
        const m = /wrote (\d+)\/(\d+) bytes at offset (\d+)/.exec(line);
        if (m) {
          const w = this.writes[this.acked];
          if (!w || Number(m[3]) !== w.offset || Number(m[1]) !== w.length) this.failures.push(`unexpected ack: ${line}`);
          this.acked++;
          for (const waiter of this.ackWaiters.splice(0)) {
            if (this.acked >= waiter.n) waiter.resolve();
            else this.ackWaiters.push(waiter);
          }
          next();
        } else if (/fail|error/i.test(line)) this.failures.push(line);
      }
    });
    for (let i = 0; i < window; i++) next();
  }

  private random(): number {
    this.rng = (this.rng * 1103515245 + 12345) & 0x7fffffff;
    return this.rng / 0x7fffffff;
  }

  /** Resolves once at least n writes were acknowledged. */
  waitAcked(n: number): Promise<void> {
    if (this.acked >= n) return Promise.resolve();
    return new Promise((resolve) => this.ackWaiters.push({ n, resolve }));
  }

  /** Stops issuing, waits for every issued write's acknowledgement, ends qemu-io. */
  async stop(): Promise<number> {
    this.stopping = true;
    this.proc.stdin.end('quit\n');
    const code = await this.exited;
    return code;
  }

  /** The volume image after writes 1..k (of a zeroed volume of `size` bytes). */
  model(k: number, size: number): Buffer {
    const m = Buffer.alloc(size);
    for (const w of this.writes) if (w.seq <= k) m.fill(w.byte, w.offset, w.offset + w.length);
    return m;
  }

  /** The k in [lo, hi] for which image equals model(k), or null if none does. */
  prefixOf(image: Buffer, lo: number, hi: number): number | null {
    const m = this.model(lo, image.length);
    for (let k = lo; ; k++) {
      if (m.equals(image)) return k;
      if (k >= hi) return null;
      const w = this.writes[k]!; // write k+1
      m.fill(w.byte, w.offset, w.offset + w.length);
    }
  }
}

export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 60_000, what = 'condition'): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
