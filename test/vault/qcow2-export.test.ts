import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { nodeEnv } from '../../src-main/engine/env/node-env';
import { runBackup } from '../../src-main/engine/vault/backup-writer';
import { CLUSTER_SIZE, L2_ENTRIES, REFCOUNT_BLOCK_ENTRIES, REFCOUNT_TABLE_ENTRIES_PER_CLUSTER, refcountLayout } from '../../src-main/engine/vault/qcow2';
import { Qcow2Writer } from '../../src-main/engine/vault/qcow2-writer';
import { exportSnapshot } from '../../src-main/engine/vault/restore';
import { Vault } from '../../src-main/engine/vault/vault';
import { ImageSnapshotSource } from './helpers/image-source';
import { makeImage, scatterChange, seeded, tempDir } from './helpers/fixtures';

const MiB = 1 << 20;
let t: { dir: string; cleanup: () => void };
beforeEach(() => {
  t = tempDir('hf-qcow2-');
});
afterEach(() => t.cleanup());

const qemuImg = (...args: string[]) => execFileSync('qemu-img', args, { encoding: 'utf8' });

/** qemu-img check exits non-zero on corruptions or leaks; its JSON must also report none. */
function expectCleanQcow2(file: string, virtualSize: number): void {
  const check = spawnSync('qemu-img', ['check', '--output=json', '-f', 'qcow2', file], { encoding: 'utf8' });
  expect(check.stderr).toBe('');
  expect(check.status).toBe(0);
  const c = JSON.parse(check.stdout);
  expect(c['check-errors']).toBe(0);
  expect(c['corruptions'] ?? 0).toBe(0);
  expect(c['leaks'] ?? 0).toBe(0);
  const info = JSON.parse(qemuImg('info', '--output=json', file));
  expect(info['format']).toBe('qcow2');
  expect(info['virtual-size']).toBe(virtualSize);
  expect(info['cluster-size']).toBe(CLUSTER_SIZE);
  expect(info['format-specific']['data']['compat']).toBe('1.1'); // qcow2 v3
}

/** Non-zero 64 KiB clusters of a raw image: exactly the data clusters a sparse qcow2 must hold. */
function nonZeroClusters(raw: Buffer): number {
  let n = 0;
  for (let o = 0; o < raw.length; o += CLUSTER_SIZE) if (raw.subarray(o, o + CLUSTER_SIZE).some((b) => b !== 0)) n++;
  return n;
}

/** header + data + L2 tables + L1 + refcount block + refcount table, for images under 2 GiB. */
function expectedQcow2Bytes(raw: Buffer): number {
  const l2Tables = new Set<number>();
  for (let o = 0; o < raw.length; o += CLUSTER_SIZE) if (raw.subarray(o, o + CLUSTER_SIZE).some((b) => b !== 0)) l2Tables.add(Math.floor(o / CLUSTER_SIZE / L2_ENTRIES));
  return (1 + nonZeroClusters(raw) + l2Tables.size + 1 + 1 + 1) * CLUSTER_SIZE;
}

async function backup(vault: Vault, img: string, parent: string | null = null, blocks: number[] = []) {
  const src = new ImageSnapshotSource(img, { changed: parent ? { granularity: 4096, parentSnapshotId: parent, blocks } : null });
  try {
    return await runBackup(src, vault, { full: parent === null });
  } finally {
    src.close();
  }
}

describe('qcow2 export', () => {
  test('a full and an incremental snapshot (data, zero regions, size not a multiple of the cluster) export as clean, sparse qcow2 images equal to the raw export', async () => {
    // 12 MiB of text/random/zero/holey regions, then 20 KiB more: the last 64 KiB cluster is partial and holds data.
    const img = path.join(t.dir, 'vol.img');
    makeImage(img, 12 * MiB, 'q');
    fs.appendFileSync(img, seeded('tail', 20 * 1024));
    const size = 12 * MiB + 20 * 1024;
    const vault = await Vault.init(path.join(t.dir, 'vault'), { chunkSize: MiB });
    const full = await backup(vault, img);

    // The incremental changes scattered blocks and zeroes a data block (a zero block in the delta).
    const blocks = scatterChange(img, 0.01, 'inc');
    const fd = fs.openSync(img, 'r+');
    fs.writeSync(fd, Buffer.alloc(4096), 0, 4096, 8192);
    fs.closeSync(fd);
    const inc = await backup(vault, img, full.id, [...new Set([...blocks, 2])].sort((a, b) => a - b));
    expect(inc.kind).toBe('incremental');

    for (const snap of [full, inc]) {
      const raw = path.join(t.dir, `${snap.id}.raw`);
      const q = path.join(t.dir, `${snap.id}.qcow2`);
      await exportSnapshot(vault, snap.id, 'raw', raw);
      const r = await exportSnapshot(vault, snap.id, 'qcow2', q);
      expectCleanQcow2(q, size);
      qemuImg('compare', '-f', 'raw', '-F', 'qcow2', raw, q);
      const rawBytes = fs.readFileSync(raw);
      // Sparse: exactly one host cluster per non-zero guest cluster, plus the metadata.
      expect(r.bytes).toBe(fs.statSync(q).size);
      expect(r.bytes).toBe(expectedQcow2Bytes(rawBytes));
      expect(r.bytes).toBeLessThan(rawBytes.length * 0.85); // a quarter of the image is zeroes
    }
    qemuImg('compare', '-f', 'raw', '-F', 'qcow2', img, path.join(t.dir, `${inc.id}.qcow2`));
    expect(fs.readdirSync(t.dir).filter((n) => n.includes('partial'))).toEqual([]);
  });

  test('chunks that are not a multiple of 64 KiB still map every cluster exactly (partial clusters gathered across regions)', async () => {
    const img = path.join(t.dir, 'vol.img');
    makeImage(img, 4 * MiB, 'odd');
    const vault = await Vault.init(path.join(t.dir, 'vault'), { chunkSize: 96 * 1024 }); // 1.5 clusters per chunk
    const m = await backup(vault, img);
    const q = path.join(t.dir, 's.qcow2');
    const r = await exportSnapshot(vault, m.id, 'qcow2', q);
    expectCleanQcow2(q, 4 * MiB);
    qemuImg('compare', '-f', 'raw', '-F', 'qcow2', img, q);
    expect(r.bytes).toBe(expectedQcow2Bytes(fs.readFileSync(img)));
  });

  test('a large sparse disk spans several L2 tables and L1 entries; unwritten space costs nothing', async () => {
    // Written straight through the writer (no vault): 5 GiB virtual, data in four L2 spans and a partial
    // last cluster; the size is not even whole sectors (qemu sees it padded to the next sector, as a raw file).
    const size = 5 * 1024 * MiB + 12345;
    const q = path.join(t.dir, 'big.qcow2');
    const raw = path.join(t.dir, 'big.raw');
    fs.writeFileSync(raw, '');
    fs.truncateSync(raw, size);
    const rawFd = fs.openSync(raw, 'r+');
    const f = await nodeEnv.open(q, { create: true, exclusive: true });
    const w = new Qcow2Writer(f, size, (b) => b.every((x) => x === 0));
    const pieces: Array<[number, Buffer]> = [
      [0, seeded('a', 3 * CLUSTER_SIZE)],
      [512 * MiB - 4096, seeded('b', 8192)], // straddles the first L2 boundary
      [600 * MiB + 100, seeded('c', 70_000)], // unaligned, across two clusters
      [4 * 1024 * MiB + 5 * CLUSTER_SIZE, Buffer.concat([seeded('d', CLUSTER_SIZE), Buffer.alloc(CLUSTER_SIZE), seeded('e', CLUSTER_SIZE)])],
      [size - 2000, seeded('z', 2000)],
    ];
    for (const [o, b] of pieces) {
      await w.write(o, b);
      fs.writeSync(rawFd, b, 0, b.length, o);
    }
    await w.flush();
    await f.close();
    fs.closeSync(rawFd);
    expectCleanQcow2(q, 5 * 1024 * MiB + 12800);
    qemuImg('compare', '-f', 'raw', '-F', 'qcow2', raw, q);
    // data clusters: 3 + 2 + 2 + 2 (zero one skipped) + 1 = 10; L2 tables: 4 (spans 0, 1, 8, 10); header, L1, refcount block, table.
    expect(w.bytes).toBe((1 + 10 + 4 + 1 + 1 + 1) * CLUSTER_SIZE);
    const map = JSON.parse(qemuImg('map', '--output=json', '-f', 'qcow2', q)) as Array<{ start: number; length: number; data: boolean }>;
    expect(map.filter((e) => e.data).reduce((s, e) => s + e.length, 0)).toBe(9 * CLUSTER_SIZE + 12800);
    await expect(w.write(0, Buffer.alloc(512))).rejects.toThrow();
    // qemu can go on using the image: its refcounts let it allocate, snapshot and copy-on-write correctly.
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 5 100M 3M', '-c', 'write -z 0 64k', q]);
    qemuImg('snapshot', '-c', 's1', q);
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 6 4096M 1M', q]);
    expectCleanQcow2(q, 5 * 1024 * MiB + 12800);
    const io = execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'read -P 5 100M 3M', '-c', 'read -P 6 4096M 1M', '-c', 'read -P 0 0 64k', q], { encoding: 'utf8' });
    expect(io).not.toMatch(/fail|mismatch|error/i);
    expect(io.match(/^read /gm)).toHaveLength(3);
  });

  test('refcount structures cover themselves for any image size', () => {
    for (const n of [1, 5, REFCOUNT_BLOCK_ENTRIES - 2, REFCOUNT_BLOCK_ENTRIES - 1, REFCOUNT_BLOCK_ENTRIES, 3 * REFCOUNT_BLOCK_ENTRIES + 7, REFCOUNT_BLOCK_ENTRIES * REFCOUNT_TABLE_ENTRIES_PER_CLUSTER]) {
      const l = refcountLayout(n);
      expect(l.totalClusters).toBe(n + l.blocks + l.tableClusters);
      expect(l.blocks * REFCOUNT_BLOCK_ENTRIES).toBeGreaterThanOrEqual(l.totalClusters);
      expect((l.blocks - 1) * REFCOUNT_BLOCK_ENTRIES).toBeLessThan(l.totalClusters);
      expect(l.tableClusters * REFCOUNT_TABLE_ENTRIES_PER_CLUSTER).toBeGreaterThanOrEqual(l.blocks);
    }
  });

  test('a failed qcow2 export leaves no file behind', async () => {
    const img = path.join(t.dir, 'vol.img');
    makeImage(img, 4 * MiB, 'fail');
    const vault = await Vault.init(path.join(t.dir, 'vault'), { chunkSize: MiB });
    const m = await backup(vault, img);
    const ix = await vault.readIndex(m);
    const victim = vault.chunkPath(ix.digests.subarray(32, 64).toString('hex')); // region 1: random data
    const bytes = fs.readFileSync(victim);
    bytes[bytes.length - 20] ^= 0xff;
    fs.writeFileSync(victim, bytes);
    const out = path.join(t.dir, 'out', 's.qcow2');
    fs.mkdirSync(path.dirname(out));
    await expect(exportSnapshot(vault, m.id, 'qcow2', out)).rejects.toMatchObject({ code: 'VAULT_CORRUPT' });
    expect(fs.readdirSync(path.dirname(out))).toEqual([]);
  });
});
