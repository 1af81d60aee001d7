/**
 * Volume bytes reach their device files in writes of at most WRITE_PIECE_BYTES (the page cache
 * sizes a file's folios by the write that made them, and small writes into large folios cost
 * 5–12× more: small-folio-writes.ts). Checked on the device writes themselves, recorded under a
 * real Env: the bytes land where they belong, a failure stops the rest and leaves nothing in
 * flight, and every way a volume gets big writes — a client's 8 MiB write, write-zeroes, the
 * signature wipe of a new volume, a restore into a volume, a released held write, a write redone
 * from the journal after a crash — writes small pieces.
 */
import { describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Engine } from '../../src-main/engine/engine';
import type { BlockFile, OpenOptions } from '../../src-main/engine/env/env';
import { FaultyEnv } from '../../src-main/engine/env/faulty-env';
import { NodeEnv } from '../../src-main/engine/env/node-env';
import { WRITE_PIECE_BYTES, writePieces } from '../../src-main/engine/volumes/small-folio-writes';
import { BackupSession } from '../../src-main/engine/backup/backup-session';
import { hookFileWrites, noProbe, openTestVolume, readImage, useTempDirs } from '../engine/helpers';

const mk = useTempDirs();
const MiB = 1 << 20;

/** Every write to a file whose path contains `watch`: its length, and how many were in flight at once. */
class RecordingEnv extends NodeEnv {
  lengths: number[] = [];
  inFlight = 0;
  maxInFlight = 0;
  constructor(private readonly watch: string) {
    super();
  }
  override async open(p: string, opts?: OpenOptions): Promise<BlockFile> {
    const f = await super.open(p, opts);
    return p.includes(this.watch) ? this.wrap(f) : f;
  }
  /** The files refuse fallocate (as a file system without it would): write-zeroes writes zeroes, in pieces. */
  wrap(f: BlockFile): BlockFile {
    const hooked = this.hook(f);
    return Object.create(hooked, { zeroRange: { value: () => Promise.resolve(false) } }) as BlockFile;
  }
  private hook(f: BlockFile): BlockFile {
    return hookFileWrites(f, (_f, op, buf, _pos, next) => {
      if (op === 'writev' || op === 'writevSync') throw new Error(`unexpected ${op} to a device`);
      this.lengths.push((buf as Buffer).length);
      if (op === 'writeSync') return next();
      this.maxInFlight = Math.max(this.maxInFlight, ++this.inFlight);
      return (next() as Promise<void>).finally(() => this.inFlight--);
    });
  }
  reset(): void {
    this.lengths = [];
    this.maxInFlight = 0;
  }
}

describe('writePieces', () => {
  it('writes every byte in place, in pieces of at most WRITE_PIECE_BYTES, at most eight in flight', async () => {
    const d = mk();
    const p = path.join(d, 'dev.img');
    fs.writeFileSync(p, Buffer.alloc(8 * MiB));
    const env = new RecordingEnv('dev.img');
    const f = await env.open(p);
    try {
      const a = crypto.randomBytes(4 * MiB + 12345);
      await writePieces(f, a, 4096);
      expect(Math.max(...env.lengths)).toBe(WRITE_PIECE_BYTES);
      expect(env.lengths.reduce((s, n) => s + n, 0)).toBe(a.length);
      expect(env.maxInFlight).toBe(8);
      const b = crypto.randomBytes(3 * WRITE_PIECE_BYTES + 1000);
      env.reset();
      await writePieces(f, b, 6 * MiB + 512);
      expect(env.lengths).toEqual([WRITE_PIECE_BYTES, WRITE_PIECE_BYTES, WRITE_PIECE_BYTES, 1000]);
      env.reset();
      await writePieces(f, Buffer.alloc(4096, 1), 0);
      expect(env.lengths, 'a small write is one write').toEqual([4096]);
      const img = fs.readFileSync(p);
      expect(img.subarray(4096, 4096 + a.length).equals(a)).toBe(true);
      expect(img.subarray(6 * MiB + 512, 6 * MiB + 512 + b.length).equals(b)).toBe(true);
      expect(img[0]).toBe(1);
    } finally {
      await f.close();
    }
  });

  it('stops at the first failed piece and settles only once none is in flight', async () => {
    const d = mk();
    const p = path.join(d, 'dev.img');
    fs.writeFileSync(p, Buffer.alloc(4 * MiB));
    const faulty = new FaultyEnv(new NodeEnv());
    faulty.inject({ op: 'write', path: 'dev.img', error: 'EIO', after: 5 });
    const rec = new RecordingEnv('dev.img');
    const f = rec.wrap(await faulty.open(p));
    try {
      await expect(writePieces(f, crypto.randomBytes(4 * MiB), 0)).rejects.toMatchObject({ code: 'EIO' });
      expect(rec.inFlight, 'no piece still writing once the promise settles').toBe(0);
      // The 6th piece failed; the other seven lanes may each have started one more, nothing after that.
      expect(rec.lengths.length).toBeGreaterThanOrEqual(6);
      expect(rec.lengths.length).toBeLessThanOrEqual(13);
    } finally {
      await f.close();
    }
  });
});

describe('a volume writes its devices in small pieces', () => {
  it('client writes, write-zeroes, the signature wipe of a new volume and a restore into one', async () => {
    const d = mk();
    const env = new RecordingEnv('disk.img');
    const e = await Engine.open({ dataDir: path.join(d, 'data'), env });
    try {
      await e.api['device.add']({ path: path.join(d, 'disk.img'), create: true, size: 128 * MiB });
      // A deleted volume's bytes left in the space the new one gets: the wipe has something to zero.
      await e.api['volume.create']({ name: 'old', size: 32 * MiB });
      await e.volume('old').write(0, crypto.randomBytes(32 * MiB));
      await e.api['volume.delete']({ name: 'old' });
      env.reset();
      await e.api['volume.create']({ name: 'live', size: 32 * MiB });
      expect(env.lengths.reduce((s, n) => s + n, 0), 'the wipe: first and last MiB (and a label update)').toBeGreaterThanOrEqual(2 * MiB);
      expect(Math.max(...env.lengths)).toBeLessThanOrEqual(WRITE_PIECE_BYTES);
      expect((await e.volume('live').read(0, MiB)).equals(Buffer.alloc(MiB)), 'old bytes are gone').toBe(true);

      const vol = e.volume('live');
      const data = crypto.randomBytes(8 * MiB);
      env.reset();
      await vol.write(4 * MiB, data); // one 8 MiB client write
      await vol.writeZeroes(16 * MiB, 3 * MiB);
      expect(env.lengths.reduce((s, n) => s + n, 0)).toBe(11 * MiB);
      expect(Math.max(...env.lengths)).toBeLessThanOrEqual(WRITE_PIECE_BYTES);
      expect((await vol.read(4 * MiB, 8 * MiB)).equals(data)).toBe(true);
      expect((await vol.read(16 * MiB, 3 * MiB)).equals(Buffer.alloc(3 * MiB))).toBe(true);

      const b = await e.api['backup.start']({ volume: 'live', policy: 'range', full: true });
      expect(b.state).toBe('completed');
      env.reset();
      await e.api['restore.start']({ id: b.snapshotId!, toVolume: 'copy' });
      expect(env.lengths.length).toBeGreaterThan(0);
      expect(Math.max(...env.lengths), 'a restore writes 4 MiB regions, in pieces').toBeLessThanOrEqual(WRITE_PIECE_BYTES);
      expect((await e.volume('copy').read(4 * MiB, 8 * MiB)).equals(data)).toBe(true);
    } finally {
      await e.close();
    }
  }, 60_000);

  it('released held writes and writes redone from the journal after a crash', async () => {
    const d = mk();
    const env = new RecordingEnv('vol.img');
    const tv = await openTestVolume(d, 'vol', 16 * MiB, { env });
    // Held (a whole-volume backup), then released: one 2 MiB write, and 64 adjacent 4 KiB ones
    // that a release gathers from the journal into runs.
    const s = await BackupSession.begin(tv.vol, 'held', 'volume', noProbe);
    const big = crypto.randomBytes(2 * MiB);
    const smalls = Array.from({ length: 64 }, () => crypto.randomBytes(4096));
    await Promise.all([tv.vol.write(0, big), ...smalls.map((b, k) => tv.vol.write(4 * MiB + k * 4096, b))]);
    env.reset();
    await s.end('snap');
    expect(env.lengths.reduce((n, l) => n + l, 0)).toBe(2 * MiB + 64 * 4096);
    expect(Math.max(...env.lengths)).toBeLessThanOrEqual(WRITE_PIECE_BYTES);
    expect(readImage(tv.imagePath, 0, 2 * MiB).equals(big)).toBe(true);
    expect(readImage(tv.imagePath, 4 * MiB, 64 * 4096).equals(Buffer.concat(smalls))).toBe(true);

    // Held and acknowledged, then the process dies: reopening redoes them from the journal.
    await BackupSession.begin(tv.vol, 'crashed', 'volume', noProbe);
    const again = crypto.randomBytes(2 * MiB);
    await tv.vol.write(8 * MiB, again);
    await tv.vol.flush();
    await tv.vol.abandon();
    await tv.file.close();
    env.reset();
    const r = await tv.reopen();
    expect(r.report.redone).toBe(1);
    expect(env.lengths.reduce((n, l) => n + l, 0)).toBeGreaterThanOrEqual(2 * MiB);
    expect(Math.max(...env.lengths)).toBeLessThanOrEqual(WRITE_PIECE_BYTES);
    expect(readImage(tv.imagePath, 8 * MiB, 2 * MiB).equals(again)).toBe(true);
    await r.vol.close();
    await tv.file.close();
  });
});
