/**
 * The NBD URIs (the NBD URI spec) a client uses to attach a volume: unix socket and TCP.
 * Two sources with different shapes (src-shared/contract.ts): a volume's own `nbd` holds complete
 * per-volume URIs (`nbd+unix:///NAME?socket=PATH`, `nbd://HOST:PORT/NAME`) and is shown as is;
 * the engine's `nbd` holds the raw endpoints (socket path, `host:port`) from which this module
 * builds the URIs. The volume's own addresses win when present.
 */
import type { OpOutput, Volume } from '../../src-shared/contract';

export interface NbdAddress {
  label: string;
  uri: string;
}

type EngineNbd = OpOutput<'engine.info'>['nbd'];

export function nbdAddresses(volume: Pick<Volume, 'name' | 'nbd'>, engine: EngineNbd | null | undefined): NbdAddress[] {
  if (volume.nbd) return volumeNbdAddresses(volume.nbd);
  return engine ? engineNbdAddresses(volume.name, engine) : [];
}

/** A volume's own addresses: already complete URIs. */
export function volumeNbdAddresses(nbd: NonNullable<Volume['nbd']>): NbdAddress[] {
  const out: NbdAddress[] = [];
  if (nbd.socket) out.push({ label: 'Unix socket', uri: nbd.socket });
  if (nbd.tcp) out.push({ label: 'TCP', uri: nbd.tcp });
  return out;
}

/** URIs for one volume built from the engine's raw endpoints: a socket path and `host:port`. */
export function engineNbdAddresses(volume: string, nbd: EngineNbd): NbdAddress[] {
  const out: NbdAddress[] = [];
  const name = encodeURIComponent(volume);
  if (nbd.socket) out.push({ label: 'Unix socket', uri: `nbd+unix:///${name}?socket=${nbd.socket}` });
  if (nbd.tcp) out.push({ label: 'TCP', uri: `nbd://${nbd.tcp}/${name}` });
  return out;
}
