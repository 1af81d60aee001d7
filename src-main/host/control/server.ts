/**
 * The control socket server: lets a second `holdfast` process drive the engine that owns the
 * data directory. Owns `<data>/control.sock` while listening. Invariants: the socket file is
 * created with mode 0600 (only the owner's user can connect — the socket is as privileged as
 * the engine); a stale socket left by a dead owner is removed before listening, but a socket
 * that still answers is never stolen; every request goes through the contract router; a
 * malformed frame gets an error reply and never throws out of the connection handler; a
 * client that stops reading is disconnected before its buffered output grows unbounded.
 */
import net from 'node:net';
import fs from 'node:fs';
import { events as eventSchemas, type Api, type EventName } from '../../../src-shared/contract';
import { HoldfastError } from '../../../src-shared/errors';
import { createRouter, type Router } from '../router';
import { createCoalescer } from '../event-coalescer';
import type { Disposable, EventSource } from '../event-source';
import { LineSplitter, MAX_REQUEST_FRAME, SUBSCRIBE, UNSUBSCRIBE, type FrameId, type ReplyFrame } from './protocol';

/** A client that has this much unread output is not reading; drop it. */
const MAX_PENDING_OUTPUT = 32 * 1024 * 1024;

function probe(path: string, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(path);
    const done = (alive: boolean) => {
      s.destroy();
      resolve(alive);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(timeoutMs, () => done(false));
  });
}

export class ControlServer {
  private readonly server: net.Server;
  private readonly router: Router;
  private readonly connections = new Set<net.Socket>();

  private constructor(
    readonly path: string,
    api: Api,
    private readonly events: EventSource,
  ) {
    this.router = createRouter(api);
    this.server = net.createServer((sock) => this.accept(sock));
  }

  static async listen(path: string, api: Api, events: EventSource): Promise<ControlServer> {
    if (fs.existsSync(path)) {
      if (await probe(path)) throw new HoldfastError('LOCKED', `Another Holdfast engine is already answering on ${path}.`);
      fs.rmSync(path, { force: true });
    }
    const cs = new ControlServer(path, api, events);
    // umask makes the socket 0600 from its creation, so no other user can race the chmod.
    const oldMask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        cs.server.once('error', reject);
        cs.server.listen(path, () => {
          cs.server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(oldMask);
    }
    fs.chmodSync(path, 0o600);
    return cs;
  }

  private accept(sock: net.Socket): void {
    this.connections.add(sock);
    let subscription: Disposable | null = null;
    const coalescer = createCoalescer((event, payload) => send({ event, payload }));
    const unsubscribe = () => {
      subscription?.dispose();
      subscription = null;
    };
    const send = (frame: object) => {
      if (sock.destroyed) return;
      if (sock.writableLength > MAX_PENDING_OUTPUT) {
        sock.destroy();
        return;
      }
      sock.write(JSON.stringify(frame) + '\n');
    };
    const reply = (frame: ReplyFrame) => send(frame);
    const bad = (id: FrameId, message: string) => reply({ id, ok: false, error: { code: 'INVALID_ARGUMENT', message } });

    const onLine = (line: string) => {
      let frame: unknown;
      try {
        frame = JSON.parse(line);
      } catch {
        return bad(null, 'The control frame is not valid JSON.');
      }
      if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) return bad(null, 'A control frame must be a JSON object.');
      const f = frame as Record<string, unknown>;
      const id = typeof f.id === 'number' || typeof f.id === 'string' ? f.id : null;
      if (id === null) return bad(null, 'A control frame needs an "id" (number or string).');
      if (typeof f.op !== 'string') return bad(id, 'A control frame needs an "op" string.');
      if (f.op === SUBSCRIBE) {
        const wanted = parseEventFilter(f.input);
        if (wanted instanceof HoldfastError) return reply({ id, ok: false, error: wanted.toPayload() });
        unsubscribe();
        subscription = this.events.onAny((name, payload) => {
          if (!wanted || wanted.has(name)) coalescer.push(name, payload);
        });
        return reply({ id, ok: true, result: {} });
      }
      if (f.op === UNSUBSCRIBE) {
        unsubscribe();
        return reply({ id, ok: true, result: {} });
      }
      void this.router.call(f.op, f.input).then((r) => reply(r.ok ? { id, ok: true, result: r.result } : { id, ok: false, error: r.error }));
    };
    const splitter = new LineSplitter(MAX_REQUEST_FRAME, onLine, () => {
      bad(null, `A control frame is longer than ${MAX_REQUEST_FRAME} bytes; closing the connection.`);
      sock.end();
    });
    sock.on('data', (chunk: Buffer) => splitter.push(chunk));
    sock.on('error', () => sock.destroy());
    sock.on('close', () => {
      unsubscribe();
      coalescer.dispose();
      this.connections.delete(sock);
    });
  }

  async close(): Promise<void> {
    for (const s of this.connections) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    fs.rmSync(this.path, { force: true });
  }
}

function parseEventFilter(input: unknown): Set<EventName> | null | HoldfastError {
  if (input === undefined || input === null) return null;
  const list = (input as { events?: unknown }).events;
  if (list === undefined) return null;
  if (!Array.isArray(list)) return new HoldfastError('INVALID_ARGUMENT', '"events" must be a list of event names.');
  const out = new Set<EventName>();
  for (const e of list) {
    if (typeof e !== 'string' || !Object.prototype.hasOwnProperty.call(eventSchemas, e))
      return new HoldfastError('INVALID_ARGUMENT', `Unknown event "${String(e).slice(0, 60)}".`);
    out.add(e as EventName);
  }
  return out;
}
