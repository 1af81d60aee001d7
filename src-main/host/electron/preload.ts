/**
 * The Electron preload: the renderer's only door to the engine (DESIGN.md §6). Runs sandboxed
 * with contextIsolation, so it exposes plain functions via contextBridge:
 *   window.holdfast.invoke(op, input)  → Promise<RpcResponse>   (generic, allow-listed)
 *   window.holdfast.api[op](input)     → Promise<RpcResponse>   (one function per contract op)
 *   window.holdfast.onEvent(cb)        → unsubscribe function
 * Invariants: only contract op names (compiled in from OP_NAMES, not supplied by the page)
 * reach IPC; the page never receives Electron objects (the IPC event is dropped before its
 * callback runs); engine errors arrive as envelopes because contextBridge strips error codes.
 */
import { OP_NAMES, type OpName } from '../../../src-shared/contract';
import { BRIDGE_GLOBAL, type EventMessage, type HoldfastBridge, type RpcResponse } from '../../../src-shared/bridge';
import { IPC_EVENT, IPC_INVOKE, type ElectronRenderer } from './electron-types';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { contextBridge, ipcRenderer } = require('electron') as ElectronRenderer;

const allowed = new Set<string>(OP_NAMES);

function invoke(op: OpName, input: unknown): Promise<RpcResponse> {
  if (typeof op !== 'string' || !allowed.has(op)) {
    return Promise.resolve({ ok: false, error: { code: 'NOT_FOUND', message: `Unknown operation "${String(op).slice(0, 80)}".` } });
  }
  return ipcRenderer.invoke(IPC_INVOKE, op, input ?? {}) as Promise<RpcResponse>;
}

const api: Record<string, (input: unknown) => Promise<RpcResponse>> = {};
for (const op of OP_NAMES) api[op] = (input) => invoke(op, input);

const bridge: HoldfastBridge & { api: typeof api } = {
  invoke,
  api,
  onEvent(listener: (message: EventMessage) => void) {
    if (typeof listener !== 'function') return () => {};
    const handler = (_e: unknown, message: EventMessage) => listener(message);
    ipcRenderer.on(IPC_EVENT, handler);
    return () => ipcRenderer.removeListener(IPC_EVENT, handler);
  },
};

contextBridge.exposeInMainWorld(BRIDGE_GLOBAL, bridge);
