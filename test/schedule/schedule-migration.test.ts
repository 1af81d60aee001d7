import { describe, expect, it } from 'vitest';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Catalog } from '../../src-main/engine/catalog/catalog';
import { MIGRATIONS, SCHEMA_VERSION } from '../../src-main/engine/catalog/migrations';
import { useTempDirs } from '../engine/helpers';

const mk = useTempDirs();

describe('catalog migration 2 (schedules)', () => {
  it('upgrades a version-1 catalog in place, keeping its volumes, and the table refuses malformed rows', () => {
    const p = path.join(mk(), 'catalog.db');
    const raw = new Database(p);
    raw.exec(MIGRATIONS[0]!);
    raw.prepare("INSERT INTO devices (path, kind, size, data_start, added_at) VALUES ('/d.img', 'image', 1048576, 0, 'x')").run();
    raw.prepare("INSERT INTO volumes (name, size, ack_mode, created_at) VALUES ('work', 4096, 'journal', 'x')").run();
    raw.pragma('user_version = 1');
    raw.close();

    const c = Catalog.open(p);
    try {
      expect(SCHEMA_VERSION).toBe(2);
      expect(c.schemaVersion).toBe(2);
      expect(c.getVolume('work')).toMatchObject({ name: 'work', size: 4096 });
      const s = c.schedules.create(
        { target: { kind: 'volume', volumeId: c.getVolume('work')!.id }, frequency: { every: 'week', weekday: 3, at: '07:05' }, onPlugIn: false, vault: '/v', policy: 'range', retention: { keepWeekly: 4 }, enabled: true, nextDueAt: null },
        '2025-01-01T00:00:00.000Z',
      );
      expect(c.schedules.get(s.id)).toMatchObject({ frequency: { every: 'week', weekday: 3, at: '07:05' }, retention: { keepWeekly: 4 } });
      // Neither a time nor a plug-in trigger; a volume target without a volume: the CHECKs refuse them.
      expect(() => c.schedules.create({ ...s, frequency: null, onPlugIn: false }, 'x')).toThrow(/CHECK/);
      expect(() => c.schedules.create({ ...s, target: { kind: 'volume', volumeId: 999 } }, 'x')).toThrow(/FOREIGN KEY/);
    } finally {
      c.close();
    }
  });
});
