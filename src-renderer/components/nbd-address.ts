/** NBD URIs (the NBD URI spec) a client uses to attach a volume: unix socket and TCP. */
export function nbdAddresses(volume: string, nbd: { socket: string | null; tcp: string | null } | null | undefined): { label: string; uri: string }[] {
  if (!nbd) return [];
  const out: { label: string; uri: string }[] = [];
  const name = encodeURIComponent(volume);
  if (nbd.socket) out.push({ label: 'Unix socket', uri: `nbd+unix:///${name}?socket=${nbd.socket}` });
  if (nbd.tcp) {
    const hostPort = nbd.tcp.replace(/^nbd:\/\//, '').replace(/\/.*$/, '');
    out.push({ label: 'TCP', uri: `nbd://${hostPort}/${name}` });
  }
  return out;
}
