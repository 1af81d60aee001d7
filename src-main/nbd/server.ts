/**
 * The NBD server: listeners (Unix socket, loopback TCP) and the set of live connections.
 * Each connection runs the handshake, then a Transmission against the export lease it
 * opened. The server owns every lease it opens and closes it exactly once, when that
 * connection ends; a revoked lease (restore over a volume) or disconnectExport() shuts its
 * connections down gracefully. Nothing a client sends can throw out of a socket handler.
 */
import fs from 'node:fs';
import net from 'node:net';
import { HoldfastError } from '../../src-shared/errors';
import type { ExportRegistry } from '../engine/block-export';
import { errorMessage } from './errno';
import { negotiate } from './handshake';
import { Transmission } from './transmission';
import { Wire } from './wire';

export interface NbdServerOptions {
  /** Cap on request payload + unsent reply bytes per connection (default 64 MiB; never below 32 MiB + overhead). */
  maxInflightBytesPerConn?: number;
  /** A client must finish option haggling within this time (default 60 s). */
  handshakeTimeoutMs?: number;
  log?: (msg: string) => void;
}

interface Client {
  wire: Wire;
  transmission: Transmission | null;
}

export class NbdServer {
  private readonly listeners: net.Server[] = [];
  private readonly clients = new Set<Client>();
  private readonly unixPaths: string[] = [];
  private readonly maxInflight: number;
  private readonly handshakeTimeoutMs: number;
  private readonly log: (msg: string) => void;
  private closing = false;

  constructor(
    private readonly registry: ExportRegistry,
    opts: NbdServerOptions = {},
  ) {
    this.maxInflight = opts.maxInflightBytesPerConn ?? 64 * 1024 * 1024;
    this.handshakeTimeoutMs = opts.handshakeTimeoutMs ?? 60_000;
    this.log = opts.log ?? (() => {});
  }

  /** Listens on a Unix socket, replacing a stale socket file left by a previous run. */
  async listenUnix(path: string): Promise<void> {
    try {
      if (fs.lstatSync(path).isSocket()) fs.unlinkSync(path);
    } catch {
      /* absent */
    }
    const srv = this.makeListener();
    await listen(srv, () => srv.listen(path));
    this.unixPaths.push(path);
  }

  /** Listens on TCP; loopback unless a host is given. Port 0 picks a free port. */
  async listenTcp(port: number, host = '127.0.0.1'): Promise<{ port: number }> {
    const srv = this.makeListener();
    await listen(srv, () => srv.listen(port, host));
    const addr = srv.address();
    if (!addr || typeof addr === 'string') throw new HoldfastError('INTERNAL', 'TCP listener has no port.');
    return { port: addr.port };
  }

  /** Connections in the transmission phase, optionally only those on one export. */
  clientCount(exportName?: string): number {
    let n = 0;
    for (const c of this.clients) {
      if (c.transmission && (exportName === undefined || c.transmission.exportName === exportName)) n++;
    }
    return n;
  }

  /** Gracefully disconnects every client of an export (in-flight requests finish first). */
  async disconnectExport(name: string): Promise<void> {
    const waits: Array<Promise<void>> = [];
    for (const c of this.clients) if (c.transmission?.exportName === name) waits.push(c.transmission.shutdown());
    await Promise.all(waits);
  }

  async close(): Promise<void> {
    this.closing = true;
    const closed = this.listeners.map((l) => new Promise<void>((r) => l.close(() => r())));
    const waits: Array<Promise<void>> = [];
    for (const c of this.clients) {
      if (c.transmission) waits.push(c.transmission.shutdown());
      else c.wire.destroy();
    }
    await Promise.all(waits);
    await Promise.all(closed);
    for (const p of this.unixPaths) {
      try {
        fs.unlinkSync(p);
      } catch {
        /* already gone */
      }
    }
  }

  private makeListener(): net.Server {
    const srv = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
    // Failing to start listening is the caller's error (listen() rejects with it); later ones are logged.
    srv.on('error', (e) => {
      if (srv.listening) this.log(`nbd: listener error: ${errorMessage(e)}`);
    });
    this.listeners.push(srv);
    return srv;
  }

  private accept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const wire = new Wire(socket);
    const client: Client = { wire, transmission: null };
    this.clients.add(client);
    wire.onClose(() => this.clients.delete(client));
    const timer = setTimeout(() => {
      if (!client.transmission) {
        this.log('nbd: handshake timed out; disconnecting client');
        wire.destroy();
      }
    }, this.handshakeTimeoutMs);
    timer.unref?.();

    negotiate(wire, this.registry, this.log).then(
      (neg) => {
        clearTimeout(timer);
        if (!neg) return;
        const lease = neg.lease;
        if (wire.closed || this.closing) {
          lease.close();
          wire.destroy();
          return;
        }
        let leaseClosed = false;
        wire.onClose(() => {
          if (leaseClosed) return;
          leaseClosed = true;
          try {
            lease.close();
          } catch (e) {
            this.log(`nbd: closing export lease failed: ${errorMessage(e)}`);
          }
        });
        client.transmission = new Transmission(wire, neg, { maxInflightBytes: this.maxInflight, log: this.log });
        lease.onRevoke(() => {
          void client.transmission?.shutdown();
        });
      },
      (e: unknown) => {
        clearTimeout(timer);
        this.log(`nbd: connection failed: ${errorMessage(e)}`);
        wire.destroy();
      },
    );
  }
}

function listen(srv: net.Server, start: () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => reject(new HoldfastError('IO_ERROR', `Cannot listen for NBD clients: ${e.message}`));
    srv.once('error', onError);
    srv.once('listening', () => {
      srv.off('error', onError);
      resolve();
    });
    start();
  });
}
