/**
 * `holdfast serve`'s HTTP + WebSocket host: the renderer build and the contract on
 * 127.0.0.1 for a browser (the wire is src-shared/bridge.ts). Routes:
 *   GET/HEAD /…            static renderer files (no token: the page must load to read it)
 *   POST /api/<op>         contract call; body = JSON input; `Authorization: Bearer <token>`
 *   GET  /events?token=T   WebSocket; one JSON {event,payload} per text frame
 * Every request first passes the Host check (DNS rebinding) and the Origin check; /api and
 * /events need the token (401 otherwise). Bodies are capped. Invariants: the listener is bound
 * to 127.0.0.1 only; no request reaches the router without passing the gate; `holds.changed`
 * reaches each browser at most ~40 times a second per volume.
 */
import http from 'node:http';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { EVENTS_PATH, HTTP_API_PREFIX, type RpcResponse } from '../../../src-shared/bridge';
import type { Api } from '../../../src-shared/contract';
import type { ErrorCode } from '../../../src-shared/errors';
import { createRouter } from '../router';
import { createCoalescer } from '../event-coalescer';
import type { EventSource } from '../event-source';
import { OriginPolicy, bearerToken, newToken, tokenMatches } from './security';
import { StaticFiles } from './static-files';
import { WebSocketConnection, checkUpgrade } from './websocket';

export const MAX_API_BODY = 1024 * 1024;

export interface ServeHostOptions {
  api: Api;
  events: EventSource;
  /** 0 picks a free port. */
  port: number;
  rendererDir: string;
  /** Tests may fix it; otherwise 32 random bytes. */
  token?: string;
}

export interface ServeHost {
  readonly port: number;
  readonly token: string;
  /** http://127.0.0.1:PORT/?token=T — what the user opens. */
  readonly url: string;
  close(): Promise<void>;
}

const STATUS_FOR: Partial<Record<ErrorCode, number>> = {
  INVALID_ARGUMENT: 400,
  INVALID_NAME: 400,
  INVALID_SIZE: 400,
  OUT_OF_RANGE: 400,
  UNALIGNED: 400,
  CONFIRMATION_REQUIRED: 400,
  NOT_FOUND: 404,
  SNAPSHOT_NOT_FOUND: 404,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_AVAILABLE: 501,
  INTERNAL: 500,
  IO_ERROR: 500,
};

const COMMON_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer', // the token is in the page URL; never send it anywhere
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'X-Frame-Options': 'DENY',
};

export async function startServeHost(opts: ServeHostOptions): Promise<ServeHost> {
  const token = opts.token ?? newToken();
  const router = createRouter(opts.api);
  const files = new StaticFiles(opts.rendererDir);
  const sockets = new Set<Duplex>();
  const wsConnections = new Set<WebSocketConnection>();
  let policy!: OriginPolicy; // set once the port is known, before the first request can arrive

  const sendJson = (res: http.ServerResponse, status: number, body: RpcResponse) => {
    const data = JSON.stringify(body);
    res.writeHead(status, { ...COMMON_HEADERS, 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(data) });
    res.end(data);
  };
  const refuse = (res: http.ServerResponse, status: number, code: ErrorCode, message: string) =>
    sendJson(res, status, { ok: false, error: { code, message } });

  const handleApi = (req: http.IncomingMessage, res: http.ServerResponse, op: string) => {
    if (!tokenMatches(token, bearerToken(req.headers))) return refuse(res, 401, 'UNAUTHORIZED', 'A valid token is required; open the URL `holdfast serve` printed.');
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'POST');
      return refuse(res, 405, 'INVALID_ARGUMENT', 'Use POST for /api calls.');
    }
    const ctype = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (ctype !== '' && ctype !== 'application/json') return refuse(res, 415, 'INVALID_ARGUMENT', 'The request body must be application/json.');
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    req.on('data', (c: Buffer) => {
      if (tooBig) return;
      size += c.length;
      if (size > MAX_API_BODY) {
        tooBig = true;
        refuse(res, 413, 'INVALID_ARGUMENT', `The request body is larger than ${MAX_API_BODY} bytes.`);
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (tooBig) return;
      const text = Buffer.concat(chunks).toString('utf8');
      let input: unknown = {};
      if (text.trim() !== '') {
        try {
          input = JSON.parse(text);
        } catch {
          return refuse(res, 400, 'INVALID_ARGUMENT', 'The request body is not valid JSON.');
        }
      }
      void router.call(op, input).then((r) => sendJson(res, r.ok ? 200 : (STATUS_FOR[r.error.code] ?? 409), r));
    });
  };

  const handleStatic = (req: http.IncomingMessage, res: http.ServerResponse, pathname: string) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { ...COMMON_HEADERS, Allow: 'GET, HEAD' });
      return res.end();
    }
    const found = files.lookup(pathname);
    const headers = { ...COMMON_HEADERS, 'Content-Security-Policy': policy.contentSecurityPolicy() };
    if (found.status !== 200) {
      const body = files.available ? 'Not found' : 'The Holdfast UI is not built: run `npm run build`. The /api endpoints work.';
      res.writeHead(found.status === 404 && !files.available ? 503 : found.status, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' });
      return res.end(req.method === 'HEAD' ? undefined : body);
    }
    const isHtml = found.type.startsWith('text/html');
    res.writeHead(200, {
      ...headers,
      'Content-Type': found.type,
      'Content-Length': found.size,
      // Vite fingerprints assets; the HTML must always be fresh.
      'Cache-Control': isHtml ? 'no-store' : 'no-cache',
    });
    if (req.method === 'HEAD') return res.end();
    fs.createReadStream(found.file).on('error', () => res.destroy()).pipe(res);
  };

  const server = http.createServer((req, res) => {
    if (!policy.hostAllowed(req.headers)) {
      res.writeHead(403, { ...COMMON_HEADERS, 'Content-Type': 'text/plain; charset=utf-8' });
      return res.end('Forbidden: unexpected Host header.');
    }
    if (!policy.originAllowed(req.headers)) return refuse(res, 403, 'FORBIDDEN', 'Requests from other sites are not allowed.');
    let url: URL;
    try {
      url = new URL(req.url ?? '/', `http://${req.headers.host}`);
    } catch {
      return refuse(res, 400, 'INVALID_ARGUMENT', 'Malformed request URL.');
    }
    if (url.pathname.startsWith(HTTP_API_PREFIX)) return handleApi(req, res, url.pathname.slice(HTTP_API_PREFIX.length));
    if (url.pathname === EVENTS_PATH) return refuse(res, 426, 'INVALID_ARGUMENT', 'Connect to /events with a WebSocket.');
    return handleStatic(req, res, url.pathname);
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 60_000;

  const rejectUpgrade = (socket: Duplex, status: number, text: string) => {
    socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`);
  };

  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    if (!policy.hostAllowed(req.headers) || !policy.originAllowed(req.headers)) return rejectUpgrade(socket, 403, 'Forbidden');
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://127.0.0.1');
    } catch {
      return rejectUpgrade(socket, 400, 'Bad Request');
    }
    if (url.pathname !== EVENTS_PATH) return rejectUpgrade(socket, 404, 'Not Found');
    if (!tokenMatches(token, url.searchParams.get('token'))) return rejectUpgrade(socket, 401, 'Unauthorized');
    const bad = checkUpgrade(req);
    if (bad) return rejectUpgrade(socket, 400, 'Bad Request');
    const ws = new WebSocketConnection(socket, req, head);
    wsConnections.add(ws);
    const coalescer = createCoalescer((event, payload) => ws.sendText(JSON.stringify({ event, payload })));
    const sub = opts.events.onAny((name, payload) => coalescer.push(name, payload));
    ws.onClose(() => {
      sub.dispose();
      coalescer.dispose();
      wsConnections.delete(ws);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, '127.0.0.1', () => {
      server.off('error', reject);
      policy = new OriginPolicy((server.address() as AddressInfo).port);
      resolve();
    });
  });
  const port = policy.port;

  return {
    port,
    token,
    url: `http://127.0.0.1:${port}/?token=${token}`,
    async close() {
      for (const ws of wsConnections) ws.close(1001, 'Server shutting down');
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      setTimeout(() => {
        for (const s of sockets) s.destroy();
      }, 200).unref();
      server.closeIdleConnections?.();
      await closed;
    },
  };
}
