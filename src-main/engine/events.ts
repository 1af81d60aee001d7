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
    this.anyCount++;
    return this.subscription(listener, () => this.anyCount--);
  }

  on<N extends EventName>(name: N, listener: (payload: EventPayload<N>) => void): Disposable {
    const wrapped: AnyEventListener = (n, p) => {
      if ((n as EventName) === name) listener(p as unknown as EventPayload<N>);
    };
    this.listeners.add(wrapped);
    this.named.set(name, (this.named.get(name) ?? 0) + 1);
    return this.subscription(wrapped, () => this.named.set(name, this.named.get(name)! - 1));
  }

  /**
   * Whether anyone would receive `name`: producers of costly payloads (the hold block map)
   * skip the work when nobody listens.
   */
  wants(name: EventName): boolean {
    return this.anyCount > 0 || (this.named.get(name) ?? 0) > 0;
  }

  private anyCount = 0;
  private readonly named = new Map<EventName, number>();

  private subscription(listener: AnyEventListener, onDispose: () => void): Disposable {
    return {
      dispose: () => {
        if (this.listeners.delete(listener)) onDispose();
      },
    };
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
