/**
 * The renderer's one way out: builds a `Client` — an `Api` (one async function per contract
 * operation) plus an event subscription — over whichever host the page runs in:
 * `window.holdfast` (Electron preload) or HTTP+WebSocket to `holdfast serve`.
 * Invariant: every failure surfaces as a HoldfastError with a contract code, so screens can
 * always show `error.message`. Wire shapes are in src-shared/bridge.ts.
 */
import { OP_NAMES, type Api, type OpName } from '../../src-shared/contract';
import { ErrorCodes, HoldfastError, type ErrorCode, type ErrorPayload } from '../../src-shared/errors';
import {
  BRIDGE_GLOBAL,
  EVENTS_PATH,
  HTTP_API_PREFIX,
  SESSION_TOKEN_KEY,
  isRpcResponse,
  type EventMessage,
  type HoldfastBridge,
} from '../../src-shared/bridge';

export type EventListener = (message: EventMessage) => void;
export type ConnectionState = 'connected' | 'connecting' | 'disconnected';

export interface Client {
  api: Api;
  /** Every engine event; returns the unsubscribe function. */
  onEvent(listener: EventListener): () => void;
  /** Live-update channel state (always 'connected' for Electron). */
  onConnectionChange?(listener: (state: ConnectionState) => void): () => void;
}

function isErrorCode(c: unknown): c is ErrorCode {
  return typeof c === 'string' && (ErrorCodes as readonly string[]).includes(c);
}

export function toHoldfastError(e: unknown): HoldfastError {
  if (e instanceof HoldfastError) return e;
  const o = e as { code?: unknown; message?: unknown } | null;
  const message = typeof o?.message === 'string' ? o.message.replace(/^Error invoking remote method '[^']+': (Error: )?/, '') : String(e);
  return new HoldfastError(isErrorCode(o?.code) ? o.code : 'INTERNAL', message);
}

function unwrap(response: unknown): unknown {
  if (!isRpcResponse(response)) return response;
  if (response.ok) return response.result;
  const p: Partial<ErrorPayload> = response.error;
  throw new HoldfastError(isErrorCode(p.code) ? p.code : 'INTERNAL', typeof p.message === 'string' ? p.message : 'The engine reported an error.', p.details);
}

export function apiFromInvoke(invoke: (op: OpName, input: unknown) => Promise<unknown>): Api {
  const api: Record<string, (input: unknown) => Promise<unknown>> = {};
  for (const op of OP_NAMES) {
    api[op] = async (input) => {
      let response: unknown;
      try {
        response = await invoke(op, input ?? {});
      } catch (e) {
        throw toHoldfastError(e);
      }
      return unwrap(response);
    };
  }
  return api as unknown as Api;
}

// ---------- Electron ----------
export function bridgeClient(bridge: HoldfastBridge): Client {
  return { api: apiFromInvoke((op, input) => bridge.invoke(op, input)), onEvent: (l) => bridge.onEvent(l) };
}

// ---------- browser (holdfast serve) ----------
/** Takes `?token=` from the URL into sessionStorage and removes it from the visible URL. */
export function takeToken(win: Window): string | null {
  const url = new URL(win.location.href);
  const fromUrl = url.searchParams.get('token');
  if (fromUrl) {
    win.sessionStorage.setItem(SESSION_TOKEN_KEY, fromUrl);
    url.searchParams.delete('token');
    win.history.replaceState(win.history.state, '', url.pathname + url.search + url.hash);
    return fromUrl;
  }
  return win.sessionStorage.getItem(SESSION_TOKEN_KEY);
}

export function httpClient(win: Window, token: string | null): Client {
  const base = new URL('.', win.location.href); // works under any mount path (base './')
  const invoke = async (op: OpName, input: unknown): Promise<unknown> => {
    let res: Response;
    try {
      res = await win.fetch(new URL(HTTP_API_PREFIX.slice(1) + op, base), {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(input ?? {}),
      });
    } catch {
      throw new HoldfastError('IO_ERROR', 'Cannot reach the Holdfast engine. Is `holdfast serve` still running?');
    }
    let body: unknown = null;
    try {
      body = await res.json();
    } catch {
      /* a status-only reply */
    }
    if (isRpcResponse(body)) return body;
    if (res.status === 401) throw new HoldfastError('UNAUTHORIZED', 'This page has no valid access token. Open the address `holdfast serve` printed, including its ?token=.');
    if (res.status === 403) throw new HoldfastError('FORBIDDEN', 'The engine refused this request (wrong origin or token).');
    throw new HoldfastError('INTERNAL', `Unexpected reply from the engine (HTTP ${res.status}).`);
  };

  const listeners = new Set<EventListener>();
  const stateListeners = new Set<(s: ConnectionState) => void>();
  let socket: WebSocket | null = null;
  let retry = 0;
  let timer: ReturnType<typeof setTimeout> | null = null;
  const setState = (s: ConnectionState) => stateListeners.forEach((l) => l(s));

  // One socket shared by all listeners; opened on first subscription, reconnects with backoff.
  const connect = () => {
    const wsUrl = new URL(EVENTS_PATH.slice(1), base);
    wsUrl.protocol = wsUrl.protocol === 'https:' ? 'wss:' : 'ws:';
    if (token) wsUrl.searchParams.set('token', token);
    setState('connecting');
    const ws = new (win as Window & typeof globalThis).WebSocket(wsUrl.toString());
    socket = ws;
    ws.onopen = () => {
      retry = 0;
      setState('connected');
    };
    ws.onmessage = (ev: MessageEvent) => {
      let msg: unknown;
      try {
        msg = JSON.parse(String(ev.data));
      } catch {
        return;
      }
      if (typeof msg === 'object' && msg !== null && typeof (msg as EventMessage).event === 'string') {
        listeners.forEach((l) => l(msg as EventMessage));
      }
    };
    ws.onclose = () => {
      if (socket !== ws) return;
      socket = null;
      setState('disconnected');
      if (listeners.size > 0) timer = setTimeout(() => {
          timer = null;
          connect();
        }, Math.min(10_000, 500 * 2 ** retry++));
    };
  };

  return {
    api: apiFromInvoke(invoke),
    onEvent(listener) {
      listeners.add(listener);
      if (!socket && !timer) connect();
      return () => {
        listeners.delete(listener);
        if (listeners.size === 0) {
          if (timer) clearTimeout(timer);
          timer = null;
          const ws = socket;
          socket = null;
          ws?.close();
        }
      };
    },
    onConnectionChange(listener) {
      stateListeners.add(listener);
      return () => stateListeners.delete(listener);
    },
  };
}

/** Picks the host the page runs in. */
export function createClient(win: Window): Client {
  const bridge = (win as unknown as Record<string, unknown>)[BRIDGE_GLOBAL] as HoldfastBridge | undefined;
  if (bridge && typeof bridge.invoke === 'function') return bridgeClient(bridge);
  return httpClient(win, takeToken(win));
}
