/**
 * A small in-memory stand-in for the engine's Api, for transport tests only: it records the
 * inputs it received (so tests can prove the router passed parsed input) and emits events
 * through a real EngineEvents. Business behaviour is the engine's job and is not modelled.
 */
import { OP_NAMES, type Api, type Volume } from '../../src-shared/contract';
import { HoldfastError } from '../../src-shared/errors';
import { EngineEvents } from '../../src-main/engine/events';

export function createFakeApi(): { api: Api; events: EngineEvents; calls: Array<{ op: string; input: unknown }> } {
  const calls: Array<{ op: string; input: unknown }> = [];
  const events = new EngineEvents();
  const volumes = new Map<string, Volume>();
  const rec = (op: string, input: unknown) => calls.push({ op, input });
  const notAvailable = async () => {
    throw new HoldfastError('NOT_AVAILABLE', 'not in the fake');
  };
  const known: Partial<Api> = {
    'drive.list': async (i) => (rec('drive.list', i), []),
    'device.list': async (i) => (rec('device.list', i), []),
    'device.add': notAvailable,
    'device.remove': notAvailable,
    'volume.list': async (i) => (rec('volume.list', i), [...volumes.values()]),
    'volume.create': async (i) => {
      rec('volume.create', i);
      if (volumes.has(i.name)) throw new HoldfastError('ALREADY_EXISTS', `A volume named "${i.name}" already exists.`);
      const v: Volume = { id: volumes.size + 1, name: i.name, size: i.size, ackMode: i.ack ?? 'journal', adopted: false, extents: [], createdAt: new Date(0).toISOString(), backup: null, nbd: null };
      volumes.set(i.name, v);
      events.emit('volumes.changed', {});
      return v;
    },
    'volume.grow': notAvailable,
    'volume.rename': notAvailable,
    'volume.delete': async (i) => {
      rec('volume.delete', i);
      if (!volumes.delete(i.name)) throw new HoldfastError('NOT_FOUND', `No volume named "${i.name}".`);
      return { ok: true };
    },
    'volume.adopt': notAvailable,
    'holds.get': async (i) => (rec('holds.get', i), []),
    'backup.start': notAvailable,
    'backup.list': async () => [],
    'backup.abort': notAvailable,
    'snapshot.list': async () => [],
    'snapshot.verify': notAvailable,
    'restore.start': notAvailable,
    'engine.info': async () => {
      throw new Error('boom: not a HoldfastError');
    },
  };
  // Ops the contract grows later answer NOT_AVAILABLE here, as the engine does until built.
  const api = Object.fromEntries(OP_NAMES.map((op) => [op, known[op] ?? notAvailable])) as unknown as Api;
  return { api, events, calls };
}

export function holdState(volume: string, heldCount: number) {
  return { volume, backupFlag: true, policy: 'volume' as const, heldCount, heldBytes: heldCount * 4096, oldestHeldAgeMs: 1, queuedTotal: heldCount, releasedTotal: 0, copiedBytes: 0, journalBytes: 0, journalCapacity: 1 << 20 };
}
