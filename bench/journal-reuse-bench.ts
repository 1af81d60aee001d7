/**
 * Journal segment files reused vs new ones (the peer: the same journal with `spareBytes: 0`,
 * which deletes a dropped segment and starts the next in a new file, as every journal did
 * before), in the same run, alternating:
 *   - held-write records: 4 KiB DATA records appended and committed one at a time, as a range
 *     backup's held writes reach the journal on the engine thread (µs per record, p99 per commit);
 *   - flushes: a 4 KiB record then sync() (fdatasync), as a client's FUA write or flush waits.
 * Each round first fills SEGMENTS segments and drops them (a backup and the checkpoint at its
 * end), so the reusing journal has that many spares; then it measures the next SEGMENTS.
 *   node dist/bench/journal-reuse-bench.cjs [--rounds N] [--segments N]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NodeEnv } from '../src-main/engine/env/node-env';
import { crc32 } from '../src-main/engine/journal/format';
import { VolumeJournal, type JournalOptions } from '../src-main/engine/journal/journal';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const ROUNDS = arg('--rounds', 3);
const SEGMENTS = arg('--segments', 2);
const SEGMENT_BYTES = 64 << 20;
const FLUSHES = 2000;

const env = new NodeEnv();
const data = Buffer.alloc(4096, 0x5a);
const dataCrc = crc32(data);

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

async function fill(j: VolumeJournal, bytes: number, lat?: number[]): Promise<number> {
  const t0 = performance.now();
  let n = 0;
  for (let written = 0; written < bytes; written += 4096 + 40, n++) {
    const p = j.prepareAppend();
    if (p) await p;
    const t = lat ? performance.now() : 0;
    j.appendData((n % 131072) * 4096, data, dataCrc);
    if (lat) lat.push((performance.now() - t) * 1000);
  }
  return ((performance.now() - t0) * 1000) / n;
}

async function round(dir: string, reuse: boolean) {
  fs.rmSync(dir, { recursive: true, force: true });
  const opts: JournalOptions = { segmentBytes: SEGMENT_BYTES, capacity: 1 << 30, spareBytes: reuse ? SEGMENTS * SEGMENT_BYTES : 0 };
  const { journal } = await VolumeJournal.open(dir, env, opts);
  await fill(journal, SEGMENTS * SEGMENT_BYTES); // a backup's held writes
  await journal.sync();
  await journal.dropThrough(journal.lastSeq); // the checkpoint at its end
  if (reuse && journal.spareCount < SEGMENTS - 1) throw new Error(`expected ${SEGMENTS - 1}+ spares, have ${journal.spareCount}`);
  const lat: number[] = [];
  const usPerRecord = await fill(journal, (SEGMENTS - 1) * SEGMENT_BYTES, lat); // the next backup's
  lat.sort((a, b) => a - b);
  const flush: number[] = [];
  for (let i = 0; i < FLUSHES; i++) {
    const p = journal.prepareAppend();
    if (p) await p;
    journal.appendData(i * 4096, data, dataCrc);
    const t = performance.now();
    await journal.sync();
    flush.push((performance.now() - t) * 1000);
  }
  flush.sort((a, b) => a - b);
  await journal.close();
  return { usPerRecord, commitP99: pct(lat, 0.99), flushP50: pct(flush, 0.5), flushP99: pct(flush, 0.99) };
}

async function main() {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'hf-journal-bench-'));
  const runs: Record<'reused' | 'new', Array<Awaited<ReturnType<typeof round>>>> = { reused: [], new: [] };
  try {
    for (let r = 0; r < ROUNDS; r++) {
      for (const reuse of r % 2 === 0 ? [false, true] : [true, false]) runs[reuse ? 'reused' : 'new'].push(await round(path.join(base, 'j'), reuse));
    }
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
  const med = (k: 'reused' | 'new', f: keyof Awaited<ReturnType<typeof round>>) => {
    const v = runs[k].map((x) => x[f]).sort((a, b) => a - b);
    return v[Math.floor(v.length / 2)]!;
  };
  const rows = (['usPerRecord', 'commitP99', 'flushP50', 'flushP99'] as const).map((f) => ({
    case: {
      usPerRecord: 'held-write record (4 KiB DATA) appended + committed, µs per record',
      commitP99: 'one commit of such a record, p99 µs',
      flushP50: '4 KiB record + fdatasync, p50 µs',
      flushP99: '4 KiB record + fdatasync, p99 µs',
    }[f],
    reused: +med('reused', f).toFixed(2),
    new: +med('new', f).toFixed(2),
    ratio: +(med('new', f) / med('reused', f)).toFixed(2),
  }));
  const out = { bench: 'journal-reuse', date: new Date().toISOString(), rounds: ROUNDS, segments: SEGMENTS, runs, rows };
  const resultsDir = path.resolve(process.cwd(), 'bench/results');
  fs.mkdirSync(resultsDir, { recursive: true });
  fs.writeFileSync(path.join(resultsDir, 'journal-reuse.json'), JSON.stringify(out, null, 2) + '\n');
  console.log(`| journal segments (${ROUNDS} rounds each, medians) | reused file | new file (peer: no spares) | new ÷ reused (> 1: reuse faster) |`);
  console.log('|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.case} | ${r.reused} | ${r.new} | ${r.ratio}× |`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
