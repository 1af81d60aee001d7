/**
 * The engine's export registry beyond what one client session shows: snapshot exports follow
 * the vault (a pruned snapshot disappears and its clients are dropped), survive an engine
 * restart, and share no state with the live volume they came from.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Engine } from '../../src-main/engine/engine';
import { NbdServer } from '../../src-main/nbd/server';
import { RawClient } from '../nbd/raw-client';
import { mustRun, serveEngine, waitFor, type EngineServed } from './fixture';

const MiB = 1 << 20;
const served: EngineServed[] = [];
afterEach(async () => {
  for (const s of served.splice(0)) await s.cleanup();
});

describe('snapshot exports follow the vault', () => {
  it('a pruned snapshot leaves the list and its connected clients are disconnected; the kept one still reads', async () => {
    const s = await serveEngine({ deviceBytes: 64 * MiB });
    served.push(s);
    await s.engine.api['volume.create']({ name: 'p', size: 4 * MiB });
    await mustRun('qemu-io', ['-f', 'raw', s.uri('p'), '-c', 'write -P 0x21 0 1M']);
    const b1 = await s.engine.api['backup.start']({ volume: 'p', policy: 'range' });
    await mustRun('qemu-io', ['-f', 'raw', s.uri('p'), '-c', 'write -P 0x22 0 1M']);
    const b2 = await s.engine.api['backup.start']({ volume: 'p', policy: 'range', full: true }); // full: b1 is nobody's parent
    await s.registry.refresh();
    const names = s.registry.list().map((e) => e.name);
    expect(names).toEqual(expect.arrayContaining(['p', `p@${b1.snapshotId}`, `p@${b2.snapshotId}`]));

    const c = await RawClient.connect(s.socket);
    await c.go(`p@${b1.snapshotId}`);
    const r = await c.request(0, 0, 4096);
    expect(r.error).toBe(0);
    expect(r.data!.every((x) => x === 0x21)).toBe(true);

    const pruned = await s.engine.api['vault.prune']({ keepLast: 1 });
    expect(pruned.removed.map((x) => x.id)).toContain(b1.snapshotId);
    expect(await c.waitClosed(10_000)).toBe(true);
    await s.registry.refresh();
    expect(s.registry.list().map((e) => e.name)).not.toContain(`p@${b1.snapshotId}`);
    await mustRun('qemu-io', ['-f', 'raw', '-r', s.uri(`p@${b2.snapshotId}`), '-c', 'read -P 0x22 0 1M']);
  }, 60_000);

  it('snapshots of the default vault are exported again after the engine restarts', async () => {
    const s = await serveEngine({ deviceBytes: 64 * MiB });
    served.push(s);
    await s.engine.api['volume.create']({ name: 'r', size: 8 * MiB });
    const data = crypto.randomBytes(8 * MiB);
    const src = path.join(s.dir, 'src.img');
    fs.writeFileSync(src, data);
    await mustRun('nbdcopy', [src, s.uri('r')]);
    const b = await s.engine.api['backup.start']({ volume: 'r', policy: 'volume' });
    await s.server.close();
    await s.engine.close();

    const engine = await Engine.open({ dataDir: s.dataDir });
    const registry = engine.exports;
    const server = new NbdServer(registry);
    await server.listenUnix(s.socket);
    // cleanup() closes these instead of the first ones.
    Object.assign(s, { engine, registry, server });
    await waitFor(() => registry.list().some((e) => e.name === `r@${b.snapshotId}`), 10_000, 'the snapshot export after restart');
    const out = path.join(s.dir, 'out.img');
    await mustRun('nbdcopy', [s.uri(`r@${b.snapshotId}`), out]);
    expect(fs.readFileSync(out).equals(data)).toBe(true);
  }, 60_000);
});
