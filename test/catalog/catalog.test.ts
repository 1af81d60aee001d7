import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { build } from 'esbuild';
import { Catalog } from '../../src-main/engine/catalog/catalog';
import { SCHEMA_VERSION } from '../../src-main/engine/catalog/migrations';

const MiB = 1024 * 1024;
let dir: string;
let dbPath: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hf-cat-'));
  dbPath = path.join(dir, 'catalog.db');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const sha = (p: string) => crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');

describe('Catalog', () => {
  it('creates the schema in WAL mode and records the migration count in user_version', () => {
    const c = Catalog.open(dbPath);
    expect(c.schemaVersion).toBe(SCHEMA_VERSION);
    c.close();
    const raw = new Database(dbPath, { readonly: true });
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(raw.prepare("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name").pluck().all()).toEqual(['backups', 'devices', 'extents', 'schedules', 'settings', 'volumes']);
    raw.close();
  });

  it('refuses a catalog from a newer Holdfast with CATALOG_TOO_NEW and leaves the file byte-for-byte unchanged', () => {
    const raw = new Database(dbPath);
    raw.exec('CREATE TABLE future (x)');
    raw.pragma(`user_version = ${SCHEMA_VERSION + 5}`);
    raw.close();
    const before = sha(dbPath);
    const files = fs.readdirSync(dir).sort();
    expect(() => Catalog.open(dbPath)).toThrow(expect.objectContaining({ code: 'CATALOG_TOO_NEW', message: expect.stringMatching(/Update Holdfast/) }));
    expect(sha(dbPath)).toBe(before);
    expect(fs.readdirSync(dir).sort()).toEqual(files);
    const check = new Database(dbPath, { readonly: true });
    expect(check.pragma('journal_mode', { simple: true })).toBe('delete');
    check.close();
  });

  it('refuses a file that is not a catalog with IO_ERROR and leaves it alone', () => {
    fs.writeFileSync(dbPath, 'these are my notes, not a database\n'.repeat(200));
    const before = sha(dbPath);
    expect(() => Catalog.open(dbPath)).toThrow(expect.objectContaining({ code: 'IO_ERROR', message: expect.stringMatching(/not a readable Holdfast catalog/) }));
    expect(sha(dbPath)).toBe(before);
  });

  it('keeps a committed change when the owning process is killed -9 right after the commit', async () => {
    const bundle = path.join(dir, 'child.cjs');
    await build({
      stdin: {
        contents: `import { Catalog } from './catalog';
          const c = Catalog.open(process.argv[2]!);
          c.addDevice({ path: '/x/a.img', kind: 'image', size: 1 << 30, dataStart: 1 << 20, labelUuid: 'u' });
          c.setSetting('k', 'v');
          process.kill(process.pid, 'SIGKILL');`,
        resolveDir: path.resolve(__dirname, '../../src-main/engine/catalog'),
        loader: 'ts',
      },
      outfile: bundle,
      bundle: true,
      platform: 'node',
      format: 'cjs',
      external: ['better-sqlite3'],
      logLevel: 'warning',
    });
    const r = spawnSync(process.execPath, [bundle, dbPath], { env: { ...process.env, NODE_PATH: path.resolve(__dirname, '../../node_modules') } });
    expect(r.signal).toBe('SIGKILL');
    expect(fs.existsSync(dbPath + '-wal')).toBe(true);
    const c = Catalog.open(dbPath);
    expect(c.getSetting('k')).toBe('v');
    expect(c.getDevice('/x/a.img')).toMatchObject({ labelUuid: 'u' });
    c.close();
  });

  it('keeps devices, volumes with extents, backups and settings across reopen', () => {
    let c = Catalog.open(dbPath);
    const d = c.addDevice({ path: '/x/a.img', kind: 'image', size: 64 * MiB, dataStart: MiB, labelUuid: 'u1' });
    const v = c.createVolume('data', 2 * MiB, 'journal', false, [
      { volumeOffset: 0, deviceId: d.id, deviceOffset: MiB, length: MiB },
      { volumeOffset: MiB, deviceId: d.id, deviceOffset: 4 * MiB, length: MiB },
    ]);
    const synchronous = () => (c as unknown as { db: { pragma(s: string, o: { simple: true }): unknown } }).db.pragma('synchronous', { simple: true });
    expect(synchronous()).toBe(2); // FULL
    c.upsertBackup({ id: 'b1', volumeId: v.id, volume: 'data', policy: 'range', vault: '/v', state: 'running', kind: 'full', startedAt: '2024-01-01T00:00:00Z', endedAt: null, bytesDone: 0, bytesTotal: 2 * MiB, snapshotId: null, error: null });
    // A running row is committed without an fsync; every later commit is durable again.
    expect(synchronous()).toBe(2);
    expect(c.getBackup('b1')).toMatchObject({ state: 'running' });
    c.upsertBackup({ ...c.getBackup('b1')!, state: 'completed', bytesDone: 2 * MiB, snapshotId: 's1', endedAt: '2024-01-01T00:01:00Z' });
    c.setSetting('vault', '/v');
    c.close();
    c = Catalog.open(dbPath);
    expect(c.getDevice('/x/a.img')).toMatchObject({ id: d.id, kind: 'image', size: 64 * MiB, dataStart: MiB, labelUuid: 'u1' });
    expect(c.getVolume('DATA')).toMatchObject({ id: v.id, name: 'data', size: 2 * MiB, ackMode: 'journal', adopted: false });
    expect(c.getVolume(v.id)!.extents).toHaveLength(2);
    expect(c.listBackups()).toEqual([expect.objectContaining({ id: 'b1', state: 'completed', bytesDone: 2 * MiB, snapshotId: 's1', volume: 'data', volumeId: v.id })]);
    expect(c.getSetting('vault')).toBe('/v');
    expect(c.getSetting('nope')).toBeNull();
    c.close();
  });

  it('maps duplicate names and paths to ALREADY_EXISTS and rolls back a half volume', () => {
    const c = Catalog.open(dbPath);
    const d = c.addDevice({ path: '/x/a.img', kind: 'image', size: 64 * MiB, dataStart: MiB, labelUuid: 'u1' });
    expect(() => c.addDevice({ path: '/x/a.img', kind: 'image', size: 64 * MiB, dataStart: MiB, labelUuid: 'u2' })).toThrow(expect.objectContaining({ code: 'ALREADY_EXISTS' }));
    c.createVolume('data', MiB, 'journal', false, [{ volumeOffset: 0, deviceId: d.id, deviceOffset: MiB, length: MiB }]);
    expect(() => c.createVolume('Data', MiB, 'journal', false, [{ volumeOffset: 0, deviceId: d.id, deviceOffset: 2 * MiB, length: MiB }])).toThrow(
      expect.objectContaining({ code: 'ALREADY_EXISTS' }),
    );
    // extents that do not sum to the size: the invariant fails and nothing of the volume remains
    expect(() => c.createVolume('short', 2 * MiB, 'journal', false, [{ volumeOffset: 0, deviceId: d.id, deviceOffset: 3 * MiB, length: MiB }])).toThrow(
      expect.objectContaining({ code: 'INTERNAL' }),
    );
    expect(c.getVolume('short')).toBeNull();
    expect(c.allExtents()).toHaveLength(1);
    expect(() => c.removeDevice(d.id)).toThrow(expect.objectContaining({ code: 'IN_USE' }));
    c.deleteVolume(c.getVolume('data')!.id);
    expect(c.allExtents()).toHaveLength(0);
    c.removeDevice(d.id);
    expect(c.listDevices()).toEqual([]);
    c.close();
  });

  it('deleting an adopted volume also forgets the device row made for it', () => {
    const c = Catalog.open(dbPath);
    const d = c.addDevice({ path: '/x/disk.img', kind: 'adopted-image', size: 8 * MiB, dataStart: 0, labelUuid: null });
    const v = c.createVolume('disk', 8 * MiB, 'journal', true, [{ volumeOffset: 0, deviceId: d.id, deviceOffset: 0, length: 8 * MiB }]);
    c.deleteVolume(v.id);
    expect(c.getDevice(d.id)).toBeNull();
    c.close();
  });
});
