/**
 * Journal segment files are reused: a dropped full segment becomes a spare, the next segment
 * is a spare renamed. The file then holds its earlier use's records past the new ones; none of
 * them may ever be read back as the journal's.
 */
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { NodeEnv } from '../../src-main/engine/env/node-env';
import { BackupSession } from '../../src-main/engine/backup/backup-session';
import { encodeHeader, HEADER_SIZE, RecordType } from '../../src-main/engine/journal/format';
import { SPARE_SHARE, VolumeJournal } from '../../src-main/engine/journal/journal';
import { noProbe, openTestVolume, pattern, rng, useTempDirs } from './helpers';

const mk = useTempDirs();
const env = new NodeEnv();
// 240-byte records: a segment switches after its fifth; 2 spares at most (SPARE_SHARE of 8 KiB).
const opts = { segmentBytes: 1024, capacity: 8192 };
const payload = (seq: number) => Buffer.alloc(200, seq & 0xff);

async function appendN(j: VolumeJournal, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await j.ready();
    const seq = j.lastSeq + 1;
    j.appendData(seq * 4096, payload(seq), 0);
  }
}

const files = (d: string, ext: string) => fs.readdirSync(d).filter((n) => n.endsWith(ext)).sort();
const inode = (p: string) => fs.statSync(p).ino;

/** Checks that `records` are exactly seqs [from, to] with their own payloads. */
function expectRecords(records: { seq: number; payload: Buffer }[], from: number, to: number): void {
  expect(records.map((r) => r.seq)).toEqual(Array.from({ length: to - from + 1 }, (_, i) => from + i));
  for (const r of records) expect(r.payload.equals(payload(r.seq))).toBe(true);
}

/** A valid record with the given seq, as an earlier use of a file would have left it. */
function staleRecord(seq: number): Buffer {
  const p = payload(seq);
  return Buffer.concat([encodeHeader(RecordType.SUBMIT_DATA, seq, seq * 4096, p.length, 0, p), p]);
}

describe('journal segment files reused', () => {
  it('a dropped full segment becomes a spare (at most SPARE_SHARE of the capacity) and the next segment is that file', async () => {
    expect(SPARE_SHARE).toBe(0.25);
    const d = mk();
    const { journal } = await VolumeJournal.open(d, env, opts);
    expect(journal.maxSpares).toBe(2);
    await appendN(journal, 30); // six segments of five records
    const segs = files(d, '.log');
    expect(segs).toHaveLength(6);
    const inodes = segs.map((n) => inode(path.join(d, n)));
    await journal.dropThrough(20); // the first four go: two become spares, two are deleted
    expect(files(d, '.spare')).toEqual(['0000000000000005.spare', '0000000000000010.spare']);
    expect(files(d, '.log')).toHaveLength(2);
    expect(journal.spareCount).toBe(2);
    await appendN(journal, 12);
    // Seqs 31-35 and 36-40 went into the spares' files, newest first; 41-42 into a new file.
    expect(journal.spareCount).toBe(0);
    expect(files(d, '.spare')).toEqual([]);
    expect(inode(path.join(d, '0000000000000031.log'))).toBe(inodes[1]);
    expect(inode(path.join(d, '0000000000000036.log'))).toBe(inodes[0]);
    expect(inodes.slice(0, 2)).not.toContain(inode(path.join(d, '0000000000000041.log')));
    // A segment the journal moved on from ends at its records (no end mark, no earlier bytes).
    expect(fs.statSync(path.join(d, '0000000000000031.log')).size).toBe(5 * (HEADER_SIZE + 200));
    await journal.close();
    const r = await VolumeJournal.open(d, env, opts, 21);
    expect(r.discarded).toBeNull();
    expectRecords(r.records, 21, 42);
    expect(r.journal.lastSeq).toBe(42);
    await r.journal.close();
  });

  it('a crash with a reused file as the last segment: the reader stops at the end mark, before the earlier records', async () => {
    const d = mk();
    const { journal } = await VolumeJournal.open(d, env, opts);
    await appendN(journal, 30);
    await journal.dropThrough(20);
    await appendN(journal, 7); // 31-35 fill one spare, 36-37 start the other: its records 1-5 follow
    const last = path.join(d, '0000000000000036.log');
    expect(fs.statSync(last).size).toBe(5 * (HEADER_SIZE + 200)); // the earlier use's length
    // No close: a crash. The page cache has every append.
    const r = await VolumeJournal.open(d, env, opts, 21);
    expect(r.discarded).toBeNull();
    expectRecords(r.records, 21, 37);
    // Appending goes on after 37 and the earlier records never come back.
    await appendN(r.journal, 2);
    await r.journal.close();
    const r2 = await VolumeJournal.open(d, env, opts, 21);
    expect(r2.discarded).toBeNull();
    expectRecords(r2.records, 21, 39);
    await r2.journal.close();
    void journal;
  });

  it('a torn write over the end mark of a reused file is discarded as a torn tail, and everything before it kept', async () => {
    const d = mk();
    const { journal } = await VolumeJournal.open(d, env, opts);
    await appendN(journal, 30);
    await journal.dropThrough(20);
    await appendN(journal, 7);
    const last = path.join(d, '0000000000000036.log');
    const fd = fs.openSync(last, 'r+');
    fs.writeSync(fd, Buffer.from('HFJR-torn'), 0, 9, 2 * (HEADER_SIZE + 200)); // where 36-37's end mark is
    fs.closeSync(fd);
    const r = await VolumeJournal.open(d, env, opts, 21);
    expect(r.discarded).toMatch(/0000000000000036\.log at byte 480: (bad magic|crc mismatch)/);
    expectRecords(r.records, 21, 37);
    expect(fs.statSync(last).size).toBe(480); // cut at the tear
    await r.journal.close();
    void journal;
  });

  it('without its end mark, a record of the earlier use ends the last segment quietly; in an earlier segment it discards what follows', async () => {
    const d = mk();
    const { journal } = await VolumeJournal.open(d, env, opts);
    await appendN(journal, 30);
    await journal.close();
    // Last segment (26-30): its end mark replaced by a record of an earlier use.
    const last = path.join(d, '0000000000000026.log');
    const fd = fs.openSync(last, 'r+');
    fs.writeSync(fd, staleRecord(3), 0, HEADER_SIZE + 200, 5 * (HEADER_SIZE + 200));
    fs.closeSync(fd);
    const r = await VolumeJournal.open(d, env, opts);
    expect(r.discarded).toBeNull();
    expectRecords(r.records, 1, 30);
    await r.journal.close();
    // An earlier segment (11-15) with such a record after its own: nothing after it can be trusted.
    fs.appendFileSync(path.join(d, '0000000000000011.log'), staleRecord(4));
    const r2 = await VolumeJournal.open(d, env, opts);
    expect(r2.discarded).toMatch(/0000000000000011\.log at byte 1200: a record of the file's earlier use \(sequence 4\)/);
    expectRecords(r2.records, 1, 15);
    expect(files(d, '.log')).toEqual(['0000000000000001.log', '0000000000000006.log', '0000000000000011.log']);
    expect(r2.journal.lastSeq).toBe(15);
    await r2.journal.close();
    // Zeroes (an end mark) in an earlier segment, with records after it: the same.
    const d3 = mk();
    const { journal: j3 } = await VolumeJournal.open(d3, env, opts);
    await appendN(j3, 12);
    await j3.close();
    fs.appendFileSync(path.join(d3, '0000000000000006.log'), Buffer.alloc(HEADER_SIZE));
    const r3 = await VolumeJournal.open(d3, env, opts);
    expect(r3.discarded).toMatch(/0000000000000006\.log at byte 1200: zeroes where its records should go on/);
    expectRecords(r3.records, 1, 10);
    await r3.journal.close();
  });

  it('a spare taken but never written (a crash between taking it and the switch) holds nothing of the journal', async () => {
    const d = mk();
    const { journal } = await VolumeJournal.open(d, env, opts);
    await appendN(journal, 30);
    await journal.dropThrough(20);
    await journal.close();
    fs.renameSync(path.join(d, '0000000000000010.spare'), path.join(d, '0000000000000031.log'));
    const r = await VolumeJournal.open(d, env, opts, 21);
    expect(r.discarded).toBeNull();
    expectRecords(r.records, 21, 30);
    expect(r.journal.lastSeq).toBe(30);
    expect(files(d, '.log')).toEqual(['0000000000000021.log', '0000000000000026.log']); // the taken spare held nothing
    await appendN(r.journal, 3);
    await r.journal.close();
    const r2 = await VolumeJournal.open(d, env, opts, 21);
    expect(r2.discarded).toBeNull();
    expectRecords(r2.records, 21, 33);
    await r2.journal.close();
  });

  it('a reopened journal numbers its records above every spare’s, even with no checkpoint to go by', async () => {
    const d = mk();
    const { journal } = await VolumeJournal.open(d, env, opts);
    await appendN(journal, 12);
    // Every segment goes: 1-5 and 6-10 become spares, and the current one (11-12) restarts in
    // the newest spare, as segment 13.
    await journal.dropThrough(12);
    await journal.close();
    expect(files(d, '.spare')).toEqual(['0000000000000005.spare']);
    expect(files(d, '.log')).toEqual(['0000000000000013.log']);
    const r = await VolumeJournal.open(d, env, opts); // as if the volume's state were lost: minNextSeq 1
    expect(r.discarded).toBeNull();
    expect(r.records).toEqual([]);
    expect(r.journal.lastSeq).toBe(12);
    await appendN(r.journal, 8); // 13-17 over the records 6-10, 18-20 over 1-5
    await r.journal.close();
    const r2 = await VolumeJournal.open(d, env, opts);
    expect(r2.discarded).toBeNull();
    expectRecords(r2.records, 13, 20);
    await r2.journal.close();
    // With only spares left, the journal numbers above the highest one's name.
    fs.rmSync(path.join(d, '0000000000000013.log'));
    fs.rmSync(path.join(d, '0000000000000018.log'));
    fs.writeFileSync(path.join(d, '0000000000000040.spare'), staleRecord(40));
    const r3 = await VolumeJournal.open(d, env, opts);
    expect(r3.journal.lastSeq).toBe(40);
    await r3.journal.close();
  });

  it('keeps no more spares than it may when reopened with a smaller capacity', async () => {
    const d = mk();
    const { journal } = await VolumeJournal.open(d, env, opts);
    await appendN(journal, 30);
    await journal.dropThrough(20);
    await journal.close();
    const r = await VolumeJournal.open(d, env, { segmentBytes: 1024, capacity: 4096 }, 21);
    expect(r.journal.maxSpares).toBe(1);
    expect(files(d, '.spare')).toEqual(['0000000000000010.spare']);
    expect(r.journal.lastSeq).toBe(30);
    await r.journal.close();
  });
});

describe('a volume on reused journal files', () => {
  it('back-to-back backups with held writes, then a crash mid-backup: every acknowledged write is there, nothing older comes back', async () => {
    const d = mk();
    const size = 4 << 20;
    // 64 KiB segments, 1 MiB capacity: 4 spares; a backup's held 4 KiB writes fill several segments.
    const t = await openTestVolume(d, 'vol', size, { segmentBytes: 64 << 10, capacity: 1 << 20 });
    const model = Buffer.alloc(size);
    const rand = rng(7);
    let fill = 1;
    const writeSome = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const off = Math.floor(rand() * (size / 4096)) * 4096;
        const data = pattern(fill++ & 0xff || 1, 4096);
        await t.vol.write(off, data);
        data.copy(model, off);
      }
    };
    const jdir = path.join(d, 'journal-vol');
    for (let round = 0; round < 3; round++) {
      const s = await BackupSession.begin(t.vol, `b${round}`, 'volume', noProbe);
      await writeSome(60); // held: whole-volume policy
      await s.end(`snap${round}`);
      await t.vol.flush();
    }
    expect(files(jdir, '.spare').length).toBeGreaterThan(0);
    const spares = files(jdir, '.spare').map((n) => inode(path.join(jdir, n)));
    // One more backup whose held writes go into reused files, then the process dies.
    await BackupSession.begin(t.vol, 'last', 'volume', noProbe);
    await writeSome(60);
    const reused = files(jdir, '.log').map((n) => inode(path.join(jdir, n)));
    expect(reused.some((i) => spares.includes(i))).toBe(true);
    await t.vol.abandon();
    await t.file.close();
    const r = await t.reopen();
    expect(r.report.discarded).toBeNull();
    expect(r.report.interruptedBackupId).toBe('last');
    expect((await r.vol.read(0, size)).equals(model)).toBe(true);
    await r.vol.close();
    // And once more, from a clean close.
    const r2 = await t.reopen();
    expect(r2.report.redone).toBe(0);
    expect((await r2.vol.read(0, size)).equals(model)).toBe(true);
    await r2.vol.close();
  });
});
