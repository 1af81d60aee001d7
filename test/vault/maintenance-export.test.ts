import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { NodeEnv } from '../../src-main/engine/env/node-env';
import { runBackup } from '../../src-main/engine/vault/backup-writer';
import { collectGarbage, pruneSnapshots } from '../../src-main/engine/vault/maintenance';
import { exportSnapshot } from '../../src-main/engine/vault/restore';
import { SnapshotExport } from '../../src-main/engine/vault/snapshot-export';
import { Vault } from '../../src-main/engine/vault/vault';
import { ImageSnapshotSource } from './helpers/image-source';
import { countChunkFiles, makeImage, scatterChange, sha256File, tempDir } from './helpers/fixtures';

const MiB = 1 << 20;
const DAY = 86400_000;
let t: { dir: string; cleanup: () => void };
beforeEach(() => {
  t = tempDir();
});
afterEach(() => t.cleanup());

class ClockEnv extends NodeEnv {
  clock = Date.UTC(2025, 0, 1, 12);
  override now(): number {
    return this.clock;
  }
}

describe('prune and gc', () => {
  test('prune keeps by retention, never drops a parent a kept incremental needs, and gc then frees only unreferenced chunks', async () => {
    const env = new ClockEnv();
    const img = path.join(t.dir, 'vol.img');
    makeImage(img, 4 * MiB, 'prune');
    const vault = await Vault.init(path.join(t.dir, 'vault'), { chunkSize: MiB, env });
    const ids: string[] = [];
    let parent: string | null = null;
    // Day 0: full; days 1-4: incrementals; day 5: a full again (random content changes); day 6: incremental.
    for (let day = 0; day < 7; day++) {
      env.clock = Date.UTC(2025, 0, 1, 12) + day * DAY;
      const blocks = day ? scatterChange(img, 0.05, `d${day}`) : [];
      const full = day === 0 || day === 5;
      const src = new ImageSnapshotSource(img, { changed: parent ? { granularity: 4096, parentSnapshotId: parent, blocks } : null });
      const m = await runBackup(src, vault, { full });
      src.close();
      ids.push(m.id);
      parent = m.id;
    }
    const hashOfNewest = sha256File(img);
    // keep-last 1 keeps day 6, which needs day 5 (its full) — nothing of days 0-4.
    const dry = await pruneSnapshots(vault, { keepLast: 1, dryRun: true });
    expect(dry.removed.map((r) => r.id)).toEqual(ids.slice(0, 5));
    expect((await vault.listSnapshots()).length).toBe(7); // dry run removed nothing
    // keep-daily 2 keeps days 6 and 5; keep-last 1 + keep the incremental of day 3 via keepDaily window? Only retention.
    const kept = await pruneSnapshots(vault, { keepLast: 1, keepDaily: 3 });
    // Days 6, 5, 4 by day; day 4 is an incremental on 3 → 2 → 1 → 0: all kept as parents.
    expect(kept.removed).toEqual([]);
    expect(kept.kept.find((k) => k.id === ids[0])!.reasons).toContain('parent of a kept snapshot');
    const chunksBefore = countChunkFiles(vault.dir);
    const res = await pruneSnapshots(vault, { keepLast: 2 });
    expect(res.removed.map((r) => r.id)).toEqual(ids.slice(0, 5));
    const gc = await collectGarbage(vault);
    expect(gc.removedChunks).toBeGreaterThan(0);
    expect(countChunkFiles(vault.dir)).toBe(chunksBefore - gc.removedChunks);
    const out = path.join(t.dir, 'r.img');
    await exportSnapshot(vault, ids[6]!, 'raw', out);
    expect(sha256File(out)).toBe(hashOfNewest);
    await expect(pruneSnapshots(vault, {})).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  test('gc refuses while a backup is registered, a backup waits for a running gc, and gc stops when a backup appears mid-sweep', async () => {
    const img = path.join(t.dir, 'vol.img');
    makeImage(img, 4 * MiB, 'gc');
    const vault = await Vault.init(path.join(t.dir, 'vault'), { chunkSize: MiB });
    const src = new ImageSnapshotSource(img);
    const m = await runBackup(src, vault);
    src.close();
    // Three garbage chunks: a pruned snapshot's content.
    fs.writeFileSync(img, fs.readFileSync(img).map((b) => b ^ 1));
    const s2 = new ImageSnapshotSource(img);
    const m2 = await runBackup(s2, vault);
    s2.close();
    await vault.deleteSnapshot(m2);

    const release = await vault.beginWrite('backup-x');
    await expect(collectGarbage(vault)).rejects.toMatchObject({ code: 'BACKUP_RUNNING' });
    await release();

    // gc marker of a live process: a backup waits until it disappears.
    fs.writeFileSync(vault.gcMarkerPath(), JSON.stringify(vault.markerSelf()));
    let started = false;
    const waiting = vault.beginWrite('backup-y').then((r) => {
      started = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 150));
    expect(started).toBe(false);
    fs.rmSync(vault.gcMarkerPath());
    await (await waiting)();
    expect(started).toBe(true);

    // A backup registering during the sweep stops gc after the deletion in progress.
    const unlink = vault.env.unlink.bind(vault.env);
    let deletions = 0;
    vault.env.unlink = async (p: string) => {
      // What beginWrite does first (its wait for gc would block this very call): register the marker.
      if (p.includes(`${path.sep}chunks${path.sep}`) && ++deletions === 1) fs.writeFileSync(vault.inProgressPath('backup-z'), JSON.stringify(vault.markerSelf()));
      return unlink(p);
    };
    const gc = await collectGarbage(vault);
    vault.env.unlink = unlink;
    expect(gc.interrupted).toBe(true);
    expect(gc.removedChunks).toBe(1);
    fs.rmSync(vault.inProgressPath('backup-z'));
    const gc2 = await collectGarbage(vault);
    expect(gc2.interrupted).toBe(false);
    expect(gc2.removedChunks).toBeGreaterThan(0);
    // The live snapshot is intact.
    const out = path.join(t.dir, 'r.img');
    await exportSnapshot(vault, m.id, 'raw', out);
    expect(fs.readFileSync(out).equals(Buffer.from(fs.readFileSync(img).map((b) => b ^ 1)))).toBe(true);
  });
});

describe('export', () => {
  test('raw and fixed-VHD exports are identical to the image for qemu-img, and a snapshot reads back as a read-only block export', async () => {
    const img = path.join(t.dir, 'vol.img');
    makeImage(img, 12 * MiB, 'export');
    const vault = await Vault.init(path.join(t.dir, 'vault'), { chunkSize: MiB });
    const src = new ImageSnapshotSource(img);
    const full = await runBackup(src, vault);
    src.close();
    const blocks = scatterChange(img, 0.01, 'exp');
    const s1 = new ImageSnapshotSource(img, { changed: { granularity: 4096, parentSnapshotId: full.id, blocks } });
    const inc = await runBackup(s1, vault);
    s1.close();
    const raw = path.join(t.dir, 'snap.raw');
    const vhd = path.join(t.dir, 'snap.vhd');
    await exportSnapshot(vault, inc.id, 'raw', raw);
    const r = await exportSnapshot(vault, inc.id, 'vhd', vhd);
    expect(r.bytes).toBe(12 * MiB + 512);
    expect(fs.readdirSync(t.dir).filter((n) => n.includes('partial'))).toEqual([]);
    execFileSync('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', img, raw]);
    execFileSync('qemu-img', ['compare', '-f', 'raw', '-F', 'vpc', img, vhd]);
    const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', '-f', 'vpc', vhd]).toString());
    expect(info['virtual-size']).toBe(12 * MiB);
    expect(info['format']).toBe('vpc');

    const exp = await SnapshotExport.open(vault, inc.id);
    expect(exp.readOnly).toBe(true);
    expect(exp.size()).toBe(12 * MiB);
    const image = fs.readFileSync(img);
    for (const [o, l] of [[0, 4096], [MiB - 512, 8192], [5 * MiB + 1024, 3 * MiB]] as const)
      expect((await exp.read(o, l)).equals(image.subarray(o, o + l))).toBe(true);
    const st = await exp.blockStatus(6 * MiB, 3 * MiB);
    expect(st.reduce((s, e) => s + e.length, 0)).toBe(3 * MiB);
    await expect(exp.write(0, Buffer.alloc(512))).rejects.toMatchObject({ code: 'READ_ONLY' });
    await expect(exp.read(12 * MiB - 512, 1024)).rejects.toMatchObject({ code: 'OUT_OF_RANGE' });
  });
});
