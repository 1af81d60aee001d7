/**
 * Typed engine events with owned subscriptions (VS Code's onDid… + Disposable): every
 * listener is removed by the dispose() its subscriber holds. Hosts forward these to the
 * renderer (IPC / WebSocket) and the CLI (`holds --watch`).
 */
import type { EventName, EventPayload } from '../../src-shared/contract';

export interface Disposable {
  dispose(): void;
}

export type AnyEventListener = <N extends EventName>(name: N, payload: EventPayload<N>) => void;

export class EngineEvents {
  private readonly listeners = new Set<AnyEventListener>();

  /** Listens to every event; the host filters and forwards. */
  onAny(listener: AnyEventListener): Disposable {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  on<N extends EventName>(name: N, listener: (payload: EventPayload<N>) => void): Disposable {
    const wrapped: AnyEventListener = (n, p) => {
      if ((n as EventName) === name) listener(p as unknown as EventPayload<N>);
    };
    return this.onAny(wrapped);
  }

  emit<N extends EventName>(name: N, payload: EventPayload<N>): void {
    for (const l of [...this.listeners]) {
      try {
        l(name, payload);
      } catch {
        // A broken listener must not break the write path that emitted.
      }
    }
  }

  get listenerCount(): number {
    return this.listeners.size;
  }
}
