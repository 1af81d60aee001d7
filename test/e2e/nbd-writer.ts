/**
 * A real writer on a Holdfast volume over NBD: one `qemu-io` process reading commands from a
 * pipe, each `write -P PATTERN OFFSET 4096` filling one 4 KiB block with one byte. qemu-io runs
 * one command at a time, so writes are issued and acknowledged strictly in order; `acked`
 * counts the "wrote …" lines it prints. Invariant: `writes[i]` is the (i+1)-th write sent, and
 * the first `acked` of them have been acknowledged by the NBD server.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export const BLOCK = 4096;

export interface BlockWrite {
  block: number;
  pattern: number;
}

export class QemuIoWriter {
  readonly writes: BlockWrite[] = [];
  acked = 0;
  private readonly child: ChildProcess;
  private stopped = false;
  private readonly exited: Promise<number | null>;
  private err = '';
  private tail = '';

  /** `next(i)` names the block and pattern of the i-th write (0-based). `window` bounds writes in flight in the pipe. */
  constructor(uri: string, private readonly next: (i: number) => BlockWrite, private readonly window = 16) {
    this.child = spawn('qemu-io', ['-f', 'raw', uri], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.exited = new Promise((r) => this.child.once('exit', (code) => r(code)));
    this.child.stderr!.on('data', (c) => (this.err += c));
    this.child.stdout!.on('data', (c: Buffer) => {
      const text = this.tail + c.toString('latin1');
      const parts = text.split('\n');
      this.tail = parts.pop()!;
      for (const line of parts) if (/wrote \d+\/\d+ bytes at offset/.test(line)) this.acked++;
      this.pump();
    });
    this.child.stdin!.on('error', () => undefined);
    this.pump();
  }

  private pump(): void {
    if (this.stopped) return;
    let cmds = '';
    while (this.writes.length - this.acked < this.window) {
      const w = this.next(this.writes.length);
      this.writes.push(w);
      cmds += `write -P ${w.pattern} ${w.block * BLOCK} ${BLOCK}\n`;
    }
    if (cmds) this.child.stdin!.write(cmds);
  }

  /** Resolves once at least `n` writes have been acknowledged in total. */
  async waitAcked(n: number, timeoutMs = 30_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (this.acked < n) {
      if (this.child.exitCode !== null) throw new Error(`qemu-io exited: ${this.err}`);
      if (Date.now() > until) throw new Error(`qemu-io acknowledged ${this.acked} of ${n} writes in ${timeoutMs} ms; stderr: ${this.err}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Stops issuing; waits until every write sent has been acknowledged and qemu-io has quit. */
  async stop(): Promise<void> {
    if (this.stopped) return void (await this.exited);
    this.stopped = true;
    this.child.stdin!.end('quit\n');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
    const code = await this.exited;
    clearTimeout(t);
    if (code !== 0) throw new Error(`qemu-io exited with ${code}: ${this.err}`);
    if (this.acked !== this.writes.length) throw new Error(`qemu-io acknowledged ${this.acked} of ${this.writes.length} writes`);
  }
}
