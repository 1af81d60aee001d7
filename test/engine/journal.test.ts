import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { NodeEnv } from '../../src-main/engine/env/node-env';
import { RecordType } from '../../src-main/engine/journal/format';
import { VolumeJournal } from '../../src-main/engine/journal/journal';
import { useTempDirs } from './helpers';

const mk = useTempDirs();

describe('journal segments', () => {
  it('keeps records that a crash left behind a persisted checkpoint, and everything after them', async () => {
    const d = mk();
    const env = new NodeEnv();
    const opts = { segmentBytes: 200, capacity: 1 << 20 };
    const { journal } = await VolumeJournal.open(d, env, opts);
    for (let i = 0; i < 12; i++) {
      await journal.ready();
      journal.appendData(i * 512, Buffer.alloc(64, i), 0);
    }
    await journal.close();
    expect(fs.readdirSync(d).filter((n) => n.endsWith('.log')).length).toBeGreaterThan(2);
    // The checkpoint said "through 7" but the crash came before segments were dropped.
    const r = await VolumeJournal.open(d, env, opts, 8);
    expect(r.discarded).toBeNull();
    expect(r.records.map((x) => x.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(r.journal.lastSeq).toBe(12);
    await r.journal.close();
  });

  it('drops whole segments only at or below the checkpoint and keeps appending in order', async () => {
    const d = mk();
    const env = new NodeEnv();
    const opts = { segmentBytes: 200, capacity: 1 << 20 };
    const { journal } = await VolumeJournal.open(d, env, opts);
    for (let i = 0; i < 12; i++) {
      await journal.ready();
      journal.appendData(0, Buffer.alloc(64, i), 0);
    }
    await journal.dropThrough(6);
    await journal.ready();
    journal.appendBackup(RecordType.BACKUP_BEGIN, { backupId: 'x' });
    await journal.close();
    const r = await VolumeJournal.open(d, env, opts, 7);
    const seqs = r.records.map((x) => x.seq);
    expect(seqs[seqs.length - 1]).toBe(13);
    expect(seqs).toEqual(expect.arrayContaining([7, 8, 9, 10, 11, 12, 13]));
    expect(Math.min(...seqs)).toBeLessThanOrEqual(7);
    await r.journal.close();
  });
});
