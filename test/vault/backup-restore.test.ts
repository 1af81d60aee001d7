import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { runBackup } from '../../src-main/engine/vault/backup-writer';
import { ChunkWorkers } from '../../src-main/engine/vault/chunk-workers';
import { restoreToFile } from '../../src-main/engine/vault/restore';
import { Vault } from '../../src-main/engine/vault/vault';
import { ImageSnapshotSource } from './helpers/image-source';
import { countChunkFiles, dirBytes, makeImage, scatterChange, seeded, sha256File, tempDir } from './helpers/fixtures';

const MiB = 1 << 20;
let t: { dir: string; cleanup: () => void };
beforeEach(() => {
  t = tempDir();
});
afterEach(() => t.cleanup());

async function restoredHash(vault: Vault, id: string, size?: number): Promise<string> {
  const out = path.join(t.dir, `restore-${id}.img`);
  await restoreToFile(vault, id, out);
  const h = sha256File(out, size);
  fs.rmSync(out);
  return h;
}

describe('full backups', () => {
  test('a full backup restores byte for byte, stores no zero chunks, and a second full of the same image stores nothing new', async () => {
    const img = path.join(t.dir, 'vol.img');
    makeImage(img, 32 * MiB);
    const vault = await Vault.init(path.join(t.dir, 'vault'), { chunkSize: MiB });
    const src = new ImageSnapshotSource(img);
    const progress: number[] = [];
    const m = await runBackup(src, vault, { onProgress: (p) => progress.push(p.bytesDone) });
    src.close();
    expect(m.kind).toBe('full');
    expect(src.endedWith).toBe(m.id);
    expect(m.stats.zeroChunks).toBe(8); // the zero quarter: 8 × 1 MiB
    expect(countChunkFiles(vault.dir)).toBe(32 - 8);
    // The text quarter compresses: far less stored than read.
    expect(m.stats.storedBytes).toBeLessThan(0.7 * 24 * MiB);
    expect(progress.at(-1)).toBe(32 * MiB);
    expect(await restoredHash(vault, m.id)).toBe(sha256File(img));

    const again = new ImageSnapshotSource(img, { volume: 'other-volume' });
    const m2 = await runBackup(again, vault, { full: true });
    again.close();
    expect(m2.stats.newChunks).toBe(0);
    expect(m2.stats.storedBytes).toBe(0);
    expect(m2.stats.reusedChunks).toBe(24);
    expect((await vault.listSnapshots()).map((s) => s.id)).toEqual([m.id, m2.id]);
    expect((await vault.listSnapshots('other-volume')).map((s) => s.id)).toEqual([m2.id]);
  });

  test('a vault opened fresh from its folder alone lists and restores its snapshots', async () => {
    const img = path.join(t.dir, 'vol.img');
    makeImage(img, 8 * MiB, 'fresh');
    const dir = path.join(t.dir, 'vault');
    const v1 = await Vault.init(dir);
    const src = new ImageSnapshotSource(img);
    const m = await runBackup(src, v1);
    src.close();
    const v2 = await Vault.open(dir);
    const list = await v2.listSnapshots();
    expect(list.map((s) => [s.id, s.volume, s.size])).toEqual([[m.id, 'vol1', 8 * MiB]]);
    expect(await restoredHash(v2, m.id)).toBe(sha256File(img));
  });
});

describe('point in time while a writer keeps writing', () => {
  for (const policy of ['volume', 'range'] as const) {
    test(`the snapshot is the image as of begin under the ${policy} policy and every write lands afterwards`, async () => {
      const img = path.join(t.dir, 'vol.img');
      makeImage(img, 16 * MiB, policy);
      const before = sha256File(img);
      const vault = await Vault.init(path.join(t.dir, 'vault'), { chunkSize: MiB });
      const src = new ImageSnapshotSource(img, { policy });
      // A writer that never pauses: a 4 KiB write somewhere every millisecond, plus one per source read.
      let n = 0;
      const writes: Array<[number, Buffer]> = [];
      const write = () => {
        const off = ((n * 7919) % 4096) * 4096;
        const data = seeded(`w${n++}`, 4096);
        writes.push([off, data]);
        src.write(off, data);
      };
      const timer = setInterval(write, 1);
      const read = src.read.bind(src);
      src.read = async (o, l) => {
        write();
        return read(o, l);
      };
      const m = await runBackup(src, vault);
      clearInterval(timer);
      src.close();
      expect(src.readsOfCopied).toBe(0);
      expect(n).toBeGreaterThan(10);
      expect(await restoredHash(vault, m.id)).toBe(before);
      // Every write reached the image, in arrival order (later writes to a block win).
      const check = fs.readFileSync(img);
      const expected = Buffer.from(check);
      for (const [off, data] of writes) data.copy(expected, off);
      expect(check.equals(expected)).toBe(true);
      expect(src.held.length).toBe(0);
    });
  }

  test('ranges with held writes are copied first', async () => {
    const img = path.join(t.dir, 'vol.img');
    makeImage(img, 16 * MiB, 'urgent');
    const vault = await Vault.init(path.join(t.dir, 'vault'), { chunkSize: MiB });
    const src = new ImageSnapshotSource(img, { policy: 'range' });
    src.write(13 * MiB + 4096, Buffer.alloc(4096, 1)); // held: region 13 not copied yet
    await runBackup(src, vault);
    src.close();
    expect(src.copied[0]!.offset).toBe(13 * MiB);
  });
});

describe('incrementals', () => {
  test('1% scattered change: only changed blocks are read, the vault grows by ≤ 3× the change, and every snapshot restores', async () => {
    const img = path.join(t.dir, 'vol.img');
    makeImage(img, 64 * MiB, 'inc');
    const vault = await Vault.init(path.join(t.dir, 'vault'));
    const s0 = new ImageSnapshotSource(img);
    const full = await runBackup(s0, vault);
    s0.close();
    const fullHash = sha256File(img);
    const sizeAfterFull = dirBytes(vault.dir);

    const blocks = scatterChange(img, 0.01, 'round1');
    const s1 = new ImageSnapshotSource(img, { changed: { granularity: 4096, parentSnapshotId: full.id, blocks } });
    let readBytes = 0;
    const read = s1.read.bind(s1);
    s1.read = async (o, l) => {
      readBytes += l;
      return read(o, l);
    };
    const inc = await runBackup(s1, vault);
    s1.close();
    expect(inc.kind).toBe('incremental');
    expect(inc.parent).toBe(full.id);
    const changed = blocks.length * 4096;
    expect(inc.stats.readBytes).toBe(changed);
    expect(readBytes).toBeLessThan(changed * 10); // reads through small gaps only
    const growth = dirBytes(vault.dir) - sizeAfterFull;
    expect(growth).toBeLessThanOrEqual(3 * changed);
    expect(await restoredHash(vault, inc.id)).toBe(sha256File(img));
    expect(await restoredHash(vault, full.id)).toBe(fullHash);
  });

  test('a changed map relative to another snapshot, or none, makes a full backup', async () => {
    const img = path.join(t.dir, 'vol.img');
    makeImage(img, 8 * MiB, 'wrongparent');
    const vault = await Vault.init(path.join(t.dir, 'vault'), { chunkSize: MiB });
    const s0 = new ImageSnapshotSource(img);
    await runBackup(s0, vault);
    s0.close();
    const blocks = scatterChange(img, 0.01, 'x');
    const s1 = new ImageSnapshotSource(img, { changed: { granularity: 4096, parentSnapshotId: 'not-the-newest', blocks } });
    const m1 = await runBackup(s1, vault);
    s1.close();
    expect(m1.kind).toBe('full');
    expect(await restoredHash(vault, m1.id)).toBe(sha256File(img));
  });

  test('a coarse changed map (64 KiB) and blocks that became zero restore exactly', async () => {
    const img = path.join(t.dir, 'vol.img');
    makeImage(img, 8 * MiB, 'coarse');
    const vault = await Vault.init(path.join(t.dir, 'vault'), { chunkSize: MiB });
    const s0 = new ImageSnapshotSource(img);
    const full = await runBackup(s0, vault);
    s0.close();
    const fd = fs.openSync(img, 'r+');
    fs.writeSync(fd, Buffer.alloc(65536), 0, 65536, 3 * 65536); // text → zeroes
    fs.writeSync(fd, seeded('c', 100), 0, 100, 100 * 65536 + 5);
    fs.closeSync(fd);
    const s1 = new ImageSnapshotSource(img, { changed: { granularity: 65536, parentSnapshotId: full.id, blocks: [3, 100] } });
    const inc = await runBackup(s1, vault);
    s1.close();
    expect(inc.kind).toBe('incremental');
    expect(inc.stats.readBytes).toBe(2 * 65536);
    expect(await restoredHash(vault, inc.id)).toBe(sha256File(img));
  });

  test('a long chain is consolidated into a synthetic full without reading the volume, and every link still restores', async () => {
    const img = path.join(t.dir, 'vol.img');
    makeImage(img, 8 * MiB, 'chain');
    const vault = await Vault.init(path.join(t.dir, 'vault'), { chunkSize: MiB });
    const s0 = new ImageSnapshotSource(img);
    let parent = await runBackup(s0, vault);
    s0.close();
    const hashes = new Map<string, string>([[parent.id, sha256File(img)]]);
    const kinds: string[] = [];
    for (let i = 0; i < 18; i++) {
      const blocks = scatterChange(img, 0.002, `link${i}`);
      const s = new ImageSnapshotSource(img, { changed: { granularity: 4096, parentSnapshotId: parent.id, blocks } });
      let volumeReads = 0;
      const read = s.read.bind(s);
      s.read = async (o, l) => {
        volumeReads += l;
        return read(o, l);
      };
      parent = await runBackup(s, vault);
      s.close();
      expect(volumeReads).toBeLessThan(MiB);
      kinds.push(`${parent.kind}:${parent.chainLength}`);
      hashes.set(parent.id, sha256File(img));
    }
    // Link 17 exceeds 16: it became a full written from the chain; the next one builds on it.
    expect(kinds[16]).toBe('full:0');
    expect(kinds[17]).toBe('incremental:1');
    expect((await vault.getManifest([...hashes.keys()][17]!)).consolidatedFrom).toBeTruthy();
    const ids = [...hashes.keys()];
    for (const id of [ids[0]!, ids[8]!, ids[16]!, ids[17]!, ids[18]!]) expect(await restoredHash(vault, id)).toBe(hashes.get(id));
  });
});

describe('incrementals read by the chunk workers (located ranges)', () => {
  /** A pool whose workers have booted (until one has, the engine thread reads instead). */
  async function bootedWorkers(): Promise<ChunkWorkers> {
    const w = new ChunkWorkers({ encKey: null, idKey: null, level: 1 }, 2);
    await w.digest(Buffer.from('boot')); // a worker's ready message precedes its first reply
    expect(w.booted).toBe(true);
    return w;
  }

  test('under the range policy with a writer that never pauses, the incremental is the image as of begin and every write lands', async () => {
    const img = path.join(t.dir, 'vol.img');
    makeImage(img, 16 * MiB, 'located');
    const vault = await Vault.init(path.join(t.dir, 'vault'), { chunkSize: MiB });
    const s0 = new ImageSnapshotSource(img);
    const full = await runBackup(s0, vault);
    s0.close();
    const blocks = scatterChange(img, 0.02, 'located1');
    const atBegin = sha256File(img);
    const src = new ImageSnapshotSource(img, { policy: 'range', locate: true, changed: { granularity: 4096, parentSnapshotId: full.id, blocks } });
    let n = 0;
    const writes: Array<[number, Buffer]> = [];
    // Writes aim at changed blocks (the ones the workers still have to read) and at unchanged ones.
    const write = () => {
      const off = (n % 2 ? blocks[(n * 31) % blocks.length]! : (n * 7919) % 4096) * 4096;
      const data = seeded(`lw${n++}`, 4096);
      writes.push([off, data]);
      src.write(off, data);
    };
    const timer = setInterval(write, 1);
    const locate = src.locate!.bind(src);
    (src as { locate: typeof locate }).locate = (o, l) => {
      write();
      return locate(o, l);
    };
    const workers = await bootedWorkers();
    const inc = await runBackup(src, vault, { workers }).finally(() => workers.close());
    clearInterval(timer);
    src.close();
    expect(inc.kind).toBe('incremental');
    expect(src.locates, 'the workers read the changed runs').toBeGreaterThan(blocks.length / 2);
    expect(src.readsOfCopied).toBe(0);
    expect(inc.stats.readBytes).toBe(blocks.length * 4096);
    expect(await restoredHash(vault, inc.id)).toBe(atBegin);
    const check = fs.readFileSync(img);
    const expected = fs.readFileSync(img);
    for (const [off, data] of writes) data.copy(expected, off);
    expect(check.equals(expected), 'every write landed, later ones winning').toBe(true);
    expect(src.held.length).toBe(0);
  });

  test('a small incremental packs on the calling thread without starting worker threads; a full backup starts them', async () => {
    const img = path.join(t.dir, 'vol.img');
    makeImage(img, 16 * MiB, 'lazy');
    const vault = await Vault.init(path.join(t.dir, 'vault'), { chunkSize: MiB });
    const w0 = new ChunkWorkers({ encKey: null, idKey: null, level: 1 }, 2);
    const s0 = new ImageSnapshotSource(img);
    const full = await runBackup(s0, vault, { workers: w0 });
    s0.close();
    expect(w0.threadsStarted).toBe(true);
    await w0.close();
    const blocks = scatterChange(img, 0.01, 'lazy1');
    const w1 = new ChunkWorkers({ encKey: null, idKey: null, level: 1 }, 2);
    const src = new ImageSnapshotSource(img, { locate: true, changed: { granularity: 4096, parentSnapshotId: full.id, blocks } });
    const inc = await runBackup(src, vault, { workers: w1 });
    src.close();
    expect(inc.kind).toBe('incremental');
    expect(w1.threadsStarted, 'no thread was started for a 164 KiB change').toBe(false);
    await w1.close();
    expect(await restoredHash(vault, inc.id)).toBe(sha256File(img));
  });

  test('a session that ends while the workers read (the engine shutting down) fails the backup and leaves no snapshot', async () => {
    const img = path.join(t.dir, 'vol.img');
    makeImage(img, 16 * MiB, 'located-end');
    const vault = await Vault.init(path.join(t.dir, 'vault'), { chunkSize: MiB });
    const s0 = new ImageSnapshotSource(img);
    const full = await runBackup(s0, vault);
    s0.close();
    const blocks = scatterChange(img, 0.05, 'located2');
    const src = new ImageSnapshotSource(img, { locate: true, changed: { granularity: 4096, parentSnapshotId: full.id, blocks } });
    const locate = src.locate!.bind(src);
    (src as { locate: typeof locate }).locate = (o, l) => {
      if (src.locates === 40) src.state = 'aborted'; // what the engine does before it closes device files
      return locate(o, l);
    };
    const workers = await bootedWorkers();
    await expect(runBackup(src, vault, { workers }).finally(() => workers.close())).rejects.toThrow(/after the session finished/);
    src.close();
    expect((await vault.listSnapshots()).map((s) => s.id)).toEqual([full.id]);
    expect(fs.readdirSync(path.join(vault.dir, 'inprogress'))).toEqual([]);
  });
});

describe('cancel', () => {
  test('an aborted backup sends abort, leaves no snapshot, and releases held writes', async () => {
    const img = path.join(t.dir, 'vol.img');
    makeImage(img, 16 * MiB, 'abort');
    const vault = await Vault.init(path.join(t.dir, 'vault'), { chunkSize: MiB });
    const src = new ImageSnapshotSource(img);
    const ac = new AbortController();
    let reads = 0;
    const read = src.read.bind(src);
    src.read = async (o, l) => {
      if (++reads === 5) {
        src.write(0, Buffer.alloc(4096, 9));
        ac.abort();
      }
      return read(o, l);
    };
    await expect(runBackup(src, vault, { signal: ac.signal })).rejects.toMatchObject({ code: 'CANCELLED' });
    src.close();
    expect(src.state).toBe('aborted');
    expect(await vault.listSnapshots()).toEqual([]);
    expect(fs.readFileSync(img).subarray(0, 4096).equals(Buffer.alloc(4096, 9))).toBe(true);
    expect(fs.readdirSync(path.join(vault.dir, 'inprogress'))).toEqual([]);
  });
});
