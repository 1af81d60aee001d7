/**
 * Wire shapes between the renderer and its two hosts. The renderer cannot tell which host it
 * runs in; both speak the same envelopes:
 *
 * - Electron: the preload exposes `window.holdfast` (a `HoldfastBridge`) via contextBridge.
 *   `invoke` resolves with an `RpcResponse` envelope and never rejects for engine errors —
 *   contextBridge strips custom properties from thrown Errors, so a code would be lost.
 *   (The renderer tolerates a preload that resolves with the bare result or rejects, but the
 *   envelope is the agreed shape.)
 * - Browser (`holdfast serve`): `POST /api/<opName>` with the JSON input as body and header
 *   `Authorization: Bearer <token>`; the response body is an `RpcResponse` (HTTP status may be
 *   4xx/5xx on failure; the body still carries the envelope, except 401/403 from the auth
 *   check which may carry only a status). Events arrive over WebSocket `/events?token=<token>`,
 *   one JSON `EventMessage` per text frame.
 *
 * The token reaches the page as `?token=` in the opened URL; the renderer keeps it in
 * sessionStorage under `SESSION_TOKEN_KEY` and removes it from the visible URL.
 * No Node or DOM imports here.
 */
import type { EventName, EventPayload, OpName } from './contract';
import type { ErrorPayload } from './errors';

export type RpcResponse = { ok: true; result: unknown } | { ok: false; error: ErrorPayload };

export type EventMessage = { [N in EventName]: { event: N; payload: EventPayload<N> } }[EventName];

/** What the Electron preload exposes as `window.holdfast`. */
export interface HoldfastBridge {
  invoke(op: OpName, input: unknown): Promise<RpcResponse>;
  /** Subscribes to every engine event; returns the unsubscribe function. */
  onEvent(listener: (message: EventMessage) => void): () => void;
}

export const BRIDGE_GLOBAL = 'holdfast';
export const HTTP_API_PREFIX = '/api/';
export const EVENTS_PATH = '/events';
export const SESSION_TOKEN_KEY = 'holdfast.token';

export function isRpcResponse(v: unknown): v is RpcResponse {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  if (o.ok === true) return 'result' in o;
  if (o.ok === false) return typeof o.error === 'object' && o.error !== null;
  return false;
}
