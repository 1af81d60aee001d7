/**
 * Reading image files: formats recognised by their bytes (real gzip and zstd files made by the
 * gzip and zstd CLIs), uncompressed bytes and hashes exact, damaged files refused with a clear
 * INVALID_ARGUMENT, the size pre-pass stopping early past a limit.
 */
import { afterEach, describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { nodeEnv } from '../../src-main/engine/env/node-env';
import { IMAGE_PIECE, imageBytes, imageSize, openImageFile } from '../../src-main/engine/backup/image-stream';
import { tempDir } from '../engine/helpers';
import { sampleImage } from './helpers';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

async function collect(file: string): Promise<{ bytes: Buffer; pieces: number[] }> {
  const img = await openImageFile(nodeEnv, file);
  const parts: Buffer[] = [];
  for await (const p of imageBytes(nodeEnv, img)) parts.push(Buffer.from(p));
  return { bytes: Buffer.concat(parts), pieces: parts.map((p) => p.length) };
}

describe('image files', () => {
  it('reads raw, gzip and zstd images to the same bytes, in whole pieces', async () => {
    const d = tempDir('hf-imgstream-');
    dirs.push(d);
    const data = sampleImage(3 * IMAGE_PIECE + 12345);
    const raw = path.join(d, 'disk.img');
    fs.writeFileSync(raw, data);
    execFileSync('gzip', ['-k', raw]);
    execFileSync('zstd', ['-q', '-k', raw, '-o', `${raw}.zst`]);
    // A .iso named file is raw too; a gzip file with no .gz name is still gzip (by its bytes).
    fs.copyFileSync(`${raw}.gz`, path.join(d, 'renamed.bin'));

    expect((await openImageFile(nodeEnv, raw)).format).toBe('raw');
    expect((await openImageFile(nodeEnv, `${raw}.gz`)).format).toBe('gzip');
    expect((await openImageFile(nodeEnv, `${raw}.zst`)).format).toBe('zstd');
    expect((await openImageFile(nodeEnv, path.join(d, 'renamed.bin'))).format).toBe('gzip');
    for (const f of [raw, `${raw}.gz`, `${raw}.zst`]) {
      const { bytes, pieces } = await collect(f);
      expect(bytes.length).toBe(data.length);
      expect(sha(bytes)).toBe(sha(data));
      expect(pieces.slice(0, -1).every((n) => n === IMAGE_PIECE)).toBe(true);
      expect(await imageSize(nodeEnv, await openImageFile(nodeEnv, f))).toBe(data.length);
    }
    // The size pre-pass stops past a limit.
    expect(await imageSize(nodeEnv, await openImageFile(nodeEnv, `${raw}.gz`), IMAGE_PIECE)).toBe(IMAGE_PIECE + 1);
  });

  it('refuses missing, empty, truncated, corrupt and unsupported files with clear errors', async () => {
    const d = tempDir('hf-imgstream-');
    dirs.push(d);
    const data = sampleImage(2 * IMAGE_PIECE);
    const raw = path.join(d, 'x.img');
    fs.writeFileSync(raw, data);
    execFileSync('gzip', ['-k', raw]);
    execFileSync('zstd', ['-q', '-k', raw, '-o', `${raw}.zst`]);
    const gz = fs.readFileSync(`${raw}.gz`);
    const zst = fs.readFileSync(`${raw}.zst`);

    await expect(openImageFile(nodeEnv, path.join(d, 'nope.img'))).rejects.toMatchObject({ code: 'NOT_FOUND' });
    fs.writeFileSync(path.join(d, 'empty.img'), '');
    await expect(openImageFile(nodeEnv, path.join(d, 'empty.img'))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('empty') });
    await expect(openImageFile(nodeEnv, d)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });

    const cases: Array<[string, Buffer, RegExp]> = [
      ['trunc.img.gz', gz.subarray(0, Math.floor(gz.length / 2)), /not a valid gzip file/],
      ['flipped.img.gz', Buffer.concat([gz.subarray(0, 200), Buffer.alloc(64, 0xa5), gz.subarray(264)]), /not a valid gzip file/],
      ['trunc.img.zst', zst.subarray(0, Math.floor(zst.length / 2)), /not a valid zstd file/],
      ['flipped.img.zst', Buffer.concat([zst.subarray(0, 100), Buffer.alloc(64, 0xa5), zst.subarray(164)]), /not a valid zstd file/],
    ];
    for (const [name, bytes, msg] of cases) {
      const f = path.join(d, name);
      fs.writeFileSync(f, bytes);
      await expect(collect(f), name).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(msg) });
      await expect(imageSize(nodeEnv, await openImageFile(nodeEnv, f)), name).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    }
    fs.writeFileSync(path.join(d, 'fake.img.gz'), data.subarray(0, 4096));
    await expect(openImageFile(nodeEnv, path.join(d, 'fake.img.gz'))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('not a gzip file') });
    fs.writeFileSync(path.join(d, 'a.img.xz'), Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1, 2]));
    await expect(openImageFile(nodeEnv, path.join(d, 'a.img.xz'))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('xz-compressed') });
  });
});
