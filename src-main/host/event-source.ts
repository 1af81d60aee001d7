/**
 * What a host needs from whatever produces engine events: the engine's EngineEvents in
 * process, or a ControlClient in another process. Both deliver every event to `onAny`.
 */
import type { EventName, EventPayload } from '../../src-shared/contract';

export interface Disposable {
  dispose(): void;
}
export type AnyEventListener = <N extends EventName>(name: N, payload: EventPayload<N>) => void;
export interface EventSource {
  onAny(listener: AnyEventListener): Disposable;
}
