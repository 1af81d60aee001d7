/**
 * The snapshot catalogue behind the engine's export registry: a vault that is gone reads as no
 * snapshots (and drops their clients), but a transient read error keeps the last catalogue, so
 * connected snapshot clients are not cut off by one failed listing.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Snapshot } from '../../src-shared/contract';
import { HoldfastError } from '../../src-shared/errors';
import { EngineEvents } from '../../src-main/engine/events';
import { nodeEnv } from '../../src-main/engine/env/node-env';
import { exportRegistryOf, type EngineExportRegistry } from '../../src-main/engine/nbd-exports';
import { StaticExportRegistry } from '../../src-main/nbd/static-registry';

const snap = (id: string): Snapshot => ({
  id,
  volume: 'v',
  size: 1 << 20,
  createdAt: '2026-11-25T00:00:00.000Z',
  policy: 'range',
  kind: 'full',
  parent: null,
  storedBytes: 0,
  vault: '/x',
});

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function registryWith(answer: () => Promise<Snapshot[]>): { reg: EngineExportRegistry; vault: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hf-cat-'));
  const vault = path.join(dir, 'vault');
  fs.mkdirSync(vault);
  fs.writeFileSync(path.join(vault, 'vault.json'), '{}'); // only its presence is looked at here
  const reg = exportRegistryOf({
    volumes: new StaticExportRegistry(),
    events: new EngineEvents(),
    backups: { snapshotExport: () => Promise.reject(new Error('not read in this test')) },
    api: { 'snapshot.list': () => answer() },
    env: nodeEnv,
    defaultVault: vault,
  });
  cleanups.push(() => {
    reg.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { reg, vault };
}

describe('snapshot catalogue of the export registry', () => {
  it('keeps the last catalogue and its clients on a transient read error', async () => {
    let answer: () => Promise<Snapshot[]> = async () => [snap('20261125T000000Z-aaaaaa')];
    const { reg } = registryWith(() => answer());
    await reg.refresh();
    expect(reg.list().map((e) => e.name)).toEqual(['v@20261125T000000Z-aaaaaa']);
    const lease = reg.open('v@20261125T000000Z-aaaaaa');
    let revoked = false;
    lease.onRevoke(() => (revoked = true));

    answer = () => Promise.reject(new HoldfastError('IO_ERROR', 'EMFILE: too many open files'));
    await reg.refresh();
    expect(reg.list().map((e) => e.name)).toEqual(['v@20261125T000000Z-aaaaaa']);
    expect(revoked).toBe(false);
    expect(() => reg.open('v@20261125T000000Z-aaaaaa').close()).not.toThrow();

    answer = () => Promise.reject(new HoldfastError('VAULT_MISSING', 'No vault folder.'));
    await reg.refresh();
    expect(reg.list()).toEqual([]);
    expect(revoked).toBe(true);
    expect(() => reg.open('v@20261125T000000Z-aaaaaa')).toThrow(/no volume or snapshot named/);
    lease.close();
  });

  it('a vault folder without vault.json (drive unplugged) has no snapshots', async () => {
    const { reg, vault } = registryWith(async () => [snap('20261125T000000Z-bbbbbb')]);
    await reg.refresh();
    expect(reg.list()).toHaveLength(1);
    fs.rmSync(path.join(vault, 'vault.json'));
    await reg.refresh();
    expect(reg.list()).toEqual([]);
  });
});
