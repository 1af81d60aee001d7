import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { Engine } from '../../src-main/engine/engine';
import { useTempDirs } from './helpers';

const mk = useTempDirs();

describe('an encrypted vault through the engine api', () => {
  it('every request needs the passphrase, even after another request (or client) unlocked the vault', async () => {
    const d = mk();
    const e = await Engine.open({ dataDir: path.join(d, 'data') });
    try {
      await e.api['device.add']({ path: path.join(d, 'disk.img'), create: true, size: 32 << 20 });
      await e.api['volume.create']({ name: 'fs', size: 8 << 20 });
      const vault = path.join(d, 'secret');
      await e.api['vault.init']({ dir: vault, passphrase: 'correct horse' });

      const locked = { code: 'VAULT_LOCKED', message: expect.stringContaining('is encrypted') };
      const wrong = { code: 'VAULT_LOCKED', message: expect.stringContaining('Wrong passphrase') };
      await expect(e.api['snapshot.list']({ vault })).rejects.toMatchObject(locked);
      await expect(e.api['backup.start']({ volume: 'fs', vault })).rejects.toMatchObject(locked);
      await expect(e.api['backup.start']({ volume: 'fs', vault, passphrase: 'wrong horse' })).rejects.toMatchObject(wrong);
      const b = await e.api['backup.start']({ volume: 'fs', vault, passphrase: 'correct horse' });
      expect(b.state).toBe('completed');

      const [snap] = await e.api['snapshot.list']({ vault, passphrase: 'correct horse' });
      expect(snap!.id).toBe(b.snapshotId);
      await expect(e.api['snapshot.list']({ vault })).rejects.toMatchObject(locked);
      await expect(e.api['snapshot.verify']({ vault, id: snap!.id, passphrase: 'Correct horse' })).rejects.toMatchObject(wrong);
      await expect(e.api['restore.start']({ vault, id: snap!.id, toFile: path.join(d, 'out.img') })).rejects.toMatchObject(locked);
      expect((await e.api['snapshot.verify']({ vault, id: snap!.id, passphrase: 'correct horse' })).ok).toBe(true);
    } finally {
      await e.close();
    }
  });
});
