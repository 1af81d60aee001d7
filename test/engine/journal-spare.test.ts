/**
 * The next journal segment is created ahead (past half of the current one), so a segment switch
 * never makes appends wait for an open and a directory fsync; a segment created ahead is named
 * before its first seq is known, and reopening must not take that name for its first seq.
 */
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { NodeEnv } from '../../src-main/engine/env/node-env';
import { HEADER_SIZE } from '../../src-main/engine/journal/format';
import { VolumeJournal } from '../../src-main/engine/journal/journal';
import { useTempDirs } from './helpers';

const mk = useTempDirs();
const segments = (d: string) => fs.readdirSync(d).filter((n) => n.endsWith('.log')).sort();
const RECORD = 64; // payload bytes; each record is a header plus this
const OPTS = { segmentBytes: 2048, capacity: 1 << 20 };

/** fsyncDir takes `ms` (as it did on the bench VM while the kernel wrote back a big file). */
class SlowDirSyncEnv extends NodeEnv {
  dirSyncs = 0;
  constructor(private readonly ms: number) {
    super();
  }
  override async fsyncDir(p: string): Promise<void> {
    this.dirSyncs++;
    await new Promise((r) => setTimeout(r, this.ms));
    return super.fsyncDir(p);
  }
}

/** Reopens the journal in `d` and checks it holds records 1..n in order; the caller closes it. */
async function reopenWith(d: string, env: NodeEnv, n: number) {
  const r = await VolumeJournal.open(d, env, OPTS);
  expect(r.records.map((x) => x.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
  return r;
}

/** Appends one record the way the write path does: waits only when prepareAppend asks it to. */
async function appendOne(j: VolumeJournal, i: number): Promise<boolean> {
  const prep = j.prepareAppend();
  if (prep) await prep;
  j.appendData(i * 512, Buffer.alloc(RECORD, i & 0xff), 0);
  return prep !== null;
}

describe('journal segments created ahead', () => {
  it('a steady writer never waits at a segment switch once the next segment was created ahead', async () => {
    const d = mk();
    const env = new SlowDirSyncEnv(30);
    const { journal } = await VolumeJournal.open(d, env, OPTS);
    let waits = 0;
    for (let i = 0; i < 200; i++) {
      if (await appendOne(journal, i)) waits++;
      // A writer slower than one directory fsync per half segment (~10 records here: ~100 ms,
      // against the 30 ms this env adds to the real fsync, which a loaded machine can make slow).
      if (i % 2 === 1) await new Promise((r) => setTimeout(r, 20));
    }
    // The very first segment has nothing to be created ahead of; every later switch (~15) is free.
    expect(segments(d).length).toBeGreaterThan(10);
    expect(waits).toBe(1);
    expect(env.dirSyncs).toBeGreaterThanOrEqual(segments(d).length);
    await journal.close();
    await (await reopenWith(d, env, 200)).journal.close();
  });

  it('a switch waits for the next segment when the writer outruns its creation', async () => {
    const d = mk();
    const env = new SlowDirSyncEnv(40);
    const { journal } = await VolumeJournal.open(d, env, OPTS);
    let waits = 0;
    for (let i = 0; i < 100; i++) if (await appendOne(journal, i)) waits++;
    expect(waits).toBeGreaterThan(1);
    await journal.close();
    await (await reopenWith(d, env, 100)).journal.close();
  });

  it('after reopening, a checkpoint inside the segment before one created ahead keeps that segment', async () => {
    const d = mk();
    const env = new NodeEnv();
    const { journal } = await VolumeJournal.open(d, env, OPTS);
    for (let i = 0; i < 60; i++) {
      await appendOne(journal, i);
      // Let each spare be created as soon as it is asked for: its name is the seq of that moment,
      // several records before its own first one.
      await new Promise((r) => setTimeout(r, 2));
    }
    const names = segments(d);
    expect(names.length).toBeGreaterThan(2);
    await journal.close();

    const r = await reopenWith(d, env, 60);
    // The second segment is named after the seq when it was created, before the first one
    // filled: the first still holds records past that seq, so a checkpoint through it must keep
    // the first segment (taking the name for the second's first seq dropped it).
    const secondName = Number(names[1]!.slice(0, 16));
    const inFirst = fs.statSync(`${d}/${names[0]}`).size / (HEADER_SIZE + RECORD);
    expect(inFirst).toBeGreaterThan(secondName);
    await r.journal.dropThrough(secondName);
    await r.journal.close();
    const again = await VolumeJournal.open(d, env, OPTS, secondName + 1);
    const seqs = again.records.map((x) => x.seq);
    for (let s = secondName + 1; s <= 60; s++) expect(seqs).toContain(s);
    await again.journal.close();
  });

  it('an unused segment created ahead is removed on close, and one a crash left behind is harmless', async () => {
    const d = mk();
    const env = new NodeEnv();
    const { journal } = await VolumeJournal.open(d, env, OPTS);
    for (let i = 0; i < 20; i++) await appendOne(journal, i); // the first segment full, the next created ahead
    await new Promise((r) => setTimeout(r, 50));
    const before = segments(d);
    const empties = before.filter((n) => fs.statSync(`${d}/${n}`).size === 0);
    expect(empties.length).toBe(1); // the spare, created ahead
    // A crash now (no close) leaves it; reopening appends after everything kept.
    fs.cpSync(d, `${d}-crash`, { recursive: true });
    await journal.close();
    expect(segments(d).filter((n) => fs.statSync(`${d}/${n}`).size === 0)).toEqual([]);

    const r = await reopenWith(`${d}-crash`, env, 20);
    for (let i = 20; i < 60; i++) await appendOne(r.journal, i);
    await r.journal.close();
    await (await reopenWith(`${d}-crash`, env, 60)).journal.close();
    fs.rmSync(`${d}-crash`, { recursive: true, force: true });
  });
});
