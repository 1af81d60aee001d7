/**
 * Client side of the control socket: what the CLI uses when an engine already owns the data
 * directory. Implements the contract's `Api` (one method per operation, generated from
 * OP_NAMES) and delivers subscribed events to `onAny`. Invariants: every request gets exactly
 * one settlement — its reply, or an IO_ERROR when the connection closes first; replies
 * are rehydrated into HoldfastError so callers see the same errors as in process.
 */
import net from 'node:net';
import { OP_NAMES, type Api, type EventName } from '../../../src-shared/contract';
import { HoldfastError, type ErrorPayload } from '../../../src-shared/errors';
import type { AnyEventListener, Disposable, EventSource } from '../event-source';
import { LineSplitter, MAX_REPLY_FRAME, SUBSCRIBE, UNSUBSCRIBE } from './protocol';

interface Pending {
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

export class ControlClient implements EventSource {
  readonly api: Api;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Set<AnyEventListener>();
  private closedError: HoldfastError | null = null;
  private readonly closeWaiters: Array<() => void> = [];

  private constructor(private readonly sock: net.Socket) {
    const api: Record<string, (input: unknown) => Promise<unknown>> = {};
    for (const op of OP_NAMES) api[op] = (input) => this.call(op, input);
    this.api = api as unknown as Api;
    const splitter = new LineSplitter(MAX_REPLY_FRAME, (line) => this.onLine(line), () => {
      this.fail(new HoldfastError('INTERNAL', 'The engine sent a reply larger than the client accepts.'));
      sock.destroy();
    });
    sock.on('data', (c: Buffer) => splitter.push(c));
    sock.on('error', (e) => this.fail(new HoldfastError('IO_ERROR', `Lost the connection to the Holdfast engine: ${e.message}`)));
    sock.on('close', () => {
      this.fail(new HoldfastError('IO_ERROR', 'The Holdfast engine closed the control connection.'));
      for (const w of this.closeWaiters.splice(0)) w();
    });
  }

  /** Connects or throws (ENOENT/ECONNREFUSED → NOT_FOUND) within `timeoutMs`. */
  static connect(path: string, timeoutMs = 2000): Promise<ControlClient> {
    return new Promise((resolve, reject) => {
      const sock = net.connect(path);
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new HoldfastError('IO_ERROR', `The control socket ${path} did not answer within ${timeoutMs} ms.`));
      }, timeoutMs);
      sock.once('connect', () => {
        clearTimeout(timer);
        sock.removeAllListeners('error');
        resolve(new ControlClient(sock));
      });
      sock.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new HoldfastError('NOT_FOUND', `No Holdfast engine is answering on ${path} (${e.code ?? e.message}).`));
      });
    });
  }

  /** Sends a raw request; exposed for ops the caller resolves by name. */
  call(op: string, input: unknown): Promise<unknown> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.sock.write(JSON.stringify({ id, op, input: input ?? {} }) + '\n');
    });
  }

  /** Subscribes this connection to events (all, or the named ones) and delivers them to onAny listeners. */
  async subscribe(events?: EventName[]): Promise<void> {
    await this.call(SUBSCRIBE, events ? { events } : {});
  }

  async unsubscribe(): Promise<void> {
    await this.call(UNSUBSCRIBE, {});
  }

  onAny(listener: AnyEventListener): Disposable {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  /** Called once when the connection ends (the engine stopped or the socket broke). */
  onClose(cb: () => void): void {
    if (this.sock.destroyed) cb();
    else this.sock.once('close', cb);
  }

  /** Alias kept for callers that think in "events of this client". */
  onEvent(listener: AnyEventListener): Disposable {
    return this.onAny(listener);
  }

  close(): Promise<void> {
    if (this.sock.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      this.closeWaiters.push(resolve);
      this.sock.end();
      setTimeout(() => this.sock.destroy(), 1000).unref();
    });
  }

  private onLine(line: string): void {
    let frame: Record<string, unknown>;
    try {
      frame = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return; // A corrupt frame from the engine cannot be routed; the request will fail on close.
    }
    if (typeof frame.event === 'string') {
      for (const l of [...this.listeners]) {
        try {
          l(frame.event as EventName, frame.payload as never);
        } catch {
          // a listener's failure is its own
        }
      }
      return;
    }
    if (typeof frame.id !== 'number') return;
    const p = this.pending.get(frame.id);
    if (!p) return;
    this.pending.delete(frame.id);
    if (frame.ok === true) p.resolve(frame.result);
    else p.reject(HoldfastError.fromPayload((frame.error as ErrorPayload) ?? { code: 'INTERNAL', message: 'Malformed reply from the engine.' }));
  }

  private fail(err: HoldfastError): void {
    if (!this.closedError) this.closedError = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}
