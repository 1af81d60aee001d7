import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { NodeEnv } from '../../src-main/engine/env/node-env';
import { runBackup } from '../../src-main/engine/vault/backup-writer';
import { consolidateSnapshot } from '../../src-main/engine/vault/consolidate';
import type { SnapshotManifest } from '../../src-main/engine/vault/format';
import { collectGarbage, pruneSnapshots, verifySnapshot } from '../../src-main/engine/vault/maintenance';
import { restoreToFile } from '../../src-main/engine/vault/restore';
import { SnapshotExport } from '../../src-main/engine/vault/snapshot-export';
import { Vault, type ReaderMarker } from '../../src-main/engine/vault/vault';
import { ImageSnapshotSource } from './helpers/image-source';
import { countChunkFiles, makeImage, scatterChange, sha256File, tempDir } from './helpers/fixtures';

const MiB = 1 << 20;
let t: { dir: string; cleanup: () => void };
beforeEach(() => {
  t = tempDir('hf-readers-');
});
afterEach(() => t.cleanup());

async function backup(vault: Vault, img: string, parent: SnapshotManifest | null = null, blocks: number[] = []): Promise<SnapshotManifest> {
  const src = new ImageSnapshotSource(img, { changed: parent ? { granularity: 4096, parentSnapshotId: parent.id, blocks } : null });
  try {
    return await runBackup(src, vault, { full: parent === null });
  } finally {
    src.close();
  }
}

/** A vault with full F, incremental I on F (image hash at I), then an unrelated full F2: keep-last 1 would remove I and F. */
async function vaultWithChain(env = new NodeEnv()) {
  const img = path.join(t.dir, 'vol.img');
  makeImage(img, 8 * MiB, 'readers');
  const vault = await Vault.init(path.join(t.dir, 'vault'), { chunkSize: MiB, env });
  const F = await backup(vault, img);
  const I = await backup(vault, img, F, scatterChange(img, 0.02, 'i'));
  const hashI = sha256File(img);
  fs.writeFileSync(img, fs.readFileSync(img).map((b) => b ^ 0x5a));
  const F2 = await backup(vault, img);
  return { env, img, vault, F, I, hashI, F2, hashF2: sha256File(img) };
}

/** Makes the reader's Nth chunk read wait until release(); `reached` resolves when it starts waiting. */
/** Pauses the n-th chunk file read (whole-file reads, and opens of chunk files that restores read in place). */
function gateChunkReads(env: NodeEnv, n = 2) {
  const readFile = env.readFile.bind(env);
  const open = env.open.bind(env);
  let reads = 0;
  let release!: () => void;
  let reachedResolve!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const reached = new Promise<void>((r) => (reachedResolve = r));
  const pass = async (p: string) => {
    if (p.includes(`${path.sep}chunks${path.sep}`) && ++reads === n) {
      reachedResolve();
      await gate;
    }
  };
  env.readFile = async (p: string) => {
    await pass(p);
    return readFile(p);
  };
  env.open = async (p, opts) => {
    await pass(p);
    return open(p, opts);
  };
  return {
    reached,
    release,
    restore: () => {
      env.readFile = readFile;
      env.open = open;
    },
  };
}

const IN_USE = 'in use (being restored, exported, verified or consolidated)';
const readerFiles = (vault: Vault) => fs.readdirSync(vault.readersDir()).filter((n) => n.endsWith('.json'));

describe('readers and prune/gc', () => {
  test('a restore running while prune and gc would remove its snapshot completes with the right bytes; prune keeps the chain as in use until it ends', async () => {
    const { env, vault, F, I, hashI, F2, hashF2 } = await vaultWithChain();
    const gate = gateChunkReads(env);
    const out = path.join(t.dir, 'restored.img');
    const restoring = restoreToFile(vault, I.id, out);
    await gate.reached;

    const readers = [...(await vault.liveReaders()).values()];
    expect(readers.map((r) => [r.purpose, r.snapshot, r.chain?.map((l) => l.id)])).toEqual([['restore', I.id, [I.id, F.id]]]);

    // prune + gc run concurrently with the paused restore.
    const [pr, gc] = await Promise.all([pruneSnapshots(vault, { keepLast: 1 }), collectGarbage(vault)]);
    expect(pr.removed).toEqual([]);
    expect(pr.kept.filter((k) => k.reasons.some((r) => r.startsWith('in use'))).map((k) => k.id).sort()).toEqual([F.id, I.id].sort());
    expect(gc.interrupted).toBe(false);
    const gc2 = await collectGarbage(vault);
    expect(gc2.removedChunks).toBe(0);

    gate.release();
    await restoring;
    gate.restore();
    expect(sha256File(out)).toBe(hashI);
    expect(readerFiles(vault)).toEqual([]);

    // Once the restore is over, the same prune removes the chain and gc frees its chunks.
    const before = countChunkFiles(vault.dir);
    const pr2 = await pruneSnapshots(vault, { keepLast: 1 });
    expect(pr2.removed.map((r) => r.id).sort()).toEqual([F.id, I.id].sort());
    const gc3 = await collectGarbage(vault);
    expect(gc3.removedChunks).toBeGreaterThan(0);
    expect(countChunkFiles(vault.dir)).toBe(before - gc3.removedChunks);
    expect(fs.readdirSync(path.join(vault.dir, 'indexes'))).toEqual([F2.index.file]);
    const out2 = path.join(t.dir, 'f2.img');
    await restoreToFile(vault, F2.id, out2);
    expect(sha256File(out2)).toBe(hashF2);
  });

  test('gc keeps what a reader pinned after its snapshot was consolidated and its parent deleted underneath it, and frees it afterwards', async () => {
    const { env, vault, F, I, hashI } = await vaultWithChain();
    const gate = gateChunkReads(env);
    const out = path.join(t.dir, 'restored.img');
    const restoring = restoreToFile(vault, I.id, out);
    await gate.reached;

    // I becomes a full (new index; its delta chunks and old index are referenced by no manifest now),
    // and F's manifest goes as an older Holdfast's prune would take it: only the restore still needs them.
    const consolidated = await consolidateSnapshot(vault, I.id);
    expect(consolidated.kind).toBe('full');
    await vault.deleteSnapshot(F);
    expect(fs.existsSync(path.join(vault.dir, 'indexes', F.index.file))).toBe(true); // pinned: kept for gc to decide
    expect(fs.existsSync(path.join(vault.dir, 'indexes', I.index.file))).toBe(true);
    const gc = await collectGarbage(vault);
    expect(gc.removedChunks).toBe(0);
    expect(gc.removedFiles).toBe(0);

    gate.release();
    await restoring;
    gate.restore();
    expect(sha256File(out)).toBe(hashI);

    const gc2 = await collectGarbage(vault);
    expect(gc2.removedChunks).toBeGreaterThan(0);
    expect(gc2.removedFiles).toBe(2); // the old index of I and the index of F
    const again = path.join(t.dir, 'again.img');
    await restoreToFile(vault, I.id, again);
    expect(sha256File(again)).toBe(hashI);
  });

  test('a reader that registered before a snapshot was deleted keeps its index even while it is still loading its chain', async () => {
    const { vault, F, I } = await vaultWithChain();
    const lease = await vault.beginRead(I.id, 'restore'); // registered, chain not loaded yet
    await vault.deleteSnapshot(I);
    expect(fs.existsSync(path.join(vault.dir, 'indexes', I.index.file))).toBe(true);
    await lease.release();
    const gc = await collectGarbage(vault);
    expect(gc.removedFiles).toBe(1);
    expect(fs.existsSync(path.join(vault.dir, 'indexes', I.index.file))).toBe(false);
    await expect(restoreToFile(vault, I.id, path.join(t.dir, 'x.img'))).rejects.toMatchObject({ code: 'SNAPSHOT_NOT_FOUND' });
    expect(readerFiles(vault)).toEqual([]);
    await vault.getManifest(F.id);
  });

  test('a mounted snapshot yields to prune, but gc keeps what it reads until it closes', async () => {
    const { vault, F, I } = await vaultWithChain();
    const expected = path.join(t.dir, 'i.img');
    await restoreToFile(vault, I.id, expected);
    const exp = await SnapshotExport.open(vault, I.id);
    expect([...(await vault.liveReaders()).values()].map((r) => [r.purpose, r.preemptible])).toEqual([['mount', true]]);
    const pr = await pruneSnapshots(vault, { keepLast: 1 }); // the engine then disconnects the mount's NBD clients
    expect(pr.removed.map((r) => r.id).sort()).toEqual([F.id, I.id].sort());
    expect((await collectGarbage(vault)).removedChunks).toBe(0);
    expect((await exp.read(0, 8 * MiB)).equals(fs.readFileSync(expected))).toBe(true);
    await exp.close();
    expect(readerFiles(vault)).toEqual([]);
    expect((await collectGarbage(vault)).removedChunks).toBeGreaterThan(0);
  });

  test('a running verify holds prune back and drops its marker when done', async () => {
    const { env, vault, F, I } = await vaultWithChain();
    const gate = gateChunkReads(env);
    const verifying = verifySnapshot(vault, I.id);
    await gate.reached;
    const pr = await pruneSnapshots(vault, { keepLast: 1, dryRun: true });
    expect(pr.removed).toEqual([]);
    expect(pr.kept.find((k) => k.id === F.id)!.reasons).toEqual([IN_USE]);
    gate.release();
    expect((await verifying).ok).toBe(true);
    gate.restore();
    expect(readerFiles(vault)).toEqual([]);
  });

  test("another live process's reader blocks removal until it dies; stale markers (dead pid, earlier boot, reused pid, stuck opening) block nothing and gc clears them", async () => {
    const { vault, F, I, F2 } = await vaultWithChain();
    const pin = (m: SnapshotManifest) => ({ id: m.id, size: m.size, index: m.index });
    const write = (name: string, m: Partial<ReaderMarker>) => {
      const full: ReaderMarker = { pid: 0, host: os.hostname(), startedAt: new Date().toISOString(), purpose: 'restore', snapshot: I.id, chain: [pin(I), pin(F)], ...m };
      fs.writeFileSync(path.join(vault.readersDir(), `${name}.json`), JSON.stringify(full));
    };
    const dead = spawnSync('true').pid!;
    const live = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const self = vault.markerSelf();
      write('other-process', { pid: live.pid!, bootId: self.bootId });
      let pr = await pruneSnapshots(vault, { keepLast: 1 });
      expect(pr.removed).toEqual([]);

      live.kill('SIGKILL');
      await new Promise((r) => live.once('exit', r));
      write('dead-pid', { pid: dead });
      write('dead-opening', { pid: dead, chain: null }); // would make prune/gc wait if it counted
      const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
      try {
        write('earlier-boot', { pid: sleeper.pid!, bootId: 'not-this-boot' });
        if (self.bootId !== undefined && self.pidStart !== undefined) write('reused-pid', { pid: sleeper.pid!, bootId: self.bootId, pidStart: 1 });
        const t0 = Date.now();
        pr = await pruneSnapshots(vault, { keepLast: 1 });
        expect(pr.removed.map((r) => r.id).sort()).toEqual([F.id, I.id].sort());
        const gc = await collectGarbage(vault);
        expect(Date.now() - t0).toBeLessThan(10_000);
        expect(gc.removedChunks).toBeGreaterThan(0);
        expect(readerFiles(vault)).toEqual([]);
        expect(fs.readdirSync(path.join(vault.dir, 'indexes'))).toEqual([F2.index.file]);
      } finally {
        sleeper.kill('SIGKILL');
      }
    } finally {
      live.kill('SIGKILL');
    }
  });
});
