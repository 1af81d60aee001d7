import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { runBackup } from '../../src-main/engine/vault/backup-writer';
import { collectGarbage, verifySnapshot } from '../../src-main/engine/vault/maintenance';
import { restoreSnapshot, restoreToFile } from '../../src-main/engine/vault/restore';
import { Vault } from '../../src-main/engine/vault/vault';
import { VaultFaultyEnv } from './helpers/faulty-env';
import { ImageSnapshotSource } from './helpers/image-source';
import { countChunkFiles, makeImage, sha256File, tempDir } from './helpers/fixtures';

const MiB = 1 << 20;
let t: { dir: string; cleanup: () => void };
beforeEach(() => {
  t = tempDir();
});
afterEach(() => t.cleanup());

async function vaultWithSnapshot(opts: { passphrase?: string } = {}) {
  const img = path.join(t.dir, 'vol.img');
  makeImage(img, 8 * MiB, 'faults');
  const vault = await Vault.init(path.join(t.dir, 'vault'), { chunkSize: MiB, ...opts, scrypt: { N: 1 << 14, r: 8, p: 1 } });
  const src = new ImageSnapshotSource(img);
  const m = await runBackup(src, vault);
  src.close();
  return { img, vault, m };
}

describe('vault folder faults', () => {
  test('a missing vault folder is VAULT_MISSING, for open and for a folder that is not a vault', async () => {
    await expect(Vault.open(path.join(t.dir, 'nope'))).rejects.toMatchObject({ code: 'VAULT_MISSING' });
    fs.mkdirSync(path.join(t.dir, 'empty'));
    await expect(Vault.open(path.join(t.dir, 'empty'))).rejects.toMatchObject({ code: 'VAULT_MISSING', message: expect.stringContaining('vault init') });
  });

  test('a read-only vault still lists and restores, and a backup into it fails READ_ONLY and aborts the session', async () => {
    const { img, m } = await vaultWithSnapshot();
    const env = new VaultFaultyEnv();
    env.readOnly = true;
    const ro = await Vault.open(path.join(t.dir, 'vault'), { env });
    expect(ro.writable).toBe(false);
    expect((await ro.listSnapshots()).map((s) => s.id)).toEqual([m.id]);
    const out = path.join(t.dir, 'r.img');
    const f = fs.openSync(out, 'w');
    await restoreSnapshot(ro, m.id, { size: 8 * MiB, sparse: false, write: async (o, b) => void fs.writeSync(f, b, 0, b.length, o), flush: async () => fs.fsyncSync(f) });
    fs.closeSync(f);
    expect(sha256File(out)).toBe(sha256File(img));
    const src = new ImageSnapshotSource(img);
    await expect(runBackup(src, ro)).rejects.toMatchObject({ code: 'READ_ONLY', message: expect.stringContaining('read-only') });
    src.close();
    expect(src.state).toBe('aborted');
  });

  test('ENOSPC in the middle of a backup: NO_SPACE, session aborted, no visible snapshot; gc removes the debris', async () => {
    const { img, vault } = await vaultWithSnapshot();
    fs.writeFileSync(img, fs.readFileSync(img).map((b) => b ^ 0x5a)); // new content: all new chunks
    const env = new VaultFaultyEnv();
    const v = await Vault.open(vault.dir, { env });
    const chunksBefore = countChunkFiles(vault.dir);
    env.spaceLeft = 2.5 * MiB;
    const src = new ImageSnapshotSource(img);
    await expect(runBackup(src, v)).rejects.toMatchObject({ code: 'NO_SPACE', message: expect.stringContaining('full') });
    src.close();
    expect(src.state).toBe('aborted');
    expect((await v.listSnapshots()).length).toBe(1);
    expect(fs.readdirSync(path.join(vault.dir, 'inprogress'))).toEqual([]);
    expect(countChunkFiles(vault.dir)).toBeGreaterThan(chunksBefore); // some chunks made it before the disk filled
    env.spaceLeft = Infinity;
    const debris = countChunkFiles(vault.dir) - chunksBefore;
    const gc = await collectGarbage(v);
    expect(gc.removedChunks).toBe(debris);
    expect(countChunkFiles(vault.dir)).toBe(chunksBefore);
    // And the vault still works.
    const again = new ImageSnapshotSource(img);
    const m2 = await runBackup(again, v);
    again.close();
    const out = path.join(t.dir, 'r.img');
    await restoreToFile(v, m2.id, out);
    expect(sha256File(out)).toBe(sha256File(img));
  });
});

describe('damaged vault content', () => {
  test('a flipped bit in a chunk is found by verify, which names the chunk; restore refuses with VAULT_CORRUPT', async () => {
    const { vault, m } = await vaultWithSnapshot();
    expect(await verifySnapshot(vault, m.id)).toMatchObject({ ok: true, bad: [] });
    const root = path.join(vault.dir, 'chunks');
    const victim = fs.readdirSync(root).flatMap((d) => fs.readdirSync(path.join(root, d)).map((n) => path.join(root, d, n)))[3]!;
    const bytes = fs.readFileSync(victim);
    bytes[bytes.length >> 1] ^= 0x10;
    fs.writeFileSync(victim, bytes);
    const r = await verifySnapshot(vault, m.id);
    expect(r.ok).toBe(false);
    expect(r.bad).toEqual([path.basename(victim)]);
    await expect(restoreToFile(vault, m.id, path.join(t.dir, 'r.img'))).rejects.toMatchObject({ code: 'VAULT_CORRUPT', message: expect.stringContaining(path.basename(victim)) });
    expect(fs.existsSync(path.join(t.dir, 'r.img'))).toBe(false);
  });

  test('a truncated index is detected by verify and by restore', async () => {
    const { vault, m } = await vaultWithSnapshot();
    const ix = path.join(vault.dir, 'indexes', m.index.file);
    fs.truncateSync(ix, fs.statSync(ix).size - 7);
    const r = await verifySnapshot(vault, m.id);
    expect(r.ok).toBe(false);
    expect(r.problems[0]).toMatch(/truncated/);
    await expect(restoreToFile(vault, m.id, path.join(t.dir, 'r.img'))).rejects.toMatchObject({ code: 'VAULT_CORRUPT' });
  });

  test('a manifest or vault from a newer format is VAULT_TOO_NEW', async () => {
    const { vault, m } = await vaultWithSnapshot();
    const mp = path.join(vault.dir, 'snapshots', `${m.id}.json`);
    fs.writeFileSync(mp, JSON.stringify({ ...JSON.parse(fs.readFileSync(mp, 'utf8')), version: 99 }));
    await expect(vault.listSnapshots()).rejects.toMatchObject({ code: 'VAULT_TOO_NEW' });
    const cp = path.join(vault.dir, 'vault.json');
    fs.writeFileSync(cp, JSON.stringify({ ...JSON.parse(fs.readFileSync(cp, 'utf8')), version: 2 }));
    await expect(Vault.open(vault.dir)).rejects.toMatchObject({ code: 'VAULT_TOO_NEW', message: expect.stringContaining('Update Holdfast') });
  });

  test('restore to a too-small target is DEVICE_TOO_SMALL and writes nothing', async () => {
    const { vault, m } = await vaultWithSnapshot();
    let writes = 0;
    await expect(
      restoreSnapshot(vault, m.id, { size: 8 * MiB - 4096, sparse: true, write: async () => void writes++, flush: async () => undefined }),
    ).rejects.toMatchObject({ code: 'DEVICE_TOO_SMALL' });
    expect(writes).toBe(0);
  });
});

describe('encryption', () => {
  test('an encrypted vault round-trips, hides content and names, and a wrong or missing passphrase is VAULT_LOCKED', async () => {
    const { img, vault, m } = await vaultWithSnapshot({ passphrase: 'correct horse' });
    expect(vault.encrypted).toBe(true);
    // Chunk names are keyed: no chunk is named by the plain SHA-256 of the image's text quarter.
    const plain = fs.readFileSync(img).subarray(0, MiB);
    const sha = execFileSync('sha256sum', { input: plain }).toString().slice(0, 64);
    const root = path.join(vault.dir, 'chunks');
    const names = fs.readdirSync(root).flatMap((d) => fs.readdirSync(path.join(root, d)));
    expect(names).not.toContain(sha);
    // The repeated text does not appear in any chunk file (it is compressed and encrypted).
    for (const d of fs.readdirSync(root)) for (const n of fs.readdirSync(path.join(root, d))) expect(fs.readFileSync(path.join(root, d, n)).includes('holdfast vault chunk')).toBe(false);
    await expect(Vault.open(vault.dir, { passphrase: 'wrong horse' })).rejects.toMatchObject({ code: 'VAULT_LOCKED', message: expect.stringContaining('Wrong passphrase') });
    await expect(Vault.open(vault.dir)).rejects.toMatchObject({ code: 'VAULT_LOCKED', message: expect.stringContaining('encrypted') });
    const v = await Vault.open(vault.dir, { passphrase: 'correct horse' });
    const out = path.join(t.dir, 'r.img');
    await restoreToFile(v, m.id, out);
    expect(sha256File(out)).toBe(sha256File(img));
    expect((await verifySnapshot(v, m.id)).ok).toBe(true);
  });
});
