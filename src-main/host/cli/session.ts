/**
 * Where a CLI command runs. Invariant (DESIGN.md §1): one process owns a data directory; if a
 * live owner holds the lock and its control socket answers, the command goes through that
 * socket; otherwise the command opens the engine here (taking the lock) and closes it when
 * done. A live owner whose socket does not answer is reported (LOCKED), never bypassed.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { EventName } from '../../../src-shared/contract';
import { HoldfastError } from '../../../src-shared/errors';
import { DataDir } from '../../engine/datadir';
import { ControlClient } from '../control/client';
import type { EventSource } from '../event-source';
import { openLocalEngine, type LocalEngine } from '../local-engine';
import { createRouter } from '../router';

export const CONTROL_SOCKET = 'control.sock';

export interface Session {
  readonly mode: 'control' | 'local';
  call(op: string, input: unknown): Promise<unknown>;
  readonly events: EventSource;
  /** Resolves when the engine behind this session goes away on its own (control mode only). */
  readonly lost: Promise<void>;
  /** Starts event delivery (needed over the socket; a no-op in process). */
  watch(events?: EventName[]): Promise<void>;
  close(): Promise<void>;
}

export function resolveDataDir(flag: string | undefined): string {
  return flag !== undefined ? path.resolve(flag) : DataDir.defaultDir();
}

export async function openSession(dataDir: string): Promise<Session> {
  const owner = fs.existsSync(dataDir) ? DataDir.readOwner(dataDir) : null;
  if (owner && owner.pid !== process.pid) {
    const sock = path.join(dataDir, CONTROL_SOCKET);
    let client: ControlClient;
    try {
      client = await ControlClient.connect(sock);
    } catch (e) {
      throw new HoldfastError(
        'LOCKED',
        `The data directory ${dataDir} is owned by process ${owner.pid}${owner.hostname ? ` on ${owner.hostname}` : ''}, but its control socket does not answer (${(e as Error).message}).`,
      );
    }
    return {
      mode: 'control',
      call: (op, input) => client.call(op, input),
      events: client,
      watch: (events) => client.subscribe(events),
      lost: new Promise<void>((resolve) => client.onClose(resolve)),
      close: () => client.close(),
    };
  }
  const engine = await openLocalEngine({ dataDir });
  return localSession(engine);
}

export function localSession(engine: LocalEngine): Session {
  const router = createRouter(engine.api);
  return {
    mode: 'local',
    async call(op, input) {
      const r = await router.call(op, input);
      if (!r.ok) throw HoldfastError.fromPayload(r.error);
      return r.result;
    },
    events: engine.events,
    watch: async () => {},
    lost: new Promise<void>(() => {}),
    close: () => engine.close(),
  };
}
